"""Plain data objects passed between the pipeline stages.

They are dataclasses, not ORM rows: sources build :class:`RawItem`, ingest turns them
into :class:`Item`, the store maps items to and from rows, and feeds and digests
only ever read :class:`Item`. Keeping them free of SQLAlchemy keeps every stage
testable on its own and cheap to build in bulk (100k items in benchmarks).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

# What every stage is given instead of reading the wall clock or a global flag: the
# facade's clock (frozen in tests) and its "stop was asked" flag (SIGTERM).
Clock = Callable[[], datetime]
StopFlag = Callable[[], bool]


@dataclass(slots=True)
class RawItem:
    """An item as a source read it, before validation and cleaning.

    ``origin`` says where it came from (file path, URL, or URL#n) so that a rejection
    can point the admin at the exact place to fix. Dates may still be strings or naive
    datetimes; ingest normalises them.
    """

    source: str
    origin: str
    title: str | None = None
    link: str | None = None
    published: datetime | str | None = None
    updated: datetime | str | None = None
    label: str | None = None
    summary: str | None = None
    content: str | None = None
    id: str | None = None
    language: str | None = None
    image: str | None = None
    image_alt: str | None = None
    image_width: int | str | None = None  # as the source gave them; ingest checks them
    image_height: int | str | None = None
    enclosure_url: str | None = None
    enclosure_type: str | None = None
    enclosure_length: int | str | None = None
    content_type: str = "html"  # "html" or "markdown": markdown bodies are rendered by ingest
    # What a reader found wrong but not fatal (e.g. an enclosure that is not a mapping):
    # ingest reports each as a warning on the item, which is kept.
    problems: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Item:
    """A validated, cleaned item as stored and published.

    ``id`` never changes once assigned, even when the item is edited; ``updated``
    moves on every content change, ``published`` never does. ``category`` is the slug
    of the mapped category or ``None`` when its label is unknown (then the item is in
    the all-items feed only).
    """

    id: str
    source: str
    title: str
    link: str
    published: datetime
    updated: datetime
    language: str
    summary: str = ""
    content: str = ""
    label: str | None = None
    category: str | None = None
    image: str | None = None  # absolute http(s) URL of the item's picture
    image_alt: str | None = None  # None: the title serves as alt text
    image_width: int | None = None  # pixels, when the source said
    image_height: int | None = None
    enclosure_url: str | None = None  # absolute http(s) URL of a media file (video, audio, PDF)
    enclosure_type: str | None = None  # its media type, e.g. "video/mp4" (set whenever the URL is)
    enclosure_length: int | None = None  # bytes, when known
    content_hash: str = ""


class ItemState(StrEnum):
    """Whether readers see a stored item, and if not, why (``items`` lists it).

    Only ``shown`` items reach feeds, index.html and new issues. ``hidden`` is an
    admin's withdrawal (``items hide``); ``source-removed`` an item whose source is no
    longer in config.toml (shown again if the source returns); ``duplicate`` an item
    whose canonical link an item of an earlier source in config order already has.
    """

    SHOWN = "shown"
    HIDDEN = "hidden"
    SOURCE_REMOVED = "source-removed"
    DUPLICATE = "duplicate"


@dataclass(slots=True)
class ListedItem:
    """A stored item with what readers see of it, for ``publisher items`` and the console."""

    item: Item
    hidden: bool
    state: ItemState
    duplicate_of: str | None = None  # the id of the item shown in its place


@dataclass(frozen=True, slots=True)
class IngestRejection:
    """One item a source's last read rejected: where it is and why (the fix)."""

    source: str
    at: datetime
    origin: str
    reason: str


#: What decides where an item goes in the feed archives and whether a page changed:
#: (id, category, language, content_hash); the content hash changes with every edit a
#: reader can see (and so does ``updated``). A plain tuple straight from
#: the database cursor, indexed with the ``KEY_*`` constants: a build reads one per
#: stored item, and a named tuple or dataclass per row would cost more than the query.
ItemKey = tuple[str, str | None, str, str]
KEY_ID: Final = 0
KEY_CATEGORY: Final = 1
KEY_LANGUAGE: Final = 2
KEY_HASH: Final = 3


@dataclass(frozen=True, slots=True)
class SourceState:
    """What the store remembers of a source: HTTP validators and its last fetch."""

    name: str
    etag: str | None = None
    last_modified: str | None = None
    last_fetch: datetime | None = None
    last_ok: datetime | None = None
    last_error: str | None = None
    item_count: int = 0


@dataclass(slots=True)
class SourceResult:
    """What one source run produced: items, per-item problems, and HTTP cache state."""

    items: list[RawItem] = field(default_factory=list)
    errors: list[Any] = field(default_factory=list)  # list[errors.ItemError]
    not_modified: bool = False
    etag: str | None = None
    last_modified: str | None = None
    left_out: int = 0  # items past the source's max_items_per_run, the oldest ones


class SubscriptionStatus(StrEnum):
    """Where one address stands on one list.

    ``unsubscribed``, ``bounced`` and ``complained`` are sticky: no import undoes them.
    """

    PENDING = "pending"
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


SUPPRESSED = frozenset(
    {SubscriptionStatus.UNSUBSCRIBED, SubscriptionStatus.BOUNCED, SubscriptionStatus.COMPLAINED}
)
#: Suppressions the subscriber's own links cannot lift (only an admin's ``--force``): the
#: address failed or its owner reported us, and a forwarded link proves neither changed.
ADMIN_ONLY = frozenset({SubscriptionStatus.BOUNCED, SubscriptionStatus.COMPLAINED})


class Unsubscribe(StrEnum):
    """What an unsubscribe (``subscribers remove``, a link, the preferences page) did.

    ``recorded``: the address is bounced or complained on the list; it stays so, and the
    unsubscribe is kept in its history, so lifting the suppression leaves it unsubscribed.
    ``already``: it was unsubscribed (or its unsubscribe was recorded) before.
    """

    UNSUBSCRIBED = "unsubscribed"
    RECORDED = "recorded"
    ALREADY = "already"
    NOT_ON_LIST = "not-on-list"

    @property
    def changed(self) -> bool:
        """Whether this call recorded the person's wish (False: nothing to do)."""
        return self in (Unsubscribe.UNSUBSCRIBED, Unsubscribe.RECORDED)


_SEVERITY = {
    SubscriptionStatus.UNSUBSCRIBED: 1,
    SubscriptionStatus.BOUNCED: 2,
    SubscriptionStatus.COMPLAINED: 3,
}


def suppression_replaces(old: SubscriptionStatus, new: SubscriptionStatus) -> bool:
    """Whether recording the suppression ``new`` changes a subscription that is ``old``.

    Severity decides: complained > bounced > unsubscribed. A bounce or a complaint must
    reach a list the person had left too, or that list's "subscribe again" button (which
    only looks at the list's own status) would mail a dead or reporting address; lifting
    it (``subscribers unsuppress``) finds the unsubscribe in the history and restores it.
    An unsubscribe never replaces a bounce or complaint, and a bounce never a complaint.
    """
    return _SEVERITY.get(new, 0) > _SEVERITY.get(old, 0)


class DeliveryStatus(StrEnum):
    """One message's state in the delivery ledger.

    ``unknown`` means only that the message text went out and no final reply came back
    (the connection dropped or the server went silent after DATA): the server may have
    accepted it, so it is not resent unless an admin asks.
    """

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"
    BOUNCED = "bounced"
    UNKNOWN = "unknown"
    SKIPPED = "skipped"  # the subscriber left the list between issue and send


#: The statuses of a delivery that was not sent and whose last reply says why: what
#: ``digest failures`` lists by default. ``skipped`` (the subscriber left the list, or
#: the list left config.toml) is no problem to look into: listed only when asked for.
NOT_SENT = (DeliveryStatus.DEFERRED, DeliveryStatus.FAILED, DeliveryStatus.BOUNCED, DeliveryStatus.UNKNOWN)
#: What ``digest failures --status`` accepts.
WHY_STATUSES = (*NOT_SENT, DeliveryStatus.SKIPPED)


class JobKind(StrEnum):
    """What a ``[schedules.NAME]`` table runs (its ``job`` key) and a job run records.

    The values are config contract and stored in ``job_runs.job``: never rename them.
    """

    INGEST = "ingest"
    BUILD = "build"
    DIGEST = "digest"
    PUBLISH = "publish"
    BOUNCES = "bounces"


# The jobs that send digests: a list's schedule must run one of them, and a missed fire
# time of one is caught up only within ``catch_up`` (a late mail can be worse than none).
SENDING_JOBS = frozenset({JobKind.DIGEST, JobKind.PUBLISH})


class RunOutcome(StrEnum):
    """How one job run ended, as ``job_runs.outcome`` stores it.

    ``running`` is also the state of a run in progress; ``interrupted`` is a run whose
    process ended (or was stopped) before it finished.
    """

    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


def email_hash(address: str) -> str:
    """The key that outlives erasure: sha256 of the normalised, lower-cased address.

    Here, not in the store, because the CSV reader de-duplicates by it and the import
    planner matches stored subscribers by it, as the store looks addresses up by it.
    """
    return hashlib.sha256(address.lower().encode("utf-8")).hexdigest()


@dataclass(slots=True, frozen=True)
class Consent:
    """When, how and from where an address agreed to receive a list.

    Its time also stamps the status change it comes with, so it is the caller's
    clock reading (``Publisher.clock``), never the store's.
    """

    at: datetime
    method: str
    source: str = ""

    @property
    def detail(self) -> str:
        return f"{self.method}: {self.source}" if self.source else self.method


@dataclass(slots=True)
class Subscriber:
    """One address on one list, as the digest and subscription code see it."""

    id: int
    email: str
    name: str
    language: str
    secret: str
    list_slug: str
    status: SubscriptionStatus
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Issue:
    """One digest of one list for one period; unique on (list_slug, period_key)."""

    id: int
    list_slug: str
    period_key: str
    created: datetime
    subject: str
    item_ids: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Delivery:
    """One message of one issue to one subscriber; unique on (issue_id, subscriber_id)."""

    id: int
    issue_id: int
    subscriber_id: int
    status: DeliveryStatus
    attempts: int = 0
    next_attempt: datetime | None = None
    last_code: int | None = None
    last_text: str | None = None
    message_id: str | None = None


class FeedbackKind(StrEnum):
    """What a bounce or complaint report says about one delivery (stored: never rename)."""

    HARD_BOUNCE = "hard-bounce"  # permanent failure (5.x.x): the address is bounced at once
    SOFT_BOUNCE = "soft-bounce"  # temporary failure (4.x.x): counted against [bounces] soft_limit
    COMPLAINT = "complaint"  # the recipient reported the mail as spam (ARF, provider webhook)


@dataclass(frozen=True, slots=True)
class FeedbackEvent:
    """One finding of a report, as a parser or a webhook read it, before it is trusted.

    ``report_id`` is the report's Message-ID (or the provider's notification id): the
    idempotency key, so the same report processed twice changes nothing. A mailed
    report names the delivery by ``delivery_token`` (the VERP token, verified by
    :func:`publisher.bounces.apply.apply_feedback`, never by the parser) or by the
    Message-ID we gave the original (``original_message_id``); an authenticated webhook
    names ``address``. ``source`` says where it came from: ``maildir``, ``imap``,
    ``webhook:ses``, ``webhook:generic`` or ``cli``.
    """

    kind: FeedbackKind
    report_id: str
    source: str
    address: str | None = None
    delivery_token: str | None = None
    status_code: str | None = None
    diagnostic: str = ""
    original_message_id: str | None = None


class FeedbackOutcome(StrEnum):
    """What applying one :class:`FeedbackEvent` did."""

    APPLIED = "applied"  # recorded; the delivery and address changed as the kind says
    DUPLICATE = "duplicate"  # this report was applied before: nothing changed
    UNMATCHED = "unmatched"  # no valid token, or it names nobody we sent to: nothing changed
    IGNORED = "ignored"  # understood, but says nothing to act on (a delay warning, an auto-reply)


class ReportOutcome(StrEnum):
    """Where a mailbox puts a report message once the store has its effects."""

    PROCESSED = "processed"  # Maildir cur/, IMAP processed_folder
    UNMATCHED = "unmatched"  # names nobody we sent to, or a forged token: for an admin
    UNPARSED = "unparsed"  # not a report this reader understands: for an admin
