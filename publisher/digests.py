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
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from publisher.config import ListConfig, Settings
from publisher.errors import IssueError
from publisher.ledger import DeliveryTally, ProgressFn, Sender
from publisher.models import Item, Subscriber, SubscriptionStatus
from publisher.periods import period_key, period_start
from publisher.store import Store
from publisher.store.issues import IssueRow, IssueSummary
from publisher.subscriptions import ImportReport, import_csv, normalise_address

if TYPE_CHECKING:
    from publisher.app import Publisher
    from publisher.messages import DkimSigner

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
    import_report: ImportReport | None = None  # the list's subscribers file, if it has one

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
        list_cfg.slug, list_categories(list_cfg), list_cfg.languages, now - list_cfg.max_age
    )
    return IssueItems(candidates[: list_cfg.max_items], candidates[list_cfg.max_items :])


def render_for(
    settings: Settings,
    store: Store,
    issue: IssueRow,
    list_cfg: ListConfig,
    language: str,
    signer: DkimSigner | None = None,
) -> Any:
    """Render a stored issue once for one language (cached by the sender)."""
    from publisher.messages import render_issue

    items = store.items.by_ids(store.issues.shown_item_ids(issue))
    return render_issue(
        settings,
        list_cfg,
        items,
        issue_id=issue.id,
        period_label=_period_label(settings, issue.period_start, language),
        language=language,
        now=issue.created,
        signer=signer,
        more_items=issue.omitted,
    )


def _period_label(settings: Settings, start: datetime, language: str) -> str:
    """The period's first day in the reader's language and the site's zone ("23 novembre 2026")."""
    from publisher.i18n import format_day

    return format_day(start, language, tz=settings.site.tz)


def import_list_file(publisher: Publisher, list_cfg: ListConfig) -> ImportReport | None:
    """Import the list's ``subscribers`` CSV (idempotent; suppressions stay)."""
    if list_cfg.subscribers is None:
        return None
    report = import_csv(
        publisher.store, publisher.settings, list_cfg.slug, list_cfg.subscribers, now=publisher.clock()
    )
    for problem in report.rejected:
        log.warning("subscribers file: %s", problem)
    return report


async def send_digest(
    publisher: Publisher,
    list_slug: str,
    *,
    at: datetime | None = None,
    force: bool = False,
    progress: ProgressFn | None = None,
) -> DigestReport:
    """Create the issue of the period containing ``at`` (if new) and deliver it.

    Also delivers whatever of this list is still due: deliveries left pending by a
    stopped sender and deferred ones whose retry time has come.
    """
    settings, store = publisher.settings, publisher.store
    list_cfg = settings.list_config(list_slug)
    now = publisher.clock()
    start = period_start(settings, list_cfg.schedule, at or now)
    key = period_key(start)
    report = DigestReport(list_slug, key)
    report.import_report = await asyncio.to_thread(import_list_file, publisher, list_cfg)

    existing = await asyncio.to_thread(store.issues.get, list_slug, key)
    if existing is not None and not force:
        report.issue_id = existing.id
        report.note = "this period's issue exists already; only due deliveries were sent"
    else:
        if force and existing is not None:
            n = await asyncio.to_thread(store.issues.count_for_period, list_slug, key)
            key = f"{key}#extra-{n}"
            report.period_key = key
        await asyncio.to_thread(_create_issue, publisher, list_cfg, start, key, now, force, report)

    sender = Sender(
        settings, store, clock=publisher.clock, stop_requested=publisher.stop_requested, progress=progress
    )
    report.tally = await sender.run(list_slug)
    return report


def _create_issue(
    publisher: Publisher,
    list_cfg: ListConfig,
    start: datetime,
    key: str,
    now: datetime,
    forced: bool,
    report: DigestReport,
) -> None:
    settings, store = publisher.settings, publisher.store
    held = issue_items(settings, store, list_cfg, now)
    report.items, report.omitted = len(held.shown), len(held.omitted)
    if not held.shown and not list_cfg.send_empty:
        report.note = "nothing new since the last issue; no issue created"
        return
    subject = subject_for(settings, list_cfg, held)
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


def subject_for(settings: Settings, list_cfg: ListConfig, held: IssueItems) -> str:
    """The list's subject template rendered in the site language (stored with the issue)."""
    from publisher.messages import render_subject

    return str(
        render_subject(
            settings, list_cfg, held.shown, language=settings.site.language, more_items=len(held.omitted)
        )
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


def sample_subscriber(publisher: Publisher, list_cfg: ListConfig, email: str | None = None) -> Subscriber:
    """The first confirmed subscriber, or a made-up one; nothing is written."""
    if email is None:
        for page in publisher.store.subscribers.iter_confirmed(list_cfg.slug, list_cfg.languages or None):
            return page[0]
    return Subscriber(
        id=0,
        email=email or "subscriber@example.org",
        name="" if email else "Sample Subscriber",
        language=publisher.settings.site.language,
        secret="preview-only-secret",
        list_slug=list_cfg.slug,
        status=SubscriptionStatus.CONFIRMED,
    )


def render_next(
    publisher: Publisher, list_slug: str, subscriber: Subscriber, *, fallback_to_latest: bool = False
) -> tuple[Any, IssueItems, bytes]:
    """Render what the next issue would be for one subscriber; records nothing.

    With ``fallback_to_latest`` and nothing new, the latest issue's items are used, so
    an admin can still look at a template change between issues.
    """
    from publisher.messages import render_issue

    settings = publisher.settings
    list_cfg = settings.list_config(list_slug)
    now = publisher.clock()
    held = issue_items(settings, publisher.store, list_cfg, now)
    if not held.shown and fallback_to_latest:
        latest = publisher.store.issues.summaries(list_slug, 1)
        issue = publisher.store.issues.by_id(latest[0].id) if latest else None
        if issue is not None:
            ids, by_ids = publisher.store.issues.item_ids(issue.id), publisher.store.items.by_ids
            cut = len(ids) - issue.omitted
            held = IssueItems(by_ids(ids[:cut]), by_ids(ids[cut:]))
    if not held.shown and not list_cfg.send_empty:
        raise IssueError(f"list {list_slug!r}: nothing new since its last issue, so there is no next issue")
    rendered = render_issue(
        settings,
        list_cfg,
        held.shown,
        issue_id=0,
        period_label=_period_label(
            settings, period_start(settings, list_cfg.schedule, now), subscriber.language
        ),
        language=subscriber.language,
        now=now,
        more_items=len(held.omitted),
    )
    _mid, data = rendered.personalise(subscriber, delivery_id=0)
    return rendered, held, data


def preview(publisher: Publisher, list_slug: str, out_dir: Path) -> Preview:
    """Write the next issue for a sample subscriber as .html and .eml into ``out_dir``."""
    import email
    import email.policy

    list_cfg = publisher.settings.list_config(list_slug)
    subscriber = sample_subscriber(publisher, list_cfg)
    _rendered, held, data = render_next(publisher, list_slug, subscriber, fallback_to_latest=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    eml = out_dir / f"{list_slug}.eml"
    eml.write_bytes(data)
    message = email.message_from_bytes(data, policy=email.policy.default)
    html_part = message.get_body(preferencelist=("html",))
    html = out_dir / f"{list_slug}.html"
    html.write_text(html_part.get_content() if html_part else "", encoding="utf-8")
    subject = str(message["Subject"])
    return Preview(list_slug, len(held.shown), 1, subject, [html, eml], omitted=len(held.omitted))


def dry_run(publisher: Publisher, list_slug: str) -> Preview:
    """What ``digest send`` would do now: items, recipients, subject. Records nothing."""
    settings = publisher.settings
    list_cfg = settings.list_config(list_slug)
    now = publisher.clock()
    key = period_key(period_start(settings, list_cfg.schedule, now))
    held = issue_items(settings, publisher.store, list_cfg, now)
    if publisher.store.issues.get(list_slug, key) is not None:
        held = IssueItems([])
    recipients = publisher.store.subscribers.count_confirmed(list_slug, list_cfg.languages or None)
    subject = subject_for(settings, list_cfg, held) if held.shown else ""
    count = recipients if held.shown else 0
    return Preview(list_slug, len(held.shown), count, subject, omitted=len(held.omitted))


async def send_test_copy(publisher: Publisher, list_slug: str, address: str) -> Any:
    """Send the next issue to ``address`` only, outside the ledger (records nothing)."""
    from publisher.mailer import OutgoingMessage, make_transport

    list_cfg = publisher.settings.list_config(list_slug)
    subscriber = sample_subscriber(publisher, list_cfg, normalise_address(address))
    _rendered, _items, data = render_next(publisher, list_slug, subscriber)
    results: list[Any] = []

    async def keep(result: Any) -> None:
        results.append(result)

    transport = make_transport(publisher.settings)
    try:
        await transport.send([OutgoingMessage(0, list_cfg.sender_address, subscriber.email, data)], keep)
    finally:
        await transport.close()
    return results[0] if results else None


def requeue_unknown(publisher: Publisher, list_slug: str) -> int:
    """Queue again the list's messages of unknown outcome (an admin's explicit ask).

    Their recipients may get them twice: the server may have accepted the first copy.
    """
    return sum(
        publisher.store.issues.resend_unknown(row.id, publisher.clock())
        for row in status(publisher, list_slug, limit=10_000)
        if row.unknown
    )


@dataclass
class Requeued:
    """Deliveries of one issue that ``digest requeue-unknown`` puts (or would put) back."""

    issue_id: int
    list_slug: str
    period_key: str
    count: int


def requeue_stopped_unknown(
    publisher: Publisher, list_slug: str | None = None, *, issue_id: int | None = None, dry_run: bool = False
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
    from publisher.ledger import LEGACY_STOPPED_TEXT

    if list_slug is not None:
        publisher.settings.list_config(list_slug)
    issues = publisher.store.issues
    if dry_run:
        rows = issues.unknown_with_text(LEGACY_STOPPED_TEXT, list_slug=list_slug, issue_id=issue_id)
    else:
        rows = issues.requeue_unknown_with_text(
            LEGACY_STOPPED_TEXT, publisher.clock(), list_slug=list_slug, issue_id=issue_id
        )
    return [Requeued(*row) for row in rows]


async def deliver_queue(
    publisher: Publisher,
    *,
    once: bool = False,
    interval: float = 5.0,
    on_round: Callable[[DeliveryTally], None] | None = None,
) -> None:
    """What `publisher worker` does: deliver every due message of every list, then poll.

    SIGTERM stops taking new messages; in-flight ones finish and the rest stays queued.
    Several workers share the queue safely (claims never overlap). A relay outage
    raises MailError with the messages left queued: ``worker`` ends with that one line
    and exit 1, for its supervisor to restart (systemd ``Restart=on-failure``).
    """
    import signal

    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, publisher.request_stop)
    while not publisher.stop_requested():
        sender = Sender(
            publisher.settings,
            publisher.store,
            clock=publisher.clock,
            stop_requested=publisher.stop_requested,
        )
        tally = await sender.run()
        if on_round is not None:
            on_round(tally)
        if once:
            return
        await asyncio.sleep(interval)


def status(publisher: Publisher, list_slug: str | None = None, limit: int = 20) -> list[IssueSummary]:
    if list_slug is not None:
        publisher.settings.list_config(list_slug)
    return publisher.store.issues.summaries(list_slug, limit)
