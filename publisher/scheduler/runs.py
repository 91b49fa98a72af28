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
from datetime import datetime
from typing import Any

from publisher.app import Publisher
from publisher.errors import PublisherError
from publisher.models import RunOutcome
from publisher.periods import schedule_config
from publisher.scheduler.triggers import fire_time_at, show_time
from publisher.store.runs import JobRun

log = logging.getLogger("publisher.scheduler")


def _owner() -> dict[str, Any]:
    """Who runs a job, so that a later daemon can tell an orphan from a live run."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


async def execute(publisher: Publisher, name: str, fire_time: datetime | None) -> JobRun:
    """Run schedule ``name``'s job for ``fire_time`` and record it in job_runs.

    A failure is recorded, logged and returned, never raised: one bad run must not
    stop the daemon. Store calls run in a thread: SQLite may wait up to its 30 s busy
    timeout for a CLI import's write lock, and the web server shares this event loop.
    """
    cfg = schedule_config(publisher.settings, name)
    runs = publisher.store.runs
    run_id = await asyncio.to_thread(
        runs.start, cfg.job, schedule=name, fire_time=fire_time, now=publisher.clock(), owner=_owner()
    )
    extra = {"job": cfg.job, "schedule": name, "run": run_id}
    log.info("schedule %s: %s started (fire time %s)", name, cfg.job, show_time(fire_time), extra=extra)
    try:
        counts = await publisher.arun_job(cfg.job, schedule=name, fire_time=fire_time)
    except asyncio.CancelledError:
        await asyncio.to_thread(
            runs.finish,
            run_id,
            outcome=RunOutcome.INTERRUPTED,
            now=publisher.clock(),
            error="cancelled at shutdown",
        )
        log.error("schedule %s: %s cancelled at shutdown", name, cfg.job, extra=extra)
        raise
    except PublisherError as e:
        await _record_failure(publisher, run_id, str(e), extra)
    except Exception as e:  # a bug in a job is recorded like a failure; the daemon goes on
        log.exception("schedule %s: %s crashed", name, cfg.job, extra=extra)
        await _record_failure(publisher, run_id, f"{type(e).__name__}: {e}", extra)
    else:
        await asyncio.to_thread(_record_success, publisher, run_id, name, fire_time, counts)
        level = logging.INFO if counts.get("ok", True) else logging.WARNING
        log.log(level, "schedule %s: %s finished: %s", name, cfg.job, _counts_text(counts), extra=extra)
    found = await asyncio.to_thread(runs.get, run_id)
    assert found is not None
    return found


def _record_success(
    publisher: Publisher, run_id: int, name: str, fire_time: datetime | None, counts: dict[str, Any]
) -> None:
    """Close the run as ok, then mark its fire time served so no one runs it again."""
    runs = publisher.store.runs
    runs.finish(run_id, outcome=RunOutcome.OK, counts=_jsonable(counts), now=publisher.clock())
    if fire_time is not None:
        runs.record_fire(name, fire_time, publisher.clock())


async def _record_failure(publisher: Publisher, run_id: int, error: str, extra: dict[str, Any]) -> None:
    """Close the run as failed; its fire time stays unserved, so a restart catches it up."""
    await asyncio.to_thread(
        publisher.store.runs.finish, run_id, outcome=RunOutcome.FAILED, error=error, now=publisher.clock()
    )
    log.error("schedule %s: %s failed: %s", extra["schedule"], extra["job"], error, extra=extra)


def _jsonable(counts: dict[str, Any]) -> dict[str, Any]:
    """Counts as the JSON column can hold them: anything not a scalar becomes its text."""
    return {k: v if isinstance(v, bool | int | float | str | None) else str(v) for k, v in counts.items()}


def _counts_text(counts: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in counts.items()) or "nothing to report"


def orphaned_runs(publisher: Publisher) -> list[JobRun]:
    """Runs still 'running' whose process on this host is gone."""
    host = socket.gethostname()
    return [
        r
        for r in publisher.store.runs.running()
        if r.counts.get("host") == host
        and isinstance(r.counts.get("pid"), int)
        and not _alive(r.counts["pid"])
    ]


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (signal 0 probes without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def arun_schedule_now(publisher: Publisher, name: str) -> JobRun:
    """Run ``name`` now for its current period, as the scheduler would (recorded)."""
    schedule_config(publisher.settings, name)
    return await execute(publisher, name, fire_time_at(publisher.settings, name, publisher.clock()))


def run_schedule_now(publisher: Publisher, name: str) -> JobRun:
    """Sync front of :func:`arun_schedule_now` for the CLI."""
    return asyncio.run(arun_schedule_now(publisher, name))
