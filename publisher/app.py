"""Publisher: the one library API that the CLI, the scheduler and the web app call.

A front never reaches into the store or the pipeline modules itself; it builds a
:class:`Publisher` from settings and calls a method. That keeps the three fronts
consistent (a scheduled digest and ``publisher digest send`` take the same path)
and makes every capability testable without a front.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from apscheduler.triggers.base import BaseTrigger

from publisher import admin_auth, digests, signups, subscriptions
from publisher.admin_auth import AdminSession, AuditEntry, LoginOutcome, LoginResult
from publisher.archive import build_archive, build_templates, issue_url
from publisher.bounces.apply import apply_feedback, suppress_address, unsuppress_address
from publisher.build_manifest import CONFIG_DIGEST_FILE, build_digest, built_config
from publisher.checks import CheckReport, check_settings
from publisher.config import ScheduleConfig, Settings
from publisher.config_edit import ScheduleEdit, plan_schedule_edit, save_schedule_edit
from publisher.dashboard import Dashboard, dashboard
from publisher.digests import DigestReport, FailureReport, IssuePreview, Preview, Requeued
from publisher.errors import ConfigError, ItemError, MailError, SchedulerError, StoreError
from publisher.feed_pages import has_page, page_path
from publisher.feeds import BuildReport, build_feeds, write_if_changed
from publisher.i18n import LANGUAGE_NAMES, normalise_language
from publisher.ingest import IngestReport
from publisher.ingest import ingest as ingest_sources
from publisher.ledger import DeliveryTally, ProgressFn
from publisher.links import LinkHolder, link_holder
from publisher.mailer import SendResult
from publisher.models import (
    NOT_SENT,
    Clock,
    DeliveryStatus,
    FeedbackEvent,
    FeedbackOutcome,
    IngestRejection,
    JobKind,
    ListedItem,
    SourceState,
    Subscriber,
    SubscriptionStatus,
    Unsubscribe,
)
from publisher.periods import schedule_config, schedule_trigger
from publisher.scheduler.locks import SchedulerLock, Timings, scheduler_lock
from publisher.scheduler.runs import arun_schedule_now, execute, interrupt_orphaned_runs
from publisher.scheduler.status import ScheduleInfo, StatusReport, schedules_overview, status_report
from publisher.scheduler.triggers import fire_time_at, missed_fire_time
from publisher.signups import ConfirmLink, LinkState, PendingSignup, SignupOutcome, SignupResult
from publisher.spamcheck import SpamReport, check_message, find_spamassassin
from publisher.store import Store
from publisher.store.copy import CopyReport, copy_store
from publisher.store.db import make_engine
from publisher.store.issues import IssueSummary
from publisher.store.runs import JobRun, ScheduleState
from publisher.store.subscribers import DeliveryRecord, SubscriberMatch, SubscriberRecord
from publisher.subscriptions import ImportCheck, ImportReport, Progress
from publisher.templating import make_environment, render_template, translator
from publisher.text import inert_json
from publisher.uploads import HeldUploads
from publisher.websub import HubPinger, PingTally

if TYPE_CHECKING:
    # Imported where used: the IMAP/DSN parsing and the SNS certificate checks cost every
    # CLI start-up (``publisher --help`` too) a few tens of ms and only two methods need them.
    from publisher.bounces.process import BounceRunReport
    from publisher.bounces.webhooks import SnsVerifier, WebhookResult

__all__ = [
    "AdminSession",
    "AuditEntry",
    "Clock",
    "ConfirmLink",
    "FailureReport",
    "ItemChange",
    "LinkHolder",
    "LinkState",
    "LoginOutcome",
    "LoginResult",
    "PendingSignup",
    "PublishReport",
    "Publisher",
    "ScheduleEdit",
    "SignupOutcome",
    "SignupResult",
    "SpamReport",
    "inert_json",  # for the CLI's --json and JSON log lines
    "utcnow",
]

log = logging.getLogger("publisher")

#: ``worker --interval``: seconds between queue polls. Under the minimum a worker with
#: nothing to send busy-loops on the database (0 ran thousands of transactions a second);
#: the maximum keeps a stop or a lost lease from waiting on a sleep of hours.
WORKER_INTERVAL_MIN = 0.1
WORKER_INTERVAL_MAX = 3600.0

#: How long a one-shot command (`build`, `publish`) waits for its WebSub pings before
#: exiting; the daemon never waits (its pings go on in the background).
HUB_PING_WAIT = 30.0


def utcnow() -> datetime:
    return datetime.now(UTC)


def hash_admin_password(password: str) -> str:
    """``admin hash-password``: an argon2id hash for ``PUBLISHER_ADMIN_{USER}_HASH`` (needs no config)."""
    return admin_auth.hash_password(password)


def check_config(settings: Settings) -> CheckReport:
    """``check``: what would fail later, found from the settings alone.

    Needs no :class:`Publisher` (whose store migrates the database when it opens): a
    new version's ``check`` run before an upgrade must not migrate, or even create, the
    store that the running version still uses.
    """
    return check_settings(settings)


@dataclass
class PublishReport:
    """What one ``publish`` did: ingest, build and the digests that were due."""

    ingest: IngestReport
    build: BuildReport
    digests: list[DigestReport]

    @property
    def ok(self) -> bool:
        return self.ingest.ok and all(d.ok for d in self.digests)


@dataclass
class ItemChange:
    """What ``items hide`` / ``unhide`` did: the item as it now stands, and the rebuild."""

    item: ListedItem
    changed: bool  # False: it already was hidden (or shown)
    build: BuildReport | None  # None when nothing changed or no build was asked


@dataclass(frozen=True, slots=True)
class IssueLine:
    """One past issue of a list with its counts, and its archive page ('' when it has none)."""

    summary: IssueSummary
    archive_url: str


@dataclass(frozen=True, slots=True)
class ListOverview:
    """A list as the console's Lists page shows it: subscribers by status and past issues."""

    slug: str
    name: str
    public: bool
    schedule: str | None
    languages: tuple[str, ...]
    subscribers: Mapping[str, int]
    issues: tuple[IssueLine, ...]


@dataclass(frozen=True, slots=True)
class SubscriberPage:
    """One page of a subscriber search: the matches, how many in all, and where we are."""

    text: str
    matches: list[SubscriberMatch]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


@dataclass(frozen=True, slots=True)
class HeldImport:
    """A subscriber file uploaded to the console and checked, waiting for "commit"."""

    id: str
    list_slug: str
    check: ImportCheck


@dataclass(frozen=True, slots=True)
class IngestProblems:
    """What went wrong in the sources' last reads: failed sources and rejected items."""

    failed: list[SourceState]
    rejected: list[IngestRejection]


class Publisher:
    """Settings plus store; every operation the fronts offer is a method here."""

    def __init__(
        self,
        settings: Settings,
        store: Store | None = None,
        *,
        clock: Clock = utcnow,
        sns_fetch: Callable[[str], bytes] | None = None,
    ) -> None:
        """``sns_fetch`` replaces how SNS certificates and SubscribeURLs are read (tests).

        Only URLs that already passed the SNS host rule reach it
        (publisher.bounces.webhooks.SnsVerifier); the default is a bounded HTTPS GET.
        """
        self.settings = settings
        self.store = store or Store(settings.storage.url)
        self.clock = clock
        self._stop = False
        self._sns_fetch = sns_fetch
        self._sns: SnsVerifier | None = None  # built by the first webhook; it caches certificates
        # WebSub pings run in this thread's background (publisher.websub); None: no hubs.
        self.hub_pinger: HubPinger | None = (
            HubPinger(settings.feeds.websub_hubs) if settings.feeds.websub_hubs else None
        )

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

    def copy_store(self, target_url: str, progress: Callable[[str, int], None] | None = None) -> CopyReport:
        """``storage copy``: every row of the configured store into a new, empty one.

        The target is migrated first (as any store is when it opens), so both hold the
        same schema; the configured store is only read. The scheduler lock is held for
        the copy: a running daemon (which holds it) is refused rather than copied from
        while it writes, and one started meanwhile waits instead of firing.
        """
        lock = self.scheduler_lock()
        if not lock.acquire():
            raise StoreError(
                f"`publisher run` is running on this store (it holds the scheduler lock, "
                f"{lock.description}): stop it and every `publisher worker`, then copy"
            )
        try:
            target = Store(target_url, engine=make_engine(target_url, key="TARGET_URL"))
            try:
                return copy_store(self.store.engine, target.engine, progress=progress)
            finally:
                target.close()
        finally:
            lock.release()

    def check(self) -> CheckReport:
        """What would fail later (templates, subjects, subscriber files, DKIM), found now."""
        return check_config(self.settings)

    # -- feeds ----------------------------------------------------------------

    def ingest(self) -> IngestReport:
        """Read every source into the store; see :func:`publisher.ingest.ingest`.

        Every run also purges web sign-ups left unconfirmed past ``confirm_within``: ingest
        runs often on every deployment, so no extra job kind or schedule is needed.
        """
        report = ingest_sources(self.settings, self.store, now=self.clock(), should_stop=self.stop_requested)
        purged = self.purge_stale_signups()
        if purged:
            log.info("purged %d sign-up(s) left unconfirmed", purged)
        return report

    def build(self) -> BuildReport:
        """Write the feeds, OPML, index.html and the archive; only files whose bytes changed.

        A complete build records the digest of the configuration and templates it was
        written from (:meth:`_build_digest`), which :meth:`build_if_reconfigured` compares
        with the running one. Taken before building: a template edited meanwhile makes the
        next comparison differ, so it is built again.
        """
        digest = self._build_digest()
        with self._build_lock():
            report = build_feeds(self.settings, self.store)
            archived = build_archive(self.settings, self.store)
            out = self.settings.feeds.output_dir
            write_if_changed(out / CONFIG_DIGEST_FILE, f"{digest}\n".encode("ascii"))
        report.written += archived.written
        report.unchanged += archived.unchanged
        if self.hub_pinger is not None and report.feeds_changed:
            # Queued, not sent: the pings go out in the background (publisher.websub).
            report.hub_pings = self.hub_pinger.submit(report.feeds_changed)
        return report

    def needs_build(self) -> bool:
        """Whether the output folder was last built from another configuration of what is
        published (a list made private or renamed, archive or feed settings...), from other
        page templates (an override of ``web/index.html.j2`` edited, added or removed), or
        never.

        Cheap (a digest of the settings, the build's template files and one small file
        read; under a millisecond once the templates were parsed), so every start, reload
        and ingest can ask.
        """
        return built_config(self.settings.feeds.output_dir) != self._build_digest()

    def _build_digest(self) -> str:
        return build_digest(self.settings, build_templates(self.settings))

    def build_if_reconfigured(self) -> BuildReport | None:
        """Build when :meth:`needs_build` says so; None when the output is up to date.

        Without it a list made private stayed on the web (archive, sign-up box) until
        something else rebuilt: a reload or restart changes no item, so no ingest does.
        """
        return self.build() if self.needs_build() else None

    def hub_ping_tally(self) -> PingTally:
        """WebSub pings delivered and given up since the last tally, and those waiting."""
        return self.hub_pinger.take_tally() if self.hub_pinger is not None else PingTally()

    def finish_hub_pings(self, timeout: float = HUB_PING_WAIT) -> PingTally:
        """For one-shot commands: wait (at most ``timeout`` s) for queued pings, then tally.

        The process is about to exit, which would drop the background thread's queue; what
        is still waiting after ``timeout`` is reported as pending and not retried.
        """
        if self.hub_pinger is None:
            return PingTally()
        self.hub_pinger.wait(timeout)
        return self.hub_pinger.take_tally()

    def build_archive(self) -> BuildReport:
        """Write the archive of sent issues only (after a send; see :meth:`send_digest`)."""
        with self._build_lock():
            return build_archive(self.settings, self.store)

    @contextlib.contextmanager
    def _build_lock(self) -> Iterator[None]:
        """One build at a time per output folder, across processes (scheduler + CLI):
        overlapping builds could put older bytes back after newer ones."""
        out = self.settings.feeds.output_dir
        out.mkdir(parents=True, exist_ok=True)
        with (out / ".build.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def items(self, limit: int = 100, category: str | None = None) -> list[ListedItem]:
        """Stored items newest first, each with whether readers see it and why not."""
        return self.store.items.listing(self.settings.source_names, category, limit)

    def hide_item(self, item_id: str, *, build: bool = True) -> ItemChange:
        """Withdraw an item from every feed, index.html and future issue (kept in the store).

        The feeds are rebuilt at once (``build``): an item published by mistake should
        not wait for the next ingest that finds something new. Unknown id: ItemError.
        """
        return self._set_hidden(item_id, True, build)

    def unhide_item(self, item_id: str, *, build: bool = True) -> ItemChange:
        """Undo :meth:`hide_item`: the item is shown again (if its source is still configured)."""
        return self._set_hidden(item_id, False, build)

    def _set_hidden(self, item_id: str, hidden: bool, build: bool) -> ItemChange:
        before = self.store.items.set_hidden(item_id, hidden)
        if before is None:
            raise ItemError(f"item {item_id!r}", "no stored item has this id; 'publisher items' lists them")
        (listed,) = self.store.items.listing(self.settings.source_names, item_id=item_id)
        built = self.build() if build and before != hidden else None
        return ItemChange(listed, changed=before != hidden, build=built)

    def ingest_problems(self) -> IngestProblems:
        """The sources whose last read failed (with the error) and the items last rejected."""
        names = self.settings.source_names
        failed = [s for s in self.store.sources.all() if s.last_error and s.name in names]
        return IngestProblems(failed, self.store.sources.rejections(names))

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
        return asyncio.run(self.asend_due_digests(schedule=schedule, fire_time=fire_time))

    async def asend_due_digests(
        self, schedule: str | None = None, fire_time: datetime | None = None
    ) -> list[DigestReport]:
        """Send the due issue of every list (or of the lists on ``schedule``).

        ``fire_time`` is the schedule's fire time being served (a catch-up passes the
        missed one), so the period key is the same whether the run is on time or late.
        Deferred deliveries whose retry time has come are sent first.
        """
        reports: list[DigestReport] = []
        try:
            for lst in self.settings.lists:
                if schedule is not None and lst.schedule != schedule:
                    continue
                reports.append(await self.send_digest(lst.slug, at=fire_time, rebuild_archive=False))
        finally:  # once for all lists, also when a later list's relay is down
            if any(self._archived(r) for r in reports):
                await asyncio.to_thread(self.build_archive)
        return reports

    async def send_digest(
        self,
        list_slug: str,
        *,
        at: datetime | None = None,
        force: bool = False,
        progress: ProgressFn | None = None,
        rebuild_archive: bool = True,
    ) -> DigestReport:
        """``digest send LIST``: this period's issue (once) and the list's due deliveries.

        When a mail of a public list went out, the archive is rebuilt at once, so the
        "view in browser" link the reader just got works (and the scheduler's digest
        job, ``digest send`` and ``publish`` all show the issue without a separate build).
        :meth:`asend_due_digests` passes ``rebuild_archive=False`` and rebuilds once for
        all its lists. With ``[delivery] mode = "workers"`` nothing is sent here (the
        report's ``queued`` deliveries wait for ``publisher worker``).
        """
        report = await digests.send_digest(
            self.settings,
            self.store,
            self.clock,
            list_slug,
            stop_requested=self.stop_requested,
            at=at,
            force=force,
            progress=progress,
        )
        if rebuild_archive and self._archived(report):
            await asyncio.to_thread(self.build_archive)
        return report

    def _archived(self, report: DigestReport) -> bool:
        """Whether a send changed the archive: a mail of a public list went out."""
        return bool(report.sent) and self.settings.list_config(report.list_slug).public

    def preview_digest(self, list_slug: str, out_dir: Path, *, spam_check: bool = False) -> Preview:
        """``digest preview``: the next issue as .html and .eml for a sample subscriber.

        With ``spam_check`` the .eml (signed as a real message would be) is also scored
        by SpamAssassin, in ``Preview.spam``; a missing SpamAssassin fails before
        anything is rendered or written.
        """
        program = find_spamassassin() if spam_check else None
        preview = digests.preview(self.settings, self.store, self.clock, list_slug, out_dir)
        if program is not None:
            eml = next(path for path in preview.files if path.suffix == ".eml")
            preview.spam = check_message(eml.read_bytes(), program=program)
        return preview

    def dry_run_digest(self, list_slug: str) -> Preview:
        """``digest send --dry-run``: what a send would do now; records nothing."""
        return digests.dry_run(self.settings, self.store, self.clock, list_slug)

    async def send_test_copy(
        self, list_slug: str, address: str, language: str | None = None
    ) -> SendResult | None:
        """``digest send --to``: what a preview shows, to one address, marked [TEST]."""
        return await digests.send_test_copy(
            self.settings, self.store, self.clock, list_slug, address, language
        )

    def preview_issue(self, list_slug: str, language: str) -> IssuePreview:
        """The console's preview: the next issue in a catalogue ``language``, in memory."""
        if language not in LANGUAGE_NAMES:
            raise ConfigError(f"language {language!r}: choose one of {', '.join(LANGUAGE_NAMES)}")
        return digests.render_preview(self.settings, self.store, self.clock, list_slug, language)

    def lists_overview(self, issues: int = 10, only: str | None = None) -> list[ListOverview]:
        """Every configured list (or just ``only``): subscribers by status, ``issues`` latest issues.

        ``only`` is for one list's page, which need not read every other list's issues.
        """
        found = []
        for lst in self.settings.lists:
            if only is not None and lst.slug != only:
                continue
            lines = tuple(
                IssueLine(s, issue_url(self.settings, lst, s.period_key) if s.sent else "")
                for s in self.store.issues.summaries(lst.slug, issues)
            )
            found.append(
                ListOverview(
                    lst.slug,
                    lst.name,
                    lst.public,
                    lst.schedule,
                    tuple(lst.languages),
                    self.store.subscribers.counts_by_status(lst.slug),
                    lines,
                )
            )
        return found

    def digest_status(self, list_slug: str | None = None, limit: int = 20) -> list[IssueSummary]:
        """``digest status``: issues, newest first, with their delivery counts and workers."""
        return digests.status(self.settings, self.store, list_slug, limit)

    def delivery_failures(
        self,
        list_slug: str | None = None,
        *,
        issue_id: int | None = None,
        statuses: tuple[DeliveryStatus, ...] = NOT_SENT,
        limit: int = 50,
    ) -> FailureReport:
        """``digest failures``: why an issue's deliveries were not sent (newest issue per list by default)."""
        return digests.failures(
            self.settings, self.store, list_slug, issue_id=issue_id, statuses=statuses, limit=limit
        )

    def idle_queue_warning(self) -> str | None:
        """In ``workers`` mode: a warning when deliveries are queued and no worker is alive."""
        return digests.idle_queue_warning(self.settings, self.store)

    def requeue_unknown(self, list_slug: str) -> int:
        """``--resend-unknown``: queue the list's unknown-outcome messages again."""
        return digests.requeue_unknown(self.settings, self.store, self.clock, list_slug)

    def requeue_stopped_unknown(
        self, list_slug: str | None = None, *, issue_id: int | None = None, dry_run: bool = False
    ) -> list[Requeued]:
        """``digest requeue-unknown``: repair what an older version marked unknown."""
        return digests.requeue_stopped_unknown(
            self.settings, self.store, self.clock, list_slug, issue_id=issue_id, dry_run=dry_run
        )

    async def deliver_queue(
        self,
        *,
        once: bool = False,
        interval: float = 5.0,
        on_round: Callable[[DeliveryTally], None] | None = None,
    ) -> None:
        """``worker``: deliver every due message of every list until a stop is asked.

        ``interval`` (seconds between polls) must lie within WORKER_INTERVAL_MIN and
        WORKER_INTERVAL_MAX: ConfigError otherwise, before anything is claimed.
        """
        if not WORKER_INTERVAL_MIN <= interval <= WORKER_INTERVAL_MAX:  # also false for NaN
            raise ConfigError(
                f"worker interval {interval!r}: choose between {WORKER_INTERVAL_MIN:g} and "
                f"{WORKER_INTERVAL_MAX:g} seconds"
            )
        await digests.deliver_queue(
            self.settings,
            self.store,
            self.clock,
            stop_requested=self.stop_requested,
            once=once,
            interval=interval,
            on_round=on_round,
        )

    # -- subscribers --------------------------------------------------------------

    def import_subscribers(
        self, list_slug: str, path: Path, progress: Progress | None = None
    ) -> ImportReport:
        """``subscribers import``: a CSV into a list as confirmed, idempotently."""
        return subscriptions.import_csv(
            self.settings, self.store, list_slug, path, now=self.clock(), progress=progress
        )

    def export_subscribers(self, list_slug: str, out: TextIO) -> int:
        """``subscribers export``: the list as CSV (status and consent); the row count."""
        self.settings.list_config(list_slug)
        return subscriptions.export_csv(self.store, list_slug, out)

    def add_subscriber(
        self, list_slug: str, email: str, name: str = "", language: str | None = None, *, force: bool = False
    ) -> Subscriber:
        """``subscribers add``: one address as confirmed (consent "cli")."""
        self.settings.list_config(list_slug)
        return subscriptions.add(
            self.settings, self.store, list_slug, email, name, language, force=force, now=self.clock()
        )

    def remove_subscriber(self, list_slug: str, email: str) -> Unsubscribe:
        """``subscribers remove``: unsubscribe, kept as a suppression; idempotent.

        A bounced or complained address stays so, with the unsubscribe recorded
        (``Unsubscribe.RECORDED``): lifting the suppression leaves it unsubscribed.
        """
        self.settings.list_config(list_slug)
        return subscriptions.remove(self.store, list_slug, email, now=self.clock())

    def subscriber(self, email: str) -> SubscriberRecord:
        """``subscribers show``: status per list, consent, attributes and history."""
        return subscriptions.show(self.store, email)

    def search_subscribers(self, text: str = "", page: int = 1, per_page: int = 50) -> SubscriberPage:
        """The console's search: addresses or names containing ``text``, by address, paged."""
        page = max(1, page)
        matches, total = self.store.subscribers.search(text.strip()[:200], per_page, (page - 1) * per_page)
        return SubscriberPage(text, matches, total, page, per_page)

    def subscriber_record(self, subscriber_id: int) -> SubscriberRecord | None:
        """One subscriber by id (the console's subscriber page; addresses stay out of URLs)."""
        return self.store.subscribers.record(subscriber_id)

    def subscriber_deliveries(self, subscriber_id: int) -> list[DeliveryRecord]:
        """Every digest delivery to one subscriber, oldest first."""
        return self.store.subscribers.deliveries_since(subscriber_id, datetime(1970, 1, 1, tzinfo=UTC))

    def _uploads(self) -> HeldUploads:
        return HeldUploads(self.settings.base_dir / "var" / "uploads")

    def hold_import(self, list_slug: str, name: str, data: bytes, username: str) -> HeldImport:
        """Keep an uploaded subscriber file on the server and check it; nothing is imported.

        An unreadable file (no ``email`` column, not a CSV) is dropped again and its
        SubscriberError raised, so nothing lingers for a commit.
        """
        self.settings.list_config(list_slug)
        uploads = self._uploads()
        held = uploads.hold(data, name, list_slug, username, self.clock())
        try:
            check = subscriptions.check_import(self.settings, list_slug, held.path)
        except Exception:
            uploads.drop(held.id)
            raise
        return HeldImport(held.id, list_slug, check)

    def held_import(self, upload_id: str, username: str) -> HeldImport:
        """A held upload of ``username``, checked again; SubscriberError if gone or another's."""
        held = self._uploads().get(upload_id, username, self.clock())
        return HeldImport(
            held.id, held.list_slug, subscriptions.check_import(self.settings, held.list_slug, held.path)
        )

    def commit_import(self, upload_id: str, username: str) -> ImportReport:
        """Import a held upload exactly as checked (``subscribers import``), then drop it."""
        uploads = self._uploads()
        held = uploads.get(upload_id, username, self.clock())
        report = self.import_subscribers(held.list_slug, held.path)
        uploads.drop(upload_id)
        return report

    def discard_import(self, upload_id: str, username: str) -> str:
        """Drop a held upload without importing it; the list it was for."""
        uploads = self._uploads()
        held = uploads.get(upload_id, username, self.clock())
        uploads.drop(held.id)
        return held.list_slug

    def forget_subscriber(self, email: str) -> bool:
        """``subscribers forget``: erase personal data, keep a hash so imports stay suppressed.

        The console's audit lines named the address; it is replaced there by "forgotten"
        (each line keeps the subscriber's ``#id``), so the log keeps no personal data either.
        """
        forgotten = subscriptions.forget(self.store, email, now=self.clock())
        if forgotten:
            self.store.admin.scrub_audit(subscriptions.normalise_address(email), "forgotten")
        return forgotten

    def pending_signups(self, list_slug: str | None = None) -> list[PendingSignup]:
        """``subscribers pending``: unconfirmed sign-ups, oldest first, with their consent."""
        if list_slug is not None:
            self.settings.list_config(list_slug)
        return self.store.signups.pending(list_slug)

    def confirm_subscriber(self, email: str, list_slug: str) -> bool:
        """``subscribers confirm``: confirm a pending sign-up by hand (consent "admin")."""
        return signups.confirm_by_admin(self.settings, self.store, self.clock(), email, list_slug)

    def purge_stale_signups(self) -> int:
        """Delete sign-ups pending longer than ``[subscriptions] confirm_within``."""
        return signups.purge_stale(self.settings, self.store, self.clock())

    # -- web sign-up (the web front) ---------------------------------------------------

    @property
    def public_lists(self) -> dict[str, str]:
        """Slugs and names of the lists the web offers (``public = true``), in config order."""
        return {lst.slug: lst.name for lst in signups.public_lists(self.settings)}

    def consent_text(self, language: str) -> str:
        """The consent sentence the sign-up form shows (and stores) in ``language``."""
        return signups.consent_text(self.settings, language)

    def form_token(self, form: str) -> str:
        """A CSRF token for ``form``, signed with the store's server secret."""
        return signups.form_token(self.store, form, self.clock())

    def check_form_token(self, form: str, token: str) -> None:
        """TokenError unless ``token`` was made by :meth:`form_token` for ``form`` within a day."""
        signups.check_form_token(self.store, form, token, self.clock())

    def check_signup(self, email: str, name: str, lists: list[str]) -> None:
        """SubscriberError (``where`` names the field) when the sign-up form is not usable."""
        signups.check_signup(self.settings, email, name, lists)

    def signup_limited(self, client: str) -> bool:
        """Whether ``client`` is over ``per_ip_per_hour``; only reads (:meth:`sign_up` counts)."""
        return signups.over_ip_limit(self.settings, self.store, self.clock(), client)

    def sign_up(self, *, email: str, name: str, language: str, lists: list[str], client: str) -> SignupResult:
        """The sign-up form's POST: pending, consent recorded, the confirmation mail to send."""
        return signups.sign_up(
            self.settings,
            self.store,
            self.clock(),
            email=email,
            name=name,
            language=language,
            lists=lists,
            client=client,
        )

    async def send_signup_mail(self, result: SignupResult) -> SendResult | None:
        """Send a sign-up's confirmation mail now through the configured transport; logs a failure."""
        if result.mail is None:
            return None
        try:
            sent = await signups.send_mail(self.settings, result.mail)
        except MailError as e:
            log.warning("the confirmation mail could not be sent: %s", e)
            return None
        if sent is not None and sent.status is not DeliveryStatus.SENT:
            log.warning("the confirmation mail was not accepted: %s %s", sent.code, sent.text)
        return sent

    def confirm_link(self, token: str) -> ConfirmLink:
        """What a confirmation link is for; TokenError when forged or of nobody we know."""
        return signups.confirm_link(self.settings, self.store, token, self.clock())

    def confirm_signup(self, token: str, *, source: str) -> ConfirmLink:
        """The confirmation page's POST: pending becomes confirmed, time and IP recorded."""
        return signups.confirm(self.settings, self.store, token, self.clock(), source=source)

    # -- subscriber pages (the web front) -------------------------------------------

    def link_holder(self, token: str, purpose: str) -> LinkHolder:
        """Who a mailed link is for; TokenError when forged, altered or of nobody we know."""
        return link_holder(self.settings, self.store, token, purpose)

    def unsubscribe(self, holder: LinkHolder, *, method: str, source: str) -> None:
        """The unsubscribe page's POST (or a mail client's RFC 8058 one-click POST)."""
        subscriptions.unsubscribe_by_id(
            self.store, holder.subscriber_id, holder.list_slug, method=method, source=source, now=self.clock()
        )

    def resubscribe(self, holder: LinkHolder, *, source: str) -> bool:
        """The "subscribe again" button of the unsubscribe page: the address is proven by its link.

        Only where :meth:`can_rejoin` allows it (a forged POST cannot join a private list
        or lift a bounce); whether the holder is on the list now.
        """
        if not self.can_rejoin(holder):
            return False
        subscriptions.update_preferences(
            self.store,
            holder.subscriber_id,
            {holder.list_slug: True},
            source=source,
            lists=list(self.list_names),
            now=self.clock(),
        )
        return self.is_subscribed(holder)

    def can_rejoin(self, holder: LinkHolder) -> bool:
        """Whether the link's list may be joined from the web: a public list, an address no
        bounce or complaint stopped (:func:`publisher.subscriptions.join_blocked`)."""
        return holder.list_slug in self.public_lists and not self.join_blocked(holder)

    def join_blocked(self, holder: LinkHolder) -> bool:
        """Whether a bounce or complaint (on any list) stops every join until an admin lifts it."""
        return subscriptions.join_blocked(self.store, holder.subscriber_id)

    def is_subscribed(self, holder: LinkHolder) -> bool:
        """Whether the link's address is confirmed on the link's list right now."""
        statuses = subscriptions.preferences(self.store, holder.subscriber_id)
        return statuses.get(holder.list_slug) is SubscriptionStatus.CONFIRMED

    def subscriptions_of(self, holder: LinkHolder) -> dict[str, SubscriptionStatus]:
        """The preferences page: the configured lists the holder was ever on, with status."""
        statuses = subscriptions.preferences(self.store, holder.subscriber_id)
        return {slug: status for slug, status in statuses.items() if slug in self.list_names}

    def update_subscriptions(self, holder: LinkHolder, chosen: set[str], *, source: str) -> None:
        """The preferences page's POST: join or leave the public lists, leave private ones.

        Joining needs no second confirmation: the address is proven by its own link.
        """
        choices = subscriptions.web_choices(
            subscriptions.preferences(self.store, holder.subscriber_id),
            chosen,
            public=list(self.public_lists),
            configured=list(self.list_names),
        )
        subscriptions.update_preferences(
            self.store,
            holder.subscriber_id,
            choices,
            source=source,
            lists=list(self.list_names),
            now=self.clock(),
        )

    def leave_all_lists(self, holder: LinkHolder, *, source: str) -> int:
        """The preferences page's "leave every list" button; how many lists were left."""
        return subscriptions.leave_all(self.store, holder.subscriber_id, source=source, now=self.clock())

    def set_subscriber_language(self, holder: LinkHolder, language: str) -> str:
        """The preferences page's language choice; SubscriberError when it is not offered."""
        return subscriptions.set_language(self.store, holder.subscriber_id, language)

    def subscriber_data(self, holder: LinkHolder) -> dict[str, object]:
        """The preferences page's export: the holder's own data, JSON-ready."""
        return subscriptions.personal_data(self.store, holder.subscriber_id, now=self.clock())

    @property
    def page_languages(self) -> dict[str, str]:
        """The languages a subscriber can choose, each named in itself."""
        return dict(LANGUAGE_NAMES)

    @property
    def list_names(self) -> dict[str, str]:
        """Configured list slugs and their display names."""
        return {lst.slug: lst.name for lst in self.settings.lists}

    def render_page(self, name: str, language: str, context: Mapping[str, Any]) -> str:
        """A web page from its (sandboxed, overridable) template, in ``language``."""
        env = make_environment(self.settings)
        return render_template(
            env,
            name,
            {"site": self.settings.site, "t": translator(language), "language": language, **context},
        )

    @staticmethod
    def feed_page_path(feed_path: str) -> str | None:
        """Where the build writes the HTML page a browser gets for the feed file at
        ``feed_path`` (relative to the output folder), e.g. ``feeds/all.atom.xml`` ->
        ``.feed-pages/feeds/all.atom.xml.html``; None for a file that has none (JSON
        Feed, anything that is not an RSS or Atom file)."""
        return page_path(feed_path) if has_page(feed_path) else None

    def translator(self, language: str) -> Callable[..., str]:
        """``t(key, **values)``: the fixed texts of pages and mails in ``language``."""
        return translator(language)

    def page_language(self, requested: str | None = None) -> str:
        """The catalogue language for a page: the reader's if offered, else the site's."""
        return normalise_language(requested, self.settings.site.language)

    # -- admin console (the web front) -------------------------------------------------

    @property
    def admin_enabled(self) -> bool:
        """Whether the console is on: a user of ``[admin] users`` has a hash in the environment."""
        return admin_auth.enabled(self.settings)

    def admin_banner(self) -> str:
        """The start-up line about the console: where it is, or why it is off and how to turn it on."""
        if self.admin_enabled:
            users = ", ".join(self.settings.admin.enabled_users)
            return f"admin console: {self.settings.site.base_url}/admin/ (users: {users})"
        return admin_auth.how_to_enable(self.settings)

    def admin_sign_in(
        self, username: str, password: str, *, client: str, old_cookie: str = ""
    ) -> LoginResult:
        """The login form's POST: a new session (cookie value), a wrong pair, or a lock-out."""
        return admin_auth.sign_in(
            self.settings, self.store, self.clock(), username, password, client, old_cookie
        )

    def admin_session(self, cookie: str) -> AdminSession | None:
        """The live session of a console cookie (its idle expiry pushed back), or None."""
        return admin_auth.session(self.settings, self.store, cookie, self.clock())

    def admin_sign_out(self, cookie: str) -> bool:
        """End a console session in the store, so its cookie stops working everywhere."""
        return admin_auth.sign_out(self.store, cookie)

    def admin_csrf_ok(self, session: AdminSession, token: str) -> bool:
        """Whether a console form's ``csrf_token`` belongs to ``session``."""
        return admin_auth.csrf_ok(session, token)

    def audit(self, username: str, action: str, detail: str = "", *, client: str = "") -> None:
        """Write one admin action to the audit log (who, now, what, from where)."""
        self.store.admin.audit(username, action, detail, client, self.clock())

    def audit_log(self, limit: int = 100, offset: int = 0) -> list[AuditEntry]:
        """The audit log, newest first."""
        return self.store.admin.audit_log(limit, offset)

    def audit_mentioning(self, text: str, limit: int = 50) -> list[AuditEntry]:
        """Audit lines whose detail names ``text`` (a subscriber's address), newest first."""
        return self.store.admin.audit_mentioning(text, limit) if text else []

    def audit_count(self) -> int:
        return self.store.admin.audit_count()

    def dashboard(self) -> Dashboard:
        """What the console's dashboard shows (schedules, sends, issues, queue, rates, sources)."""
        return dashboard(self.settings, self.store, self.clock())

    def job_runs(self, limit: int = 50, schedule: str | None = None) -> list[JobRun]:
        """Job runs, newest first (``status``'s history, for the console's Jobs page)."""
        return self.store.runs.recent(limit, schedule)

    def plan_schedule_edit(self, name: str, kind: str, value: str, timezone: str) -> ScheduleEdit:
        """What changing ``name``'s trigger and zone would write to config.toml, and its next runs."""
        self.schedule_config(name)
        return plan_schedule_edit(self.settings, name, kind, value, timezone, self.clock())

    def save_schedule_edit(
        self, name: str, kind: str, value: str, timezone: str, *, base_digest: str
    ) -> ScheduleEdit:
        """Write the planned change to config.toml atomically; ConfigError if invalid or stale."""
        self.schedule_config(name)
        return save_schedule_edit(self.settings, name, kind, value, timezone, base_digest, self.clock())

    # -- jobs (the scheduler and `schedules run` call these) -----------------------

    async def arun_job(
        self, job: JobKind, *, schedule: str | None = None, fire_time: datetime | None = None
    ) -> dict[str, Any]:
        """Run one job kind and return counts for the job-run record.

        Raises :class:`PublisherError` when the job failed as a whole; partial failures
        (a source down, an item rejected) are in the counts with ``ok`` False.
        """
        counts: dict[str, Any] = {}
        if job in (JobKind.INGEST, JobKind.PUBLISH):
            report = await asyncio.to_thread(self.ingest)
            counts.update(
                new=report.new_count,
                changed=report.changed_count,
                duplicates=report.duplicate_count,
                rejected=len(report.rejected),
                failed_sources=len(report.failed),
                ok=report.ok,
            )
            if report.skipped:  # a stop came in the middle of the sources
                counts["skipped_sources"] = len(report.skipped)
            if job == JobKind.INGEST and (report.changed_anything or self.needs_build()):
                self._count_build(counts, await asyncio.to_thread(self.build))
        if job in (JobKind.BUILD, JobKind.PUBLISH):
            self._count_build(counts, await asyncio.to_thread(self.build))
        if job in (JobKind.DIGEST, JobKind.PUBLISH):
            sched = schedule if job == JobKind.DIGEST else None
            reports = await self.asend_due_digests(schedule=sched, fire_time=fire_time)
            counts["issues"] = sum(1 for r in reports if r.issue_id is not None)
            counts["sent"] = sum(r.sent for r in reports)
            counts["deferred"] = sum(r.deferred for r in reports)
            counts["failed"] = sum(r.failed for r in reports)
            if any(r.queued is not None for r in reports):  # [delivery] mode = "workers"
                counts["queued"] = sum(r.queued or 0 for r in reports)
            counts.setdefault("ok", True)
            counts["ok"] = counts["ok"] and all(r.ok for r in reports)
        if job == JobKind.BOUNCES:
            bounces = await asyncio.to_thread(self.process_bounces)
            counts.update(asdict(bounces), ok=bounces.ok)  # the counts `bounces process` prints
        if job not in list(JobKind):
            raise SchedulerError(f"unknown job {job!r}; use ingest, build, digest, publish or bounces")
        return counts

    # -- bounces and complaints -----------------------------------------------------

    def record_feedback(self, event: FeedbackEvent) -> FeedbackOutcome:
        """Apply one bounce or complaint finding (a parsed report, a webhook, the CLI)."""
        return apply_feedback(self.settings, self.store, self.clock, event)

    def handle_bounce_webhook(self, provider: str, headers: Mapping[str, str], body: bytes) -> WebhookResult:
        """One post to ``/webhooks/bounces/{provider}``: authenticate, then record its findings.

        Blocking (it may fetch an SNS certificate and writes the store): the web front
        runs it in a thread. See publisher.bounces.webhooks for what is refused and why.
        """
        from publisher.bounces.webhooks import SnsVerifier, handle_webhook

        if self._sns is None:
            self._sns = SnsVerifier(self._sns_fetch)
        return handle_webhook(self.settings, self.store, self.clock, provider, headers, body, sns=self._sns)

    def suppress_subscriber(self, email: str, status: SubscriptionStatus, note: str = "") -> tuple[str, ...]:
        """``subscribers suppress``: bounced or complained on every list; the lists changed."""
        return suppress_address(self.store, self.clock, email, SubscriptionStatus(status), note)

    def unsuppress_subscriber(self, email: str, note: str = "") -> dict[str, SubscriptionStatus]:
        """``subscribers unsuppress``: lift bounced and complained; each list's status now."""
        return unsuppress_address(self.store, self.clock, email, note)

    def process_bounces(self) -> BounceRunReport:
        """Read every new report of the ``[bounces]`` mailbox once; see publisher.bounces.process."""
        from publisher.bounces.process import open_mailbox, process_bounces

        if self.settings.bounces is None:
            raise ConfigError('bounces: no [bounces] table; set address and maildir = "var/bounces"')
        mailbox = open_mailbox(self.settings.bounces)
        try:
            return process_bounces(self.settings, self.store, self.clock, mailbox, self.stop_requested)
        finally:
            mailbox.close()

    def _count_build(self, counts: dict[str, Any], report: BuildReport) -> None:
        """A build's counts: files written and deleted, WebSub pings queued now, and the
        outcome of earlier pings finished since the previous job (they run in the
        background, so a job cannot wait for its own)."""
        counts["written"] = len(report.written)
        if report.deleted:
            counts["deleted"] = len(report.deleted)
        if self.hub_pinger is not None:
            tally = self.hub_pinger.take_tally()
            counts.update(
                hub_pings=report.hub_pings,
                hub_pings_sent=tally.sent,
                hub_pings_failed=tally.failed,
                hub_pings_waiting=tally.pending,
            )

    # -- schedules and status (the daemon's ScheduleRunner and `schedules`/`status` call these) --

    def schedule_config(self, name: str) -> ScheduleConfig:
        """The config of schedule ``name``; an unknown name is a SchedulerError naming the known."""

        return schedule_config(self.settings, name)

    def schedule_trigger(self, name: str) -> BaseTrigger:
        """The APScheduler trigger of schedule ``name`` in its time zone."""

        return schedule_trigger(self.settings, name)

    def current_fire_time(self, name: str) -> datetime | None:
        """The fire time a run of ``name`` starting now serves (the latest at or before now)."""

        return fire_time_at(self.settings, name, self.clock())

    def missed_fire_time(self, name: str, now: datetime) -> datetime | None:
        """The fire time of ``name`` a start at ``now`` catches up, or None; see the stage."""

        return missed_fire_time(self.settings, self.store, now, name)

    def schedules(self, now: datetime | None = None) -> list[ScheduleInfo]:
        """Every schedule with its next runs after ``now`` (default: the clock) and last run."""

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

    async def arun_schedule(
        self, name: str, fire_time: datetime | None, *, lapsed_from: str | None = None
    ) -> JobRun:
        """Run ``name``'s job for ``fire_time`` through :meth:`arun_job`, recorded in job_runs.

        Failures are recorded and returned, never raised (one bad run must not stop the
        daemon). Raises :class:`~publisher.errors.FireTimeTaken` when the fire time is
        served already or another daemon is serving it; ``lapsed_from`` only serves it if
        that daemon's claim on it lapsed (it crashed mid-run).
        """

        return await execute(
            self.settings, self.store, self.clock, name, fire_time, self.arun_job, lapsed_from=lapsed_from
        )

    async def arun_schedule_now(self, name: str) -> JobRun:
        """Run ``name`` now for its current period, as the scheduler would (recorded)."""

        return await arun_schedule_now(self.settings, self.store, self.clock, name, self.arun_job)

    def run_schedule_now(self, name: str) -> JobRun:
        """Sync front of :meth:`arun_schedule_now` for the CLI."""
        return asyncio.run(self.arun_schedule_now(name))

    def interrupt_orphaned_runs(self, now: datetime) -> list[JobRun]:
        """Mark runs left 'running' by dead processes of this host interrupted; return them."""

        return interrupt_orphaned_runs(self.store, now)

    def scheduler_lock(self) -> SchedulerLock:
        """The cross-process lock that makes one process the scheduler of this store."""

        return scheduler_lock(self.store, self.settings.scheduler.takeover)

    def scheduler_timings(self) -> Timings:
        """How often the daemon retries and checks the scheduler lock (``[scheduler] takeover``)."""

        return Timings.of(self.settings.scheduler.takeover)

    def status(self, *, limit: int = 10) -> StatusReport:
        """What `publisher status` shows: sources, items, lists, issues, queue, runs, schedules."""

        return status_report(self.settings, self.store, self.clock(), limit=limit)

    def reconfigured(self, settings: Settings) -> Publisher:
        """A Publisher for reloaded ``settings`` with this clock, on this store if its URL is unchanged.

        It keeps how SNS certificates are fetched (``sns_fetch``), so a reload (SIGHUP, a
        console edit) does not switch a webhook's certificate source.
        """
        same = settings.storage.url == self.settings.storage.url
        return Publisher(settings, self.store if same else None, clock=self.clock, sns_fetch=self._sns_fetch)

    def shares_store(self, other: Publisher) -> bool:
        """Whether ``other`` works on this very store (a reload keeps the lock and connections)."""
        return other.store is self.store
