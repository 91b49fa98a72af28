"""One job run, whoever starts it: execute, record its outcome, find orphaned runs.

Scheduled runs, catch-ups and ``schedules run`` all come through :func:`execute`, so
they are recorded in ``job_runs`` and logged alike. Each run records its owner (host,
pid) so that a later daemon can tell a run whose process died from a live one.

Each run claims its fire time first (``RunStore.claim_fire``) and keeps the claim
alive while it runs: several daemons on one store, overlapping while the scheduler
is handed over, then never serve one fire time twice. That guards ingest and build
too, which (unlike digests and their period keys) have nothing else to stop a second
run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.exc import SQLAlchemyError

from publisher.config import Settings
from publisher.errors import FireTimeTaken, PublisherError
from publisher.models import JobKind, RunOutcome
from publisher.periods import schedule_config
from publisher.scheduler.triggers import fire_time_at, show_time
from publisher.store import Store
from publisher.store.runs import FireClaim, JobRun

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


def claimer() -> str:
    """This process as a fire-time claimer: ``host:pid``, what the logs name."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _taken(name: str, fire: datetime, claim: FireClaim, lapsed_from: str | None) -> FireTimeTaken:
    holder_fire = claim.holder_fire.astimezone(fire.tzinfo) if claim.holder_fire else None
    if claim.handled:
        why = "was served already"
    elif claim.holder is None:
        why = f"was given up by {lapsed_from} (its run ended unserved: it waits for a catch-up)"
    else:
        why = (
            f"is being served by {claim.holder} (claim on fire time {show_time(holder_fire)} "
            f"until {show_time(claim.holder_until)})"
        )
    lapses = claim.lapses_in.total_seconds() if claim.lapses_in is not None else None
    return FireTimeTaken(
        f"schedule {name}: fire time {fire.isoformat()} {why}; not run here",
        handled=claim.handled,
        holder=claim.holder,
        holder_fire=claim.holder_fire,
        lapses_in=lapses,
    )


async def execute(
    settings: Settings,
    store: Store,
    clock: Clock,
    name: str,
    fire_time: datetime | None,
    run_job: RunJob,
    *,
    by_hand: bool = False,
    lapsed_from: str | None = None,
) -> JobRun:
    """Run schedule ``name``'s job for ``fire_time`` through ``run_job``; record it in job_runs.

    The fire time is claimed first; if it is served already or someone else's live
    claim covers it, :class:`FireTimeTaken` is raised and nothing runs. ``by_hand``
    (``schedules run``) runs anyway when the fire time was served: an admin asking
    for a run gets one, unclaimed. ``lapsed_from`` only takes over that claimer's
    lapsed claim (see ``RunStore.claim_fire``).

    A failure is recorded, logged and returned, never raised: one bad run must not
    stop the daemon. Store calls run in a thread: SQLite may wait up to its 30 s busy
    timeout for a CLI import's write lock, and the web server shares this event loop.
    """
    cfg = schedule_config(settings, name)
    runs = store.runs
    ttl = settings.scheduler.takeover
    me = claimer()
    claimed = False
    if fire_time is not None:
        await asyncio.to_thread(runs.ensure_schedule, name, clock())
        claim = await asyncio.to_thread(runs.claim_fire, name, fire_time, me, ttl, lapsed_from=lapsed_from)
        if not claim.granted and not (by_hand and claim.handled):
            raise _taken(name, fire_time, claim, lapsed_from)
        claimed = claim.granted
        if claimed:
            left = await asyncio.to_thread(
                runs.interrupt_runs_of,
                name,
                fire_time,
                clock(),
                "its daemon stopped renewing the claim on this fire time before the run finished",
            )
            if left:
                log.warning(
                    "schedule %s: %d run(s) of fire time %s left running by a daemon that stopped: "
                    "marked interrupted", name, left, fire_time.isoformat(),
                )  # fmt: skip
    run_id = await asyncio.to_thread(
        runs.start, cfg.job, schedule=name, fire_time=fire_time, now=clock(), owner=_owner()
    )
    extra = {"job": cfg.job, "schedule": name, "run": run_id}
    log.info("schedule %s: %s started (fire time %s)", name, cfg.job, show_time(fire_time), extra=extra)
    keeper = asyncio.create_task(_keep_claim(store, name, fire_time, me, ttl, extra)) if claimed else None
    served = False
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
        served = True
        await asyncio.to_thread(_record_success, store, clock, run_id, name, fire_time, counts, claimed)
        level = logging.INFO if counts.get("ok", True) else logging.WARNING
        log.log(level, "schedule %s: %s finished: %s", name, cfg.job, _counts_text(counts), extra=extra)
    finally:
        if keeper is not None:
            keeper.cancel()
        if claimed and not served and fire_time is not None:
            # Failed or interrupted: let go, so a later catch-up serves the fire time.
            await asyncio.to_thread(runs.finish_claim, name, fire_time, me, served=False, now=clock())
    found = await asyncio.to_thread(runs.get, run_id)
    assert found is not None
    return found


async def _keep_claim(
    store: Store, name: str, fire: datetime | None, me: str, ttl: timedelta, extra: dict[str, Any]
) -> None:
    """Renew the run's claim three times per ``ttl`` until cancelled, so it never lapses mid-run."""
    assert fire is not None
    warned = False
    while True:
        await asyncio.sleep(ttl.total_seconds() / 3)
        try:
            renewed = await asyncio.to_thread(store.runs.renew_claim, name, fire, me, ttl)
        except (SQLAlchemyError, PublisherError) as e:
            log.warning(
                "schedule %s: cannot renew the claim on fire time %s: %s",
                name,
                fire.isoformat(),
                e,
                extra=extra,
            )
            continue
        if not renewed and not warned:
            warned = True
            log.warning(
                "schedule %s: the claim on fire time %s lapsed and is no longer ours; another daemon "
                "may serve it too", name, fire.isoformat(), extra=extra,
            )  # fmt: skip


def _record_success(
    store: Store,
    clock: Clock,
    run_id: int,
    name: str,
    fire_time: datetime | None,
    counts: dict[str, Any],
    claimed: bool,
) -> None:
    """Close the run as ok, then mark its fire time served (and end its claim) so no one runs it again."""
    store.runs.finish(run_id, outcome=RunOutcome.OK, counts=_jsonable(counts), now=clock())
    if fire_time is None:
        return
    if claimed:
        store.runs.finish_claim(name, fire_time, claimer(), served=True, now=clock())
    else:
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
    """Run ``name`` now for its current period, as the scheduler would (recorded).

    Raises :class:`FireTimeTaken` while a daemon is serving that fire time; a fire time
    served already is run again (unclaimed), since the admin asked for a run.
    """
    schedule_config(settings, name)
    fire = fire_time_at(settings, name, clock())
    return await execute(settings, store, clock, name, fire, run_job, by_hand=True)
