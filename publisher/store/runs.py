"""Schedule state (first seen, paused, last fire) and the record of every job run.

The scheduler must remember across restarts which fire time it last handled and when
it first saw each schedule, or a restart would resend a digest or send one for a
period nobody scheduled. Pausing is kept here too, so the CLI can pause a schedule
that a running daemon (another process) obeys.

Fire-time claims let several daemons on one store (one schedules, the others wait, and
they overlap while the scheduler is handed over) serve each fire time at most once:
a run first claims its fire time (:meth:`RunStore.claim_fire`, one compare-and-set
UPDATE), renews the claim while it runs and clears it when it ends. A claim that is
not renewed lapses, so a crashed daemon never blocks a fire time for good. Claim
times come from the database's clock on PostgreSQL, where daemons on different hosts
must agree on "now".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, or_, select, update
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
class FireClaim:
    """The answer to claiming a fire time: granted, or why not.

    Refused because the fire time was served (``handled``), or because someone else's
    live claim covers it: ``holder`` (host:pid) serving ``holder_fire`` until
    ``holder_until``, which is ``lapses_in`` from now by the database's clock.
    """

    granted: bool
    handled: bool = False
    holder: str | None = None
    holder_fire: datetime | None = None
    holder_until: datetime | None = None
    lapses_in: timedelta | None = None


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

    # -- fire-time claims ---------------------------------------------------------------

    def _now(self, conn: Connection, now: datetime | None) -> datetime:
        """``now`` if given (tests), else the database's clock (PostgreSQL) or this host's."""
        if now is not None:
            return now
        if conn.dialect.name == "postgresql":
            found: datetime = conn.execute(select(func.now())).scalar_one()
            return found.astimezone(UTC)
        return datetime.now(UTC)

    def claim_fire(
        self,
        name: str,
        fire: datetime,
        claimer: str,
        ttl: timedelta,
        *,
        lapsed_from: str | None = None,
        now: datetime | None = None,
    ) -> FireClaim:
        """Claim ``fire`` of ``name`` for ``claimer`` until now + ``ttl``, if nobody may serve it.

        Granted when ``fire`` is after the last fire served and no live claim covers
        ``fire`` or a later fire time, not even ``claimer``'s own (the console's "run now"
        runs in the daemon's process, beside its scheduled run). One UPDATE decides, so two daemons
        racing for one fire time cannot both win. ``lapsed_from`` narrows it to taking
        over that claimer's lapsed claim on ``fire`` (a crashed daemon's run): if the
        claimer finished or gave up meanwhile, nothing is claimed.
        """
        self.ensure_schedule(name, now or datetime.now(UTC))
        s = schedule_state.c
        with self.engine.begin() as conn:
            at = self._now(conn, now)
            unserved = or_(s.last_fire.is_(None), s.last_fire < fire)
            if lapsed_from is None:
                free = or_(
                    s.claimed_until.is_(None),
                    s.claimed_until < at,
                    s.claimed_fire.is_(None),
                    s.claimed_fire < fire,
                )
            else:
                free = and_(s.claimed_by == lapsed_from, s.claimed_fire == fire, s.claimed_until < at)
            taken = conn.execute(
                update(schedule_state)
                .where(s.name == name, unserved, free)
                .values(claimed_fire=fire, claimed_until=at + ttl, claimed_by=claimer, updated_at=at)
            ).rowcount
            if taken == 1:
                return FireClaim(granted=True)
            row = conn.execute(select(schedule_state).where(s.name == name)).one()
        if row.last_fire is not None and fire <= row.last_fire:
            return FireClaim(granted=False, handled=True)
        until = row.claimed_until
        return FireClaim(
            granted=False,
            holder=row.claimed_by,
            holder_fire=row.claimed_fire,
            holder_until=until,
            lapses_in=(until - at) if until is not None else None,
        )

    def renew_claim(
        self, name: str, fire: datetime, claimer: str, ttl: timedelta, *, now: datetime | None = None
    ) -> bool:
        """Extend ``claimer``'s claim on ``fire``; False if it is no longer theirs."""
        s = schedule_state.c
        with self.engine.begin() as conn:
            at = self._now(conn, now)
            renewed = conn.execute(
                update(schedule_state)
                .where(s.name == name, s.claimed_by == claimer, s.claimed_fire == fire)
                .values(claimed_until=at + ttl, updated_at=at)
            ).rowcount
        return bool(renewed == 1)

    def finish_claim(self, name: str, fire: datetime, claimer: str, *, served: bool, now: datetime) -> None:
        """End ``claimer``'s claim on ``fire``, marking ``fire`` served if ``served``.

        Both in one transaction: nobody sees the claim gone and the fire time unserved
        after a success. After a failure the fire time stays unserved, as it always did:
        a later catch-up serves it. Someone else's newer claim is left alone.
        """
        s = schedule_state.c
        with self.engine.begin() as conn:
            if served:
                conn.execute(
                    update(schedule_state)
                    .where(s.name == name, or_(s.last_fire.is_(None), s.last_fire < fire))
                    .values(last_fire=fire, updated_at=now)
                )
            conn.execute(
                update(schedule_state)
                .where(s.name == name, s.claimed_by == claimer, s.claimed_fire == fire)
                .values(claimed_fire=None, claimed_until=None, claimed_by=None, updated_at=now)
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

    def interrupt_runs_of(self, name: str, fire_time: datetime, now: datetime, error: str) -> int:
        """Close the runs of ``name``'s ``fire_time`` still marked running.

        Called by the process that has just claimed that fire time: a claim is granted
        only when nobody else's is live, so any such run belongs to a process (on any
        host) that stopped renewing its claim. Without this, a run left by a host that
        never came back stayed 'running' in `status` for good.
        """
        with self.engine.begin() as conn:
            result = conn.execute(
                update(job_runs)
                .where(
                    job_runs.c.schedule == name,
                    job_runs.c.fire_time == fire_time,
                    job_runs.c.outcome == RunOutcome.RUNNING,
                )
                .values(outcome=RunOutcome.INTERRUPTED, ended=now, error=error)
            )
            return result.rowcount or 0

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
