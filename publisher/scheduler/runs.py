"""One job run, whoever starts it: execute, record its outcome, find orphaned runs.

Scheduled runs, catch-ups and ``schedules run`` all come through :func:`execute`, so
they are recorded in ``job_runs`` and logged alike. Each run records its owner (host,
pid) so that a later daemon can tell a run whose process died from a live one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol

from publisher.config import Settings
from publisher.errors import PublisherError
from publisher.models import JobKind, RunOutcome
from publisher.periods import schedule_config
from publisher.scheduler.triggers import fire_time_at, show_time
from publisher.store import Store
from publisher.store.runs import JobRun

log = logging.getLogger("publisher.scheduler")

Clock = Callable[[], datetime]


class RunJob(Protocol):
    """What runs a job kind and returns its counts: the facade's ``Publisher.arun_job``.

    Given, not imported, so that this stage never depends on the facade that calls it.
    """

    def __call__(
        self, job: JobKind, *, schedule: str | None = ..., fire_time: datetime | None = ...
    ) -> Awaitable[dict[str, Any]]: ...


def _owner() -> dict[str, Any]:
    """Who runs a job, so that a later daemon can tell an orphan from a live run."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


async def execute(
    settings: Settings, store: Store, clock: Clock, name: str, fire_time: datetime | None, run_job: RunJob
) -> JobRun:
    """Run schedule ``name``'s job for ``fire_time`` through ``run_job``; record it in job_runs.

    A failure is recorded, logged and returned, never raised: one bad run must not
    stop the daemon. Store calls run in a thread: SQLite may wait up to its 30 s busy
    timeout for a CLI import's write lock, and the web server shares this event loop.
    """
    cfg = schedule_config(settings, name)
    runs = store.runs
    run_id = await asyncio.to_thread(
        runs.start, cfg.job, schedule=name, fire_time=fire_time, now=clock(), owner=_owner()
    )
    extra = {"job": cfg.job, "schedule": name, "run": run_id}
    log.info("schedule %s: %s started (fire time %s)", name, cfg.job, show_time(fire_time), extra=extra)
    try:
        counts = await run_job(cfg.job, schedule=name, fire_time=fire_time)
    except asyncio.CancelledError:
        await asyncio.to_thread(
            runs.finish, run_id, outcome=RunOutcome.INTERRUPTED, now=clock(), error="cancelled at shutdown"
        )
        log.error("schedule %s: %s cancelled at shutdown", name, cfg.job, extra=extra)
        raise
    except PublisherError as e:
        await _record_failure(store, clock, run_id, str(e), extra)
    except Exception as e:  # a bug in a job is recorded like a failure; the daemon goes on
        log.exception("schedule %s: %s crashed", name, cfg.job, extra=extra)
        await _record_failure(store, clock, run_id, f"{type(e).__name__}: {e}", extra)
    else:
        await asyncio.to_thread(_record_success, store, clock, run_id, name, fire_time, counts)
        level = logging.INFO if counts.get("ok", True) else logging.WARNING
        log.log(level, "schedule %s: %s finished: %s", name, cfg.job, _counts_text(counts), extra=extra)
    found = await asyncio.to_thread(runs.get, run_id)
    assert found is not None
    return found


def _record_success(
    store: Store, clock: Clock, run_id: int, name: str, fire_time: datetime | None, counts: dict[str, Any]
) -> None:
    """Close the run as ok, then mark its fire time served so no one runs it again."""
    store.runs.finish(run_id, outcome=RunOutcome.OK, counts=_jsonable(counts), now=clock())
    if fire_time is not None:
        store.runs.record_fire(name, fire_time, clock())


async def _record_failure(store: Store, clock: Clock, run_id: int, error: str, extra: dict[str, Any]) -> None:
    """Close the run as failed; its fire time stays unserved, so a restart catches it up."""
    await asyncio.to_thread(store.runs.finish, run_id, outcome=RunOutcome.FAILED, error=error, now=clock())
    log.error("schedule %s: %s failed: %s", extra["schedule"], extra["job"], error, extra=extra)


def _jsonable(counts: dict[str, Any]) -> dict[str, Any]:
    """Counts as the JSON column can hold them: anything not a scalar becomes its text."""
    return {k: v if isinstance(v, bool | int | float | str | None) else str(v) for k, v in counts.items()}


def _counts_text(counts: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in counts.items()) or "nothing to report"


def orphaned_runs(store: Store) -> list[JobRun]:
    """Runs still 'running' whose process on this host is gone."""
    host = socket.gethostname()
    return [
        r
        for r in store.runs.running()
        if r.counts.get("host") == host
        and isinstance(r.counts.get("pid"), int)
        and not _alive(r.counts["pid"])
    ]


def interrupt_orphaned_runs(store: Store, now: datetime) -> list[JobRun]:
    """Mark the orphaned runs interrupted (their process died mid-run); return them."""
    orphans = orphaned_runs(store)
    store.runs.mark_interrupted([r.id for r in orphans], now)
    return orphans


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (signal 0 probes without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def arun_schedule_now(
    settings: Settings, store: Store, clock: Clock, name: str, run_job: RunJob
) -> JobRun:
    """Run ``name`` now for its current period, as the scheduler would (recorded)."""
    schedule_config(settings, name)
    return await execute(settings, store, clock, name, fire_time_at(settings, name, clock()), run_job)
