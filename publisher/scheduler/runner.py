"""The daemon's scheduler: APScheduler wiring, catch-up at start, obeying pause and resume.

The daemon must fire each ``[schedules.NAME]`` job on time and once, including across
restarts, reloads and DST changes, while the admin pauses and resumes schedules from
another process. Pausing is kept in the store (``schedule_state``):
``Publisher.pause_schedule`` and ``resume_schedule`` write it, and a running
:class:`ScheduleRunner` polls it. The runner is a front: it calls
:class:`~publisher.app.Publisher` methods only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.exc import SQLAlchemyError

from publisher.app import Publisher
from publisher.errors import FireTimeTaken, PublisherError

if TYPE_CHECKING:
    from publisher.store.runs import ScheduleState

log = logging.getLogger("publisher.scheduler")

DEFAULT_POLL_SECONDS = 2.0


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
        self.waiting: set[asyncio.Task[None]] = set()  # retries of fire times a crashed daemon held
        self.scheduler = AsyncIOScheduler(timezone=publisher.settings.site.tz)
        self._poller: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Mark orphaned runs, add every schedule's job, start, then catch up what was missed.

        Store calls run in a thread, like a run's, to keep the web responsive.
        """
        now = self.publisher.clock()
        await asyncio.to_thread(self._close_orphans, now)
        self.scheduler.start()
        for name in self.publisher.settings.schedules:
            self._add_job(name)
        self._apply_paused(await asyncio.to_thread(self.publisher.schedule_states))
        for name in self.publisher.settings.schedules:
            fire = await asyncio.to_thread(self.publisher.missed_fire_time, name, now)
            if fire is not None:
                log.info(
                    "schedule %s: catching up the fire time %s missed while nothing scheduled",
                    name, fire.isoformat(),
                    extra={"schedule": name, "job": self.publisher.settings.schedules[name].job},
                )  # fmt: skip
                self._spawn(self.run(name, fire))
        self._poller = asyncio.create_task(self._poll_paused())

    def _close_orphans(self, now: datetime) -> None:
        for r in self.publisher.interrupt_orphaned_runs(now):
            log.warning(
                "run %d (%s) was left running by a process that ended: marked interrupted", r.id, r.job,
                extra={"schedule": r.schedule, "job": r.job, "run": r.id},
            )  # fmt: skip

    def _add_job(self, name: str) -> None:
        cfg = self.publisher.schedule_config(name)
        self.scheduler.add_job(
            self.fire,
            trigger=self.publisher.schedule_trigger(name),
            args=[name],
            id=name,
            name=name,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=int(cfg.catch_up.total_seconds()),
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
        fire = self.publisher.current_fire_time(name)
        if fire is None:
            return
        task = self._spawn(self.run(name, fire))
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)

    async def run(self, name: str, fire: datetime, lapsed_from: str | None = None) -> None:
        """Run once per fire time: one at a time per schedule, skipping what is handled or paused.

        Another daemon's live claim on the fire time (it is serving it, e.g. the scheduler
        before a handover, still finishing) skips it too; if that daemon dies mid-run its
        claim lapses, and this one serves the fire time then (see :meth:`_serve_if_lapsed`).
        """
        lock = self.busy.setdefault(name, asyncio.Lock())
        async with lock:
            state = await asyncio.to_thread(self.publisher.schedule_state, name)
            if state is not None and state.paused:
                log.info("schedule %s is paused; fire time %s skipped", name, fire.isoformat())
                return
            if state is not None and state.handled(fire):
                log.debug("schedule %s: fire time %s already handled", name, fire.isoformat())
                return
            try:
                await self.publisher.arun_schedule(name, fire, lapsed_from=lapsed_from)
            except FireTimeTaken as e:
                # The first refusal says who holds the fire time; waiting on it again stays quiet.
                log.log(logging.DEBUG if lapsed_from else logging.INFO, "%s", e, extra={"schedule": name})
                if e.holder is not None and e.holder_fire == fire and e.lapses_in is not None:
                    self._serve_if_lapsed(name, fire, e.holder, e.lapses_in)

    def _serve_if_lapsed(self, name: str, fire: datetime, holder: str, lapses_in: float) -> None:
        """Try ``fire`` again once ``holder``'s claim would lapse: if it crashed, serve it.

        If the holder finished (served) or failed (claim cleared, the fire time stays
        unserved as after any failure), the retry finds nothing to take; while it keeps
        renewing, the retry waits again.
        """

        async def later() -> None:
            await asyncio.sleep(max(0.0, lapses_in) + 1)
            self._spawn(self.run(name, fire, lapsed_from=holder))

        task = asyncio.create_task(later())
        self.waiting.add(task)
        task.add_done_callback(self.waiting.discard)

    async def _poll_paused(self) -> None:
        """Obey `schedules pause/resume` from other processes within one poll interval."""
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                self._apply_paused(await asyncio.to_thread(self.publisher.schedule_states))
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
                when = job.next_run_time
                log.info(
                    "schedule %s resumed; next run %s", job.id, when.isoformat() if when else "none",
                    extra={"schedule": job.id},
                )  # fmt: skip

    def next_run_times(self) -> dict[str, datetime | None]:
        return {job.id: job.next_run_time for job in self.scheduler.get_jobs()}

    def stop_taking_work(self) -> None:
        """No new runs from now on; runs in progress go on (see :meth:`wait_idle`)."""
        if self._poller is not None:
            self._poller.cancel()
        for task in self.waiting:
            task.cancel()
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
