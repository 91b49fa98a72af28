"""Publisher: the one library API that the CLI, the scheduler and the web app call.

A front never reaches into the store or the pipeline modules itself; it builds a
:class:`Publisher` from settings and calls a method. That keeps the three fronts
consistent (a scheduled digest and ``publisher digest send`` take the same path)
and makes every capability testable without a front.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from publisher.config import Settings
from publisher.models import JobKind
from publisher.store import Store

if TYPE_CHECKING:
    from apscheduler.triggers.base import BaseTrigger

    from publisher.checks import CheckReport
    from publisher.config import ScheduleConfig
    from publisher.digests import DigestReport
    from publisher.feeds import BuildReport
    from publisher.ingest import IngestReport
    from publisher.models import Item
    from publisher.scheduler.locks import SchedulerLock
    from publisher.scheduler.status import ScheduleInfo, StatusReport
    from publisher.store.runs import JobRun, ScheduleState

log = logging.getLogger("publisher")

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class PublishReport:
    """What one ``publish`` did: ingest, build and the digests that were due."""

    ingest: IngestReport
    build: BuildReport
    digests: list[DigestReport]

    @property
    def ok(self) -> bool:
        return self.ingest.ok and all(d.ok for d in self.digests)


class Publisher:
    """Settings plus store; every operation the fronts offer is a method here."""

    def __init__(self, settings: Settings, store: Store | None = None, *, clock: Clock = utcnow) -> None:
        self.settings = settings
        self.store = store or Store(settings.storage.url)
        self.clock = clock
        self._stop = False

    def request_stop(self) -> None:
        """Ask running work to stop.

        Sends take no new message (in-flight ones finish, the rest stays queued); ingest
        gives up the fetch in progress and starts no other source.
        """
        self._stop = True

    def stop_requested(self) -> bool:
        return self._stop

    def close(self) -> None:
        self.store.close()

    def check(self) -> CheckReport:
        """What would fail later (templates, subjects, subscriber files, DKIM), found now."""
        from publisher.checks import check_settings

        return check_settings(self.settings)

    # -- feeds ----------------------------------------------------------------

    def ingest(self) -> IngestReport:
        """Read every source into the store; see :func:`publisher.ingest.ingest`."""
        from publisher.ingest import ingest

        return ingest(self.settings, self.store, now=self.clock(), should_stop=self.stop_requested)

    def build(self) -> BuildReport:
        """Write the feeds, OPML and index.html; only files whose bytes changed."""
        import fcntl

        from publisher.feeds import build_feeds

        # One build at a time per output folder, across processes (scheduler + CLI):
        # overlapping builds could put older bytes back after newer ones.
        out = self.settings.feeds.output_dir
        out.mkdir(parents=True, exist_ok=True)
        with (out / ".build.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return build_feeds(self.settings, self.store)

    def items(self, limit: int = 100, category: str | None = None) -> list[Item]:
        return self.store.items.latest(category, limit)

    def feed_urls(self) -> list[str]:
        """The public URL of every feed file the build writes (for start-up banners)."""
        base = self.settings.site.base_url
        exts = {"rss": ".rss.xml", "atom": ".atom.xml", "json": ".json"}
        names = ["all"] + [c.slug for c in self.settings.categories]
        return [f"{base}/feeds/{n}{exts[f]}" for n in names for f in self.settings.feeds.formats]

    def publish(self) -> PublishReport:
        """Ingest, build, then send every list's current issue that is not sent yet."""
        ingested = self.ingest()
        built = self.build()
        return PublishReport(ingested, built, self.send_due_digests())

    # -- digests ----------------------------------------------------------------

    def send_due_digests(
        self, schedule: str | None = None, fire_time: datetime | None = None
    ) -> list[DigestReport]:
        """Sync wrapper of :meth:`asend_due_digests` for the CLI."""
        import asyncio

        return asyncio.run(self.asend_due_digests(schedule=schedule, fire_time=fire_time))

    async def asend_due_digests(
        self, schedule: str | None = None, fire_time: datetime | None = None
    ) -> list[DigestReport]:
        """Send the due issue of every list (or of the lists on ``schedule``).

        ``fire_time`` is the schedule's fire time being served (a catch-up passes the
        missed one), so the period key is the same whether the run is on time or late.
        Deferred deliveries whose retry time has come are sent first.
        """
        from publisher.digests import send_digest

        reports: list[DigestReport] = []
        for lst in self.settings.lists:
            if schedule is not None and lst.schedule != schedule:
                continue
            reports.append(await send_digest(self, lst.slug, at=fire_time))
        return reports

    # -- jobs (the scheduler and `schedules run` call these) -----------------------

    async def arun_job(
        self, job: JobKind, *, schedule: str | None = None, fire_time: datetime | None = None
    ) -> dict[str, Any]:
        """Run one job kind and return counts for the job-run record.

        Raises :class:`PublisherError` when the job failed as a whole; partial failures
        (a source down, an item rejected) are in the counts with ``ok`` False.
        """
        import asyncio

        counts: dict[str, Any] = {}
        if job in (JobKind.INGEST, JobKind.PUBLISH):
            report = await asyncio.to_thread(self.ingest)
            counts.update(
                new=report.new_count,
                changed=report.changed_count,
                rejected=len(report.rejected),
                failed_sources=len(report.failed),
                ok=report.ok,
            )
            if report.skipped:  # a stop came in the middle of the sources
                counts["skipped_sources"] = len(report.skipped)
            if job == JobKind.INGEST and report.changed_anything:
                counts["written"] = len((await asyncio.to_thread(self.build)).written)
        if job in (JobKind.BUILD, JobKind.PUBLISH):
            counts["written"] = len((await asyncio.to_thread(self.build)).written)
        if job in (JobKind.DIGEST, JobKind.PUBLISH):
            sched = schedule if job == JobKind.DIGEST else None
            reports = await self.asend_due_digests(schedule=sched, fire_time=fire_time)
            counts["issues"] = sum(1 for r in reports if r.issue_id is not None)
            counts["sent"] = sum(r.sent for r in reports)
            counts["deferred"] = sum(r.deferred for r in reports)
            counts["failed"] = sum(r.failed for r in reports)
            counts.setdefault("ok", True)
            counts["ok"] = counts["ok"] and all(r.ok for r in reports)
        if job not in list(JobKind):
            from publisher.errors import SchedulerError

            raise SchedulerError(f"unknown job {job!r}; use ingest, build, digest or publish")
        return counts

    # -- schedules and status (the daemon's ScheduleRunner and `schedules`/`status` call these) --

    def schedule_config(self, name: str) -> ScheduleConfig:
        """The config of schedule ``name``; an unknown name is a SchedulerError naming the known."""
        from publisher.periods import schedule_config

        return schedule_config(self.settings, name)

    def schedule_trigger(self, name: str) -> BaseTrigger:
        """The APScheduler trigger of schedule ``name`` in its time zone."""
        from publisher.periods import schedule_trigger

        return schedule_trigger(self.settings, name)

    def current_fire_time(self, name: str) -> datetime | None:
        """The fire time a run of ``name`` starting now serves (the latest at or before now)."""
        from publisher.scheduler.triggers import fire_time_at

        return fire_time_at(self.settings, name, self.clock())

    def missed_fire_time(self, name: str, now: datetime) -> datetime | None:
        """The fire time of ``name`` a start at ``now`` catches up, or None; see the stage."""
        from publisher.scheduler.triggers import missed_fire_time

        return missed_fire_time(self.settings, self.store, now, name)

    def schedules(self, now: datetime | None = None) -> list[ScheduleInfo]:
        """Every schedule with its next runs after ``now`` (default: the clock) and last run."""
        from publisher.scheduler.status import schedules_overview

        return schedules_overview(self.settings, self.store, now or self.clock())

    def schedule_state(self, name: str) -> ScheduleState | None:
        """What the store remembers of ``name`` (paused, last fire served); None if never seen."""
        return self.store.runs.state(name)

    def schedule_states(self) -> dict[str, ScheduleState]:
        """Every schedule's state, by name (a running scheduler polls it for pauses)."""
        return self.store.runs.states()

    def pause_schedule(self, name: str) -> None:
        """Pause ``name`` in the store; a running daemon obeys within its poll interval."""
        self.schedule_config(name)
        self.store.runs.set_paused(name, True, self.clock())

    def resume_schedule(self, name: str) -> None:
        """Resume ``name``; a running daemon schedules it again within its poll interval."""
        self.schedule_config(name)
        self.store.runs.set_paused(name, False, self.clock())

    async def arun_schedule(self, name: str, fire_time: datetime | None) -> JobRun:
        """Run ``name``'s job for ``fire_time`` through :meth:`arun_job`, recorded in job_runs.

        Failures are recorded and returned, never raised (one bad run must not stop the daemon).
        """
        from publisher.scheduler.runs import execute

        return await execute(self.settings, self.store, self.clock, name, fire_time, self.arun_job)

    async def arun_schedule_now(self, name: str) -> JobRun:
        """Run ``name`` now for its current period, as the scheduler would (recorded)."""
        from publisher.scheduler.runs import arun_schedule_now

        return await arun_schedule_now(self.settings, self.store, self.clock, name, self.arun_job)

    def run_schedule_now(self, name: str) -> JobRun:
        """Sync front of :meth:`arun_schedule_now` for the CLI."""
        import asyncio

        return asyncio.run(self.arun_schedule_now(name))

    def interrupt_orphaned_runs(self, now: datetime) -> list[JobRun]:
        """Mark runs left 'running' by dead processes of this host interrupted; return them."""
        from publisher.scheduler.runs import interrupt_orphaned_runs

        return interrupt_orphaned_runs(self.store, now)

    def scheduler_lock(self) -> SchedulerLock:
        """The cross-process lock that makes one process the scheduler of this store."""
        from publisher.scheduler.locks import scheduler_lock

        return scheduler_lock(self.store)

    def status(self, *, limit: int = 10) -> StatusReport:
        """What `publisher status` shows: sources, items, lists, issues, queue, runs, schedules."""
        from publisher.scheduler.status import status_report

        return status_report(self.settings, self.store, self.clock(), limit=limit)

    def reconfigured(self, settings: Settings) -> Publisher:
        """A Publisher for reloaded ``settings`` with this clock, on this store if its URL is unchanged."""
        same = settings.storage.url == self.settings.storage.url
        return Publisher(settings, self.store if same else None, clock=self.clock)

    def shares_store(self, other: Publisher) -> bool:
        """Whether ``other`` works on this very store (a reload keeps the lock and connections)."""
        return other.store is self.store
