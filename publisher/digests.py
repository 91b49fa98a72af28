"""Store -> one issue per list and period -> rendered, delivered messages.

An issue holds the list's items that no earlier issue of that list holds and that
were published within ``max_age``: nothing falls between two issues, and a first
issue never floods subscribers with the archive. Its key is the start of the
schedule period that contains the send (see publisher.periods), and the store's
unique (list, period) constraint makes a second send of the same period a no-op,
whichever process or restart tries it.

An issue shows at most the list's ``max_items`` items, the newest; the older ones it
covers but does not show, and the mail counts them ("and 20 more on the website",
linked to the site). They still count as held by the issue, so the next issue does
not bring them: after a flood (a source publishing 5,000 items at once) the next
issue holds only what is new, instead of the leftovers of the flood for weeks.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email
import email.policy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy.exc import InterfaceError, OperationalError

from publisher.archive import issue_url
from publisher.config import ListConfig, Settings
from publisher.errors import IssueError, OutputError, StoreError
from publisher.lease import WorkerLease
from publisher.ledger import LEGACY_STOPPED_TEXT, DeliveryTally, ProgressFn, Sender, new_worker_id
from publisher.links import TEST_SUBSCRIBER_ID
from publisher.mailer import OutgoingMessage, SendResult, make_transport
from publisher.messages import RenderedIssue, render_issue, render_subject
from publisher.models import NOT_SENT, Clock, DeliveryStatus, Item, StopFlag, Subscriber, SubscriptionStatus
from publisher.periods import period_key, period_label, period_start
from publisher.spamcheck import SpamReport
from publisher.store import Store
from publisher.store.issues import FailedDelivery, FailureReason, IssueSummary
from publisher.subscriptions import (
    ImportReport,
    import_csv,
    normalise_address,
    recipients_after_import,
    unserved_languages,
)

log = logging.getLogger("publisher.digests")


@dataclass
class DigestReport:
    """What one ``digest send`` (or scheduled digest) did for one list."""

    list_slug: str
    period_key: str
    issue_id: int | None = None
    created: bool = False
    items: int = 0  # shown in the mail
    omitted: int = 0  # covered by the issue but over the list's max_items: counted, not shown
    recipients: int = 0
    note: str = ""
    tally: DeliveryTally = field(default_factory=DeliveryTally)
    # [delivery] mode = "workers": nothing was sent here; this many deliveries of the
    # list wait for `publisher worker` (None in "daemon" mode, which sends itself).
    queued: int | None = None
    import_report: ImportReport | None = None  # the list's subscribers file, if it has one
    # Confirmed subscribers the list skips for their language, per language (never silent).
    unserved: dict[str, int] = field(default_factory=dict)

    @property
    def sent(self) -> int:
        return self.tally.sent

    @property
    def deferred(self) -> int:
        return self.tally.deferred

    @property
    def failed(self) -> int:
        return self.tally.failed + self.tally.bounced

    @property
    def ok(self) -> bool:
        return self.tally.failed == 0


def list_categories(list_cfg: ListConfig) -> list[str] | None:
    """The category slugs a list covers; None for '*' (everything, uncategorised too)."""
    return None if "*" in list_cfg.categories else list(list_cfg.categories)


@dataclass(slots=True)
class IssueItems:
    """What an issue holds: the items its mail shows, newest first, and how many more it covers."""

    shown: list[Item]
    omitted: list[Item] = field(default_factory=list)

    @property
    def all(self) -> list[Item]:
        return self.shown + self.omitted


def issue_items(settings: Settings, store: Store, list_cfg: ListConfig, now: datetime) -> IssueItems:
    """The items the next issue of ``list_cfg`` would hold at ``now``, capped at ``max_items``."""
    candidates = store.issues.candidate_items(
        list_cfg.slug,
        list_categories(list_cfg),
        list_cfg.languages,
        now - list_cfg.max_age,
        settings.source_names,
    )
    return IssueItems(candidates[: list_cfg.max_items], candidates[list_cfg.max_items :])


def import_list_file(
    settings: Settings, store: Store, clock: Clock, list_cfg: ListConfig
) -> ImportReport | None:
    """Import the list's ``subscribers`` CSV (idempotent; suppressions stay)."""
    if list_cfg.subscribers is None:
        return None
    report = import_csv(settings, store, list_cfg.slug, list_cfg.subscribers, now=clock())
    for problem in report.rejected:
        log.warning("subscribers file: %s", problem)
    return report


async def send_digest(
    settings: Settings,
    store: Store,
    clock: Clock,
    list_slug: str,
    *,
    stop_requested: StopFlag,
    at: datetime | None = None,
    force: bool = False,
    progress: ProgressFn | None = None,
) -> DigestReport:
    """Create the issue of the period containing ``at`` (if new) and deliver it.

    Also delivers whatever of this list is still due: deliveries left pending by a
    stopped sender and deferred ones whose retry time has come. With ``[delivery] mode
    = "workers"`` it only creates the issue: ``report.queued`` deliveries wait for
    ``publisher worker``.
    """
    list_cfg = settings.list_config(list_slug)
    now = clock()
    start = period_start(settings, list_cfg.schedule, at or now)
    key = period_key(start)
    report = DigestReport(list_slug, key)
    report.import_report = await asyncio.to_thread(import_list_file, settings, store, clock, list_cfg)
    report.unserved = await asyncio.to_thread(unserved_languages, settings, store, list_slug)

    existing = await asyncio.to_thread(store.issues.get, list_slug, key)
    if existing is not None and not force:
        report.issue_id = existing.id
        report.note = "this period's issue exists already; only due deliveries were sent"
    else:
        if force and existing is not None:
            n = await asyncio.to_thread(store.issues.count_for_period, list_slug, key)
            key = f"{key}#extra-{n}"
            report.period_key = key
        await asyncio.to_thread(_create_issue, settings, store, list_cfg, start, key, now, force, report)

    if settings.delivery.mode == "workers":
        # The issue and its deliveries exist; `publisher worker` processes send them.
        report.queued = await asyncio.to_thread(store.issues.queued_count, list_slug)
        return report
    sender = Sender(settings, store, clock=clock, stop_requested=stop_requested, progress=progress)
    report.tally = await sender.run(list_slug)
    return report


def _create_issue(
    settings: Settings,
    store: Store,
    list_cfg: ListConfig,
    start: datetime,
    key: str,
    now: datetime,
    forced: bool,
    report: DigestReport,
) -> None:
    held = issue_items(settings, store, list_cfg, now)
    report.items, report.omitted = len(held.shown), len(held.omitted)
    if not held.shown and not list_cfg.send_empty:
        report.note = "nothing new since the last issue; no issue created"
        return
    subject = subject_for(settings, list_cfg, held, now)
    # Render once before the issue exists: a template that fails must not leave an
    # issue with queued deliveries that no send can ever render.
    render_held(settings, list_cfg, held, language=settings.site.language, now=now)
    # The store picks the confirmed subscribers inside the creating transaction.
    created = store.issues.create(
        list_slug=list_cfg.slug,
        period_key=key,
        period_start=start,
        schedule=list_cfg.schedule,
        subject=subject,
        item_ids=[i.id for i in held.all],
        languages=list_cfg.languages or None,
        now=now,
        forced=forced,
        omitted=len(held.omitted),
    )
    if created is None:  # another process created it between our check and insert
        report.recipients = store.subscribers.count_confirmed(list_cfg.slug, list_cfg.languages or None)
        existing = store.issues.get(list_cfg.slug, key)
        report.issue_id = existing.id if existing else None
        report.note = "this period's issue was created by another run"
        return
    (report.issue_id, report.recipients), report.created = created, True
    more = f" ({report.omitted} more not included)" if report.omitted else ""
    log.info(
        "issue %s of list %s: %d items%s for %d subscribers",
        key,
        list_cfg.slug,
        report.items,
        more,
        report.recipients,
        extra={"list": list_cfg.slug},
    )


def subject_for(settings: Settings, list_cfg: ListConfig, held: IssueItems, now: datetime) -> str:
    """The list's subject template rendered in the site language (stored with the issue)."""
    return render_subject(
        settings,
        list_cfg,
        held.shown,
        language=settings.site.language,
        now=now,
        more_items=len(held.omitted),
    )


def render_held(
    settings: Settings,
    list_cfg: ListConfig,
    held: IssueItems,
    *,
    language: str,
    now: datetime,
    subject_prefix: str = "",
) -> RenderedIssue:
    """Render items that are not (yet) an issue: a preview, a test copy, a pre-send check.

    Dated by ``now``, the day it would be sent, like a sent issue; its "view in browser"
    link is where the issue of ``now``'s period will be archived.
    """
    key = period_key(period_start(settings, list_cfg.schedule, now))
    return render_issue(
        settings,
        list_cfg,
        held.shown,
        issue_id=0,
        period_label=period_label(settings, now, language),
        language=language,
        now=now,
        more_items=len(held.omitted),
        subject_prefix=subject_prefix,
        archive_url=issue_url(settings, list_cfg, key, language),
    )


# -- previews, dry runs and test copies ---------------------------------------------


@dataclass
class Preview:
    list_slug: str
    items: int
    recipients: int
    subject: str
    files: list[Path] = field(default_factory=list)
    omitted: int = 0  # items the issue would cover without showing (over max_items)
    unserved: dict[str, int] = field(default_factory=dict)  # skipped for their language
    spam: SpamReport | None = None  # SpamAssassin's verdict on the preview, when asked for


TEST_SUBJECT_PREFIX = "[TEST] "


def sample_subscriber(
    settings: Settings, store: Store, list_cfg: ListConfig, email: str | None = None
) -> Subscriber:
    """The first confirmed subscriber (for a preview), or a made-up one; nothing is written."""
    if email is None:
        for page in store.subscribers.iter_confirmed(list_cfg.slug, list_cfg.languages or None):
            return page[0]
    return Subscriber(
        id=TEST_SUBSCRIBER_ID,
        email=email or "subscriber@example.org",
        name="" if email else "Sample Subscriber",
        language=settings.site.language,
        secret="preview-only-secret",
        list_slug=list_cfg.slug,
        status=SubscriptionStatus.CONFIRMED,
    )


def next_issue_items(settings: Settings, store: Store, list_cfg: ListConfig, now: datetime) -> IssueItems:
    """What the next issue would hold; between issues, the latest issue's items.

    A preview or a test copy must work whenever an admin changes a template, not only
    in the hours before a send.
    """
    held = issue_items(settings, store, list_cfg, now)
    if not held.shown:
        latest = store.issues.summaries(list_cfg.slug, 1)
        issue = store.issues.by_id(latest[0].id) if latest else None
        if issue is not None:
            ids, by_ids = store.issues.item_ids(issue.id), store.items.by_ids
            cut = len(ids) - issue.omitted
            held = IssueItems(by_ids(ids[:cut]), by_ids(ids[cut:]))
    if not held.shown and not list_cfg.send_empty:
        raise IssueError(f"list {list_cfg.slug!r} has no items yet: ingest some first (publisher ingest)")
    return held


def _sample_message(
    settings: Settings,
    store: Store,
    clock: Clock,
    list_cfg: ListConfig,
    subscriber: Subscriber,
    subject_prefix: str = "",
) -> tuple[IssueItems, bytes]:
    """The next issue (see :func:`next_issue_items`) as ``subscriber`` would get it, and
    its items: what a preview, the console's preview and a test copy all show."""
    now = clock()
    held = next_issue_items(settings, store, list_cfg, now)
    rendered = render_held(
        settings, list_cfg, held, language=subscriber.language, now=now, subject_prefix=subject_prefix
    )
    _mid, data = rendered.personalise(subscriber, delivery_id=0)
    return held, data


def preview(settings: Settings, store: Store, clock: Clock, list_slug: str, out_dir: Path) -> Preview:
    """Write the next issue for a sample subscriber as .html and .eml into ``out_dir``."""
    list_cfg = settings.list_config(list_slug)
    held, data = _sample_message(
        settings, store, clock, list_cfg, sample_subscriber(settings, store, list_cfg)
    )
    message = email.message_from_bytes(data, policy=email.policy.default)
    html_part = message.get_body(preferencelist=("html",))
    eml = out_dir / f"{list_slug}.eml"
    html = out_dir / f"{list_slug}.html"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        eml.write_bytes(data)
        html.write_text(html_part.get_content() if html_part else "", encoding="utf-8")
    except OSError as e:  # a parent that is a file, a folder we may not write to, a full disk
        raise OutputError(out_dir, e) from e
    subject = str(message["Subject"])
    return Preview(list_slug, len(held.shown), 1, subject, [html, eml], omitted=len(held.omitted))


@dataclass(frozen=True, slots=True)
class IssuePreview:
    """The next issue as one subscriber in ``language`` would get it, kept in memory (the console).

    ``size`` is the whole message in bytes, as it would go to the relay (Gmail clips
    HTML over 102 KB, so admins want to see it before a send).
    """

    list_slug: str
    language: str
    subject: str
    html: str
    text: str
    size: int
    items: int
    omitted: int


def render_preview(
    settings: Settings, store: Store, clock: Clock, list_slug: str, language: str
) -> IssuePreview:
    """What :func:`preview` writes, in ``language``, for a made-up subscriber; records nothing.

    A made-up subscriber (never a real one) so a console preview shows nobody's address or
    links; the mail is rendered and personalised exactly as a send would do it.
    """
    list_cfg = settings.list_config(list_slug)
    subscriber = sample_subscriber(settings, store, list_cfg, "subscriber@example.org")
    subscriber.language = language
    subscriber.name = "Sample Subscriber"
    held, data = _sample_message(settings, store, clock, list_cfg, subscriber)
    message = email.message_from_bytes(data, policy=email.policy.default)
    parts = [message.get_body(preferencelist=(kind,)) for kind in ("html", "plain")]
    html, text = (str(part.get_content()) if part is not None else "" for part in parts)
    return IssuePreview(
        list_slug,
        language,
        str(message["Subject"]),
        html,
        text,
        len(data),
        len(held.shown),
        len(held.omitted),
    )


def dry_run(settings: Settings, store: Store, clock: Clock, list_slug: str) -> Preview:
    """What ``digest send`` would do now: items, recipients, subject. Records nothing."""
    list_cfg = settings.list_config(list_slug)
    now = clock()
    key = period_key(period_start(settings, list_cfg.schedule, now))
    held = issue_items(settings, store, list_cfg, now)
    if store.issues.get(list_slug, key) is not None:
        held = IssueItems([])
    recipients = recipients_after_import(settings, store, list_slug, now=now)
    subject = subject_for(settings, list_cfg, held, now) if held.shown else ""
    count = recipients if held.shown else 0
    unserved = unserved_languages(settings, store, list_slug)
    return Preview(list_slug, len(held.shown), count, subject, omitted=len(held.omitted), unserved=unserved)


async def send_test_copy(
    settings: Settings,
    store: Store,
    clock: Clock,
    list_slug: str,
    address: str,
    language: str | None = None,
) -> SendResult | None:
    """Send what a preview shows to ``address`` only, marked ``[TEST]``; records nothing.

    ``language`` (default: the site's) picks the catalogue language of the copy, so an
    admin can check the French issue in a real mail client.
    """
    list_cfg = settings.list_config(list_slug)
    subscriber = sample_subscriber(settings, store, list_cfg, normalise_address(address))
    if language is not None:
        subscriber.language = language
    _held, data = _sample_message(settings, store, clock, list_cfg, subscriber, TEST_SUBJECT_PREFIX)
    results: list[SendResult] = []

    async def keep(result: SendResult) -> None:
        results.append(result)

    transport = make_transport(settings)
    try:
        await transport.send([OutgoingMessage(0, list_cfg.sender_address, subscriber.email, data)], keep)
    finally:
        await transport.close()
    return results[0] if results else None


def requeue_unknown(settings: Settings, store: Store, clock: Clock, list_slug: str) -> int:
    """Queue again the list's messages of unknown outcome (an admin's explicit ask).

    Their recipients may get them twice: the server may have accepted the first copy.
    """
    settings.list_config(list_slug)
    return sum(
        store.issues.resend_unknown(row.id, clock())
        for row in store.issues.summaries(list_slug, limit=10_000)
        if row.unknown
    )


@dataclass(frozen=True, slots=True)
class FailureReport:
    """Why deliveries were not sent (``digest failures`` and the console's issue page).

    ``issues``: the issues looked at, newest first, with their counts. ``reasons``: every
    matching delivery counted per (status, code, first line of the reply), most first.
    ``deliveries``: the first ``limit`` of them, latest attempt first; ``total``: how
    many match in all (``deliveries`` may be fewer).
    """

    issues: list[IssueSummary]
    statuses: tuple[DeliveryStatus, ...]
    reasons: list[FailureReason]
    deliveries: list[FailedDelivery]
    total: int


def failures(
    settings: Settings,
    store: Store,
    list_slug: str | None = None,
    *,
    issue_id: int | None = None,
    statuses: tuple[DeliveryStatus, ...] = NOT_SENT,
    limit: int = 50,
) -> FailureReport:
    """The deliveries of an issue that were not sent, and why (their last SMTP reply).

    Without ``issue_id``: the newest issue of each list, or of ``list_slug`` (an
    unknown list is a ConfigError, as for ``digest status``). With it: that issue
    (IssueError when there is none, or when it is not ``list_slug``'s).
    """
    if list_slug is not None:
        settings.list_config(list_slug)
    if issue_id is None:
        ids = store.issues.latest_issue_ids(list_slug)
    else:
        issue = store.issues.by_id(issue_id)
        if issue is None:
            raise IssueError(f"there is no issue {issue_id} (`publisher digest status` lists them)")
        if list_slug is not None and issue.list_slug != list_slug:
            raise IssueError(f"issue {issue_id} is an issue of list {issue.list_slug!r}, not {list_slug!r}")
        ids = [issue_id]
    statuses = tuple(dict.fromkeys(statuses)) or NOT_SENT
    rows, total = store.issues.failed_deliveries(ids, statuses, limit)
    return FailureReport(
        issues=store.issues.summaries(limit=len(ids), ids=ids) if ids else [],
        statuses=statuses,
        reasons=store.issues.failure_reasons(ids, statuses),
        deliveries=rows,
        total=total,
    )


@dataclass
class Requeued:
    """Deliveries of one issue that ``digest requeue-unknown`` puts (or would put) back."""

    issue_id: int
    list_slug: str
    period_key: str
    count: int


def requeue_stopped_unknown(
    settings: Settings,
    store: Store,
    clock: Clock,
    list_slug: str | None = None,
    *,
    issue_id: int | None = None,
    dry_run: bool = False,
) -> list[Requeued]:
    """Repair a store where an older version marked never-sent messages ``unknown``.

    Before the outage fix, a relay that refused connections (421, no greeting, broken
    STARTTLS) left up to ``connections`` deliveries per attempt ``unknown`` with the text
    :data:`publisher.ledger.LEGACY_STOPPED_TEXT`, although none of them was sent. A
    genuine crash with the message text in flight wrote the same text, so this is an
    admin's explicit ask, per list or issue, after checking the relay's logs: those
    recipients may get the message twice. Rows go back to ``pending``, attempts kept;
    newer versions write another text, so their true unknowns are never matched.
    """
    if list_slug is not None:
        settings.list_config(list_slug)
    if dry_run:
        rows = store.issues.unknown_with_text(LEGACY_STOPPED_TEXT, list_slug=list_slug, issue_id=issue_id)
    else:
        rows = store.issues.requeue_unknown_with_text(
            LEGACY_STOPPED_TEXT, clock(), list_slug=list_slug, issue_id=issue_id
        )
    return [Requeued(*row) for row in rows]


async def deliver_queue(
    settings: Settings,
    store: Store,
    clock: Clock,
    *,
    stop_requested: StopFlag,
    once: bool = False,
    interval: float = 5.0,
    on_round: Callable[[DeliveryTally], None] | None = None,
) -> None:
    """What `publisher worker` does: deliver every due message of every list, then poll.

    ``stop_requested`` (SIGTERM, set by the front) stops taking new messages; in-flight
    ones finish and the rest stays queued. Several workers, on one host or many, share
    the queue safely (claims never overlap). The process is one worker with one lease
    (its ``workers`` row, renewed between polls too, so ``digest status`` shows it
    alive); each round first settles what dead workers left (publisher.ledger.recover).
    A relay outage raises MailError with the messages left queued, a lost lease
    LeaseError: ``worker`` ends with that one line and exit 1, for its supervisor to
    restart (systemd ``Restart=on-failure``).

    A store that drops out (a PostgreSQL restart or fail-over) ends the round with one
    warning, and the next round, after ``interval``, first settles what this one left
    from its journal; only when it stays out of reach for half the lease does the lease
    fence the worker (LeaseError), as it would any worker. Every worker of a fleet
    would otherwise die at once on a database restart of a few seconds.
    """
    total = DeliveryTally()
    current: list[Sender] = []

    def counts() -> dict[str, int]:
        summed = dataclasses.asdict(total)
        for sender in current:
            for name, value in dataclasses.asdict(sender.tally).items():
                summed[name] += value
        return summed

    lease = WorkerLease(store, new_worker_id(), settings.delivery.lease, counts)
    await lease.start()
    holds_nothing = True  # no round left claims unsettled: the row can say "ended"
    try:
        while not stop_requested():
            sender = Sender(settings, store, clock=clock, stop_requested=stop_requested, lease=lease)
            current[:] = [sender]
            holds_nothing = False
            try:
                tally = await sender.run()
            except (OperationalError, InterfaceError) as e:
                if once:
                    raise StoreError(f"the store is out of reach: {str(e.orig or e).splitlines()[0]}") from e
                lease.check()  # out of reach for longer than the grace: LeaseError, the end
                log.warning(
                    "worker: the store is out of reach (%s); trying again in %g s, stopping if "
                    "it stays so for %g s",
                    str(e.orig or e).splitlines()[0],
                    interval,
                    lease.grace,
                )
                tally = None
            finally:
                holds_nothing = sender.settled
                current.clear()
                for name, value in dataclasses.asdict(sender.tally).items():
                    setattr(total, name, getattr(total, name) + value)
            if on_round is not None and tally is not None:
                on_round(tally)
            if once:
                break
            with contextlib.suppress(TimeoutError):  # wake at once on a stop, not after interval
                async with asyncio.timeout(interval):
                    while not stop_requested():
                        lease.check()
                        await asyncio.sleep(0.1)
    finally:
        await lease.stop(ended=holds_nothing and lease.fenced is None)


def status(
    settings: Settings, store: Store, list_slug: str | None = None, limit: int = 20
) -> list[IssueSummary]:
    """Issues, newest first, with their delivery counts and who sends them (``digest status``)."""
    if list_slug is not None:
        settings.list_config(list_slug)
    rows = store.issues.summaries(list_slug, limit)
    progress = store.workers.progress([row.id for row in rows])
    return [dataclasses.replace(row, workers=tuple(progress.get(row.id, ()))) for row in rows]


def idle_queue_warning(settings: Settings, store: Store) -> str | None:
    """With ``[delivery] mode = "workers"``: deliveries wait and no worker is alive to send them."""
    if settings.delivery.mode != "workers":
        return None
    queued = store.issues.queued_count()
    if not queued or store.workers.listing(alive_only=True, limit=1):
        return None
    return (
        f"{queued} {'delivery is' if queued == 1 else 'deliveries are'} queued and no"
        ' `publisher worker` is running ([delivery] mode = "workers"): '
        "start one (README, 'Running on several machines')"
    )
