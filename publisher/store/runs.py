"""Schedule state (first seen, paused, last fire) and the record of every job run.

The scheduler must remember across restarts which fire time it last handled and when
it first saw each schedule, or a restart would resend a digest or send one for a
period nobody scheduled. Pausing is kept here too, so the CLI can pause a schedule
that a running daemon (another process) obeys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from publisher.models import JobKind, RunOutcome
from publisher.store.tables import job_runs, schedule_state


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """What the store knows about one schedule; absent until a daemon first starts."""

    name: str
    first_seen: datetime
    paused: bool = False
    last_fire: datetime | None = None

    def handled(self, fire: datetime) -> bool:
        """Whether ``fire`` is at or before the last fire time served (so not to run again)."""
        return self.last_fire is not None and fire <= self.last_fire


@dataclass(frozen=True, slots=True)
class JobRun:
    """One execution of a job: scheduled, caught up or started by hand."""

    id: int
    schedule: str | None
    job: JobKind
    fire_time: datetime | None
    started: datetime
    ended: datetime | None
    outcome: RunOutcome
    counts: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == RunOutcome.OK


def _state(row: Row[Any]) -> ScheduleState:
    return ScheduleState(row.name, row.first_seen, bool(row.paused), row.last_fire)


def _run(row: Row[Any]) -> JobRun:
    """The job_runs columns are JobRun's fields, one for one; job and outcome as enums."""
    m = row._mapping
    return JobRun(
        **{
            **m,
            "job": JobKind(m["job"]),
            "outcome": RunOutcome(m["outcome"]),
            "counts": dict(m["counts"] or {}),
        }
    )


class RunStore:
    """What the scheduler must remember across restarts; state never lives in config."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- schedule state ---------------------------------------------------------------

    def state(self, name: str) -> ScheduleState | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(schedule_state).where(schedule_state.c.name == name)).first()
        return _state(row) if row else None

    def states(self) -> dict[str, ScheduleState]:
        with self.engine.connect() as conn:
            return {r.name: _state(r) for r in conn.execute(select(schedule_state))}

    def ensure_schedule(self, name: str, now: datetime) -> ScheduleState:
        """The schedule's state, recording ``now`` as first seen if the store never saw it.

        Two processes may race here; the primary key lets one insert win and the other
        read what it wrote.
        """
        found = self.state(name)
        if found is not None:
            return found
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    schedule_state.insert().values(name=name, first_seen=now, paused=False, updated_at=now)
                )
        except IntegrityError:
            pass
        found = self.state(name)
        assert found is not None
        return found

    def set_paused(self, name: str, paused: bool, now: datetime) -> None:
        self.ensure_schedule(name, now)
        with self.engine.begin() as conn:
            conn.execute(
                update(schedule_state)
                .where(schedule_state.c.name == name)
                .values(paused=paused, updated_at=now)
            )

    def record_fire(self, name: str, fire_time: datetime, now: datetime) -> None:
        """Remember ``fire_time`` as handled; an older one never moves the mark back."""
        self.ensure_schedule(name, now)
        with self.engine.begin() as conn:
            conn.execute(
                update(schedule_state)
                .where(schedule_state.c.name == name)
                .where((schedule_state.c.last_fire.is_(None)) | (schedule_state.c.last_fire < fire_time))
                .values(last_fire=fire_time, updated_at=now)
            )

    # -- job runs ---------------------------------------------------------------------

    def start(
        self,
        job: JobKind,
        *,
        schedule: str | None,
        fire_time: datetime | None,
        now: datetime,
        owner: dict[str, Any] | None = None,
    ) -> int:
        """Insert a 'running' row; ``owner`` (host, pid) lets a later start spot orphans."""
        values = {
            "schedule": schedule,
            "job": job,
            "fire_time": fire_time,
            "started": now,
            "outcome": RunOutcome.RUNNING,
            "counts": dict(owner or {}),
        }
        with self.engine.begin() as conn:
            result = conn.execute(job_runs.insert().values(**values).returning(job_runs.c.id))
            return int(result.scalar_one())

    def finish(
        self,
        run_id: int,
        *,
        outcome: RunOutcome,
        now: datetime,
        counts: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(job_runs)
                .where(job_runs.c.id == run_id)
                .values(outcome=outcome, ended=now, counts=dict(counts or {}), error=error)
            )

    def get(self, run_id: int) -> JobRun | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(job_runs).where(job_runs.c.id == run_id)).first()
        return _run(row) if row else None

    def recent(self, limit: int = 20, schedule: str | None = None) -> list[JobRun]:
        """Newest first; ``schedule`` narrows to one schedule's runs."""
        q = select(job_runs)
        if schedule is not None:
            q = q.where(job_runs.c.schedule == schedule)
        q = q.order_by(job_runs.c.started.desc(), job_runs.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [_run(r) for r in conn.execute(q)]

    def last_by_schedule(self) -> dict[str, JobRun]:
        """The most recent run of every schedule that ever ran."""
        newest = (
            select(func.max(job_runs.c.id))
            .where(job_runs.c.schedule.is_not(None))
            .group_by(job_runs.c.schedule)
            .scalar_subquery()
        )
        with self.engine.connect() as conn:
            rows = conn.execute(select(job_runs).where(job_runs.c.id.in_(newest)))
            return {r.schedule: _run(r) for r in rows}

    def running(self) -> list[JobRun]:
        with self.engine.connect() as conn:
            q = select(job_runs).where(job_runs.c.outcome == RunOutcome.RUNNING).order_by(job_runs.c.id)
            return [_run(r) for r in conn.execute(q)]

    def mark_interrupted(self, run_ids: list[int], now: datetime) -> None:
        """Close runs whose process died: they will never finish on their own."""
        if not run_ids:
            return
        with self.engine.begin() as conn:
            conn.execute(
                update(job_runs)
                .where(job_runs.c.id.in_(run_ids))
                .where(job_runs.c.outcome == RunOutcome.RUNNING)
                .values(
                    outcome=RunOutcome.INTERRUPTED,
                    ended=now,
                    error="the process ended before the run finished",
                )
            )
