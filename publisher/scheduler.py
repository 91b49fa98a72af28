"""APScheduler wiring and the schedule admin tools; jobs only call the library.

Why this module exists: the daemon must fire each ``[schedules.NAME]`` job on time and
once, including across restarts and DST changes, and the admin must be able to see,
run, pause and resume schedules from the CLI while a daemon runs in another process.
Both need the same rules (which fire time a run serves, when a missed one is caught
up, how a run is recorded), so they live here, in one place, over the store's
``schedule_state`` and ``job_runs`` tables. Trigger arithmetic is
:mod:`publisher.periods`'s; this module never computes fire times itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from publisher.app import Publisher
from publisher.config import ScheduleConfig, Settings, parse_duration
from publisher.errors import PublisherError, SchedulerError
from publisher.periods import next_fire_times, previous_fire_time, schedule_trigger
from publisher.periods import schedule_config as schedule_config  # re-exported for the CLI
from publisher.store import Store
from publisher.store.issues import IssueSummary
from publisher.store.runs import FAILED, INTERRUPTED, OK, JobRun, ScheduleState

log = logging.getLogger("publisher.scheduler")

# pg_try_advisory_lock(class, object) of "the scheduler of this store": the class is the
# bytes "pubs"; the object is the hash of the store's schema, so publishers that keep
# their stores in different schemas of one database each have a scheduler.
PG_LOCK_KEY = int.from_bytes(b"pubs", "big")
SENDING_JOBS = frozenset({"digest", "publish"})
DEFAULT_POLL_SECONDS = 2.0


# -- looking up schedules ------------------------------------------------------------


def trigger_text(cfg: ScheduleConfig) -> str:
    return f"every {cfg.every}" if cfg.every is not None else f"cron {cfg.cron}"


def fire_time_at(settings: Settings, name: str, now: datetime) -> datetime | None:
    """The fire time a run starting at ``now`` serves: the latest one at or before now."""
    return previous_fire_time(schedule_trigger(settings, name), now)


def next_runs(settings: Settings, name: str, now: datetime, count: int = 3) -> list[datetime]:
    return next_fire_times(schedule_trigger(settings, name), now, count)


# -- one run, whoever starts it --------------------------------------------------------


def _owner() -> dict[str, Any]:
    """Who runs a job, so that a later daemon can tell an orphan from a live run."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


async def execute(publisher: Publisher, name: str, fire_time: datetime | None) -> JobRun:
    """Run schedule ``name``'s job for ``fire_time`` and record it in job_runs.

    Scheduled runs, catch-ups and ``schedules run`` all come through here, so they are
    recorded and logged alike. A failure is recorded, logged and returned, never
    raised: one bad run must not stop the daemon. Store calls run in a thread: SQLite
    may wait up to its 30 s busy timeout for a CLI import's write lock, and the web
    server shares this event loop.
    """
    cfg = schedule_config(publisher.settings, name)
    runs = publisher.store.runs
    run_id = await asyncio.to_thread(
        runs.start, cfg.job, schedule=name, fire_time=fire_time, now=publisher.clock(), owner=_owner()
    )
    extra = {"job": cfg.job, "schedule": name, "run": run_id}
    log.info("schedule %s: %s started (fire time %s)", name, cfg.job, _show(fire_time), extra=extra)
    try:
        counts = await publisher.arun_job(cfg.job, schedule=name, fire_time=fire_time)
    except asyncio.CancelledError:
        await asyncio.to_thread(
            runs.finish, run_id, outcome=INTERRUPTED, now=publisher.clock(), error="cancelled at shutdown"
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
    runs = publisher.store.runs
    runs.finish(run_id, outcome=OK, counts=_jsonable(counts), now=publisher.clock())
    if fire_time is not None:
        runs.record_fire(name, fire_time, publisher.clock())


async def _record_failure(publisher: Publisher, run_id: int, error: str, extra: dict[str, Any]) -> None:
    await asyncio.to_thread(
        publisher.store.runs.finish, run_id, outcome=FAILED, error=error, now=publisher.clock()
    )
    log.error("schedule %s: %s failed: %s", extra["schedule"], extra["job"], error, extra=extra)


def _jsonable(counts: dict[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, bool | int | float | str | None) else str(v) for k, v in counts.items()}


def _counts_text(counts: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in counts.items()) or "nothing to report"


def _show(when: datetime | None) -> str:
    return when.isoformat() if when is not None else "none"


# -- catch-up after downtime -------------------------------------------------------------


def missed_fire_time(publisher: Publisher, name: str, now: datetime) -> datetime | None:
    """The fire time of ``name`` to catch up at start, or None.

    Records the schedule as first seen at ``now`` if the store never saw it, so a
    first start sends nothing before the next fire time. A sending job's missed fire
    time older than ``catch_up`` is skipped (and marked handled, so it is reported
    once); ingest and build are cheap and always catch up.
    """
    cfg = schedule_config(publisher.settings, name)
    runs = publisher.store.runs
    state = runs.ensure_schedule(name, now)
    fire = fire_time_at(publisher.settings, name, now)
    if state.paused or fire is None or fire <= state.first_seen or _handled(state, fire):
        return None
    if cfg.job in SENDING_JOBS and now - fire > parse_duration(cfg.catch_up):
        log.warning(
            "schedule %s: fire time %s was missed more than catch_up=%s ago; not sent",
            name, fire.isoformat(), cfg.catch_up, extra={"job": cfg.job, "schedule": name},
        )  # fmt: skip
        runs.record_fire(name, fire, now)
        return None
    return fire


def _handled(state: ScheduleState | None, fire: datetime) -> bool:
    return state is not None and state.last_fire is not None and fire <= state.last_fire


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
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- the daemon's scheduler ---------------------------------------------------------------


class ScheduleRunner:
    """One generation of scheduled jobs: built at start and again at every reload.

    ``busy`` is shared across generations so that a job still running in the old
    generation is never started a second time by the new one.
    """

    def __init__(
        self,
        publisher: Publisher,
        *,
        poll_interval: float = DEFAULT_POLL_SECONDS,
        busy: dict[str, asyncio.Lock] | None = None,
    ) -> None:
        self.publisher = publisher
        self.poll_interval = poll_interval
        self.busy = busy if busy is not None else {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.scheduler = AsyncIOScheduler(timezone=publisher.settings.site.tz)
        self._poller: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Mark orphaned runs, add every schedule's job, start, then catch up what was missed.

        Store calls run in a thread, like :func:`execute`'s, to keep the web responsive.
        """
        now = self.publisher.clock()
        await asyncio.to_thread(self._close_orphans, now)
        self.scheduler.start()
        for name in self.publisher.settings.schedules:
            self._add_job(name)
        self._apply_paused(await asyncio.to_thread(self.publisher.store.runs.states))
        for name in self.publisher.settings.schedules:
            fire = await asyncio.to_thread(missed_fire_time, self.publisher, name, now)
            if fire is not None:
                log.info(
                    "schedule %s: catching up the fire time %s missed while stopped", name, fire.isoformat(),
                    extra={"schedule": name, "job": self.publisher.settings.schedules[name].job},
                )  # fmt: skip
                self._spawn(self.run(name, fire))
        self._poller = asyncio.create_task(self._poll_paused())

    def _close_orphans(self, now: datetime) -> None:
        orphans = orphaned_runs(self.publisher)
        self.publisher.store.runs.mark_interrupted([r.id for r in orphans], now)
        for r in orphans:
            log.warning(
                "run %d (%s) was left running by a process that ended: marked interrupted", r.id, r.job,
                extra={"schedule": r.schedule, "job": r.job, "run": r.id},
            )  # fmt: skip

    def _add_job(self, name: str) -> None:
        cfg = schedule_config(self.publisher.settings, name)
        self.scheduler.add_job(
            self.fire,
            trigger=schedule_trigger(self.publisher.settings, name),
            args=[name],
            id=name,
            name=name,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=int(parse_duration(cfg.catch_up).total_seconds()),
        )

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def fire(self, name: str) -> None:
        """APScheduler's job function: serve the fire time that is due now.

        The work runs in a task of ours, shielded: APScheduler's shutdown cancels the
        job coroutines it started, and a stop must let a run finish instead. Awaiting
        it keeps APScheduler's max_instances=1 meaningful.
        """
        fire = fire_time_at(self.publisher.settings, name, self.publisher.clock())
        if fire is None:
            return
        task = self._spawn(self.run(name, fire))
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)

    async def run(self, name: str, fire: datetime) -> None:
        """Run once per fire time: one at a time per schedule, skipping what is handled or paused."""
        lock = self.busy.setdefault(name, asyncio.Lock())
        async with lock:
            state = await asyncio.to_thread(self.publisher.store.runs.state, name)
            if state is not None and state.paused:
                log.info("schedule %s is paused; fire time %s skipped", name, fire.isoformat())
                return
            if _handled(state, fire):
                log.debug("schedule %s: fire time %s already handled", name, fire.isoformat())
                return
            await execute(self.publisher, name, fire)

    async def _poll_paused(self) -> None:
        """Obey `schedules pause/resume` from other processes within one poll interval."""
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                self._apply_paused(await asyncio.to_thread(self.publisher.store.runs.states))
            except (SQLAlchemyError, PublisherError) as e:
                log.warning("cannot read schedule state: %s", e)

    def _apply_paused(self, states: dict[str, ScheduleState]) -> None:
        for job in self.scheduler.get_jobs():
            paused = states.get(job.id) is not None and states[job.id].paused
            if paused and job.next_run_time is not None:
                job.pause()
                log.info("schedule %s paused", job.id, extra={"schedule": job.id})
            elif not paused and job.next_run_time is None:
                job.resume()
                log.info(
                    "schedule %s resumed; next run %s", job.id, _show(job.next_run_time),
                    extra={"schedule": job.id},
                )  # fmt: skip

    def next_run_times(self) -> dict[str, datetime | None]:
        return {job.id: job.next_run_time for job in self.scheduler.get_jobs()}

    def stop_taking_work(self) -> None:
        """No new runs from now on; runs in progress go on (see :meth:`wait_idle`)."""
        if self._poller is not None:
            self._poller.cancel()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def running_tasks(self) -> list[asyncio.Task[Any]]:
        """The runs still in progress (a stop waits for them under one deadline)."""
        return [t for t in self.tasks if not t.done()]

    async def wait_idle(self, timeout: float | None) -> bool:
        """Wait for the runs in progress; True if all ended within ``timeout``."""
        pending = self.running_tasks()
        if not pending:
            return True
        _done, still = await asyncio.wait(pending, timeout=timeout)
        return not still


# -- one scheduler per store ------------------------------------------------------------------


class SchedulerLock(Protocol):
    """Held by the one process that schedules; others serve the web and retry."""

    description: str

    def acquire(self) -> bool: ...

    def release(self) -> None: ...


class NoLock:
    """For an in-memory SQLite store: nobody else can share it."""

    description = "in-memory store (no lock needed)"

    def acquire(self) -> bool:
        return True

    def release(self) -> None:
        return None


class FileLock:
    """An exclusive flock on a file beside the SQLite database; the kernel frees it at death."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"lock file {path}"
        self._fd: int | None = None

    def acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class AdvisoryLock:
    """pg_try_advisory_lock on a connection of its own, held for the process lifetime.

    PostgreSQL frees a session lock when its connection ends, so a dead daemon's lock
    goes with it.
    """

    def __init__(self, engine: Engine, key: int = PG_LOCK_KEY) -> None:
        self.engine = engine
        self.key = key
        self.description = (
            f"PostgreSQL advisory lock {key} on {engine.url.render_as_string(hide_password=True)}"
        )
        self._conn: Connection | None = None

    def acquire(self) -> bool:
        if self._conn is not None:
            return True
        try:
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            got = bool(
                conn.execute(
                    text("SELECT pg_try_advisory_lock(:k, hashtext(current_schema()))"), {"k": self.key}
                ).scalar()
            )
        except SQLAlchemyError as e:
            raise SchedulerError(f"cannot take the scheduler lock: {e}") from e
        if got:
            self._conn = conn
        else:
            conn.close()
        return got

    def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(SQLAlchemyError):
                self._conn.execute(
                    text("SELECT pg_advisory_unlock(:k, hashtext(current_schema()))"), {"k": self.key}
                )
            self._conn.close()
            self._conn = None


def scheduler_lock(store: Store) -> SchedulerLock:
    """The lock that makes ``store``'s scheduler unique."""
    url = store.engine.url
    if url.get_backend_name() == "sqlite":
        database = url.database
        if not database or database == ":memory:":
            return NoLock()
        return FileLock(Path(database + ".scheduler.lock"))
    return AdvisoryLock(store.engine)


# -- admin tools (the CLI's `schedules` and `status` commands) -----------------------------------


@dataclass(frozen=True, slots=True)
class ScheduleInfo:
    """One row of `schedules list`."""

    name: str
    job: str
    trigger: str
    timezone: str
    next_runs: list[datetime]
    last_run: JobRun | None
    paused: bool

    @property
    def last_outcome(self) -> str | None:
        return self.last_run.outcome if self.last_run else None


def schedules_overview(publisher: Publisher, now: datetime | None = None) -> list[ScheduleInfo]:
    """Every configured schedule, by name, with its next three runs and last outcome."""
    now = now or publisher.clock()
    states = publisher.store.runs.states()
    last = publisher.store.runs.last_by_schedule()
    infos = []
    for name in sorted(publisher.settings.schedules):
        cfg = publisher.settings.schedules[name]
        state = states.get(name)
        infos.append(
            ScheduleInfo(
                name=name,
                job=cfg.job,
                trigger=trigger_text(cfg),
                timezone=publisher.settings.schedule_timezone(name).key,
                next_runs=next_runs(publisher.settings, name, now),
                last_run=last.get(name),
                paused=bool(state and state.paused),
            )
        )
    return infos


async def arun_schedule_now(publisher: Publisher, name: str) -> JobRun:
    """Run ``name`` now for its current period, as the scheduler would (recorded)."""
    schedule_config(publisher.settings, name)
    return await execute(publisher, name, fire_time_at(publisher.settings, name, publisher.clock()))


def run_schedule_now(publisher: Publisher, name: str) -> JobRun:
    """Sync front of :func:`arun_schedule_now` for the CLI."""
    return asyncio.run(arun_schedule_now(publisher, name))


def pause(publisher: Publisher, name: str) -> None:
    """Pause ``name`` in the store; a running daemon obeys within its poll interval."""
    schedule_config(publisher.settings, name)
    publisher.store.runs.set_paused(name, True, publisher.clock())


def resume(publisher: Publisher, name: str) -> None:
    schedule_config(publisher.settings, name)
    publisher.store.runs.set_paused(name, False, publisher.clock())


@dataclass(frozen=True, slots=True)
class SourceStatus:
    name: str
    last_fetch: datetime | None
    last_ok: datetime | None
    last_error: str | None
    item_count: int


@dataclass(frozen=True, slots=True)
class ListStatus:
    slug: str
    name: str
    schedule: str | None
    subscribers: dict[str, int]


@dataclass(frozen=True, slots=True)
class StatusReport:
    """What `publisher status` shows: is everything fetching, sending and running?"""

    sources: list[SourceStatus]
    items_by_category: dict[str | None, int]
    lists: list[ListStatus]
    recent_issues: list[IssueSummary]
    queue: dict[str, int]
    recent_runs: list[JobRun]
    schedules: list[ScheduleInfo]


def status_report(publisher: Publisher, *, limit: int = 10) -> StatusReport:
    """Sources, items, lists, issues, delivery queue and job runs in one read."""
    store = publisher.store
    known = {s["name"]: s for s in store.sources.all()}
    names = [s.name for s in publisher.settings.sources] + sorted(
        set(known) - {s.name for s in publisher.settings.sources}
    )
    sources = [
        SourceStatus(
            name=n,
            last_fetch=known.get(n, {}).get("last_fetch"),
            last_ok=known.get(n, {}).get("last_ok"),
            last_error=known.get(n, {}).get("last_error"),
            item_count=int(known.get(n, {}).get("item_count") or 0),
        )
        for n in names
    ]
    lists = [
        ListStatus(lst.slug, lst.name, lst.schedule, store.subscribers.counts_by_status(lst.slug))
        for lst in publisher.settings.lists
    ]
    return StatusReport(
        sources=sources,
        items_by_category=store.items.count_by_category(),
        lists=lists,
        recent_issues=store.issues.summaries(None, limit),
        queue=store.issues.queue_counts(),
        recent_runs=store.runs.recent(limit),
        schedules=schedules_overview(publisher),
    )
