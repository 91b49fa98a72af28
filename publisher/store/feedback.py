"""Bounce and complaint reports in the store: the deliveries they name, their effects.

Every effect of one report lands in one transaction: its ``feedback_events`` row (unique
per report and subscriber, so the same report applied twice finds its row and changes
nothing), the delivery marked bounced, and the address suppressed on every list with a
``subscription_events`` row per list. A crash before the commit leaves nothing, and the
mailbox moves the report only after it (publisher.bounces.process), so the next run
applies it again in full.

Suppression here follows the rule of :func:`publisher.subscriptions.set_status`
(:func:`publisher.models.suppression_replaces`): a bounce or a complaint marks every
list of the address, those it had left included, so that no web page can join it back
(a list's "subscribe again" button looks at that list's status); a bounce leaves a
complaint as it is, and a complaint replaces any: complaints are what a sender must
prove it honoured. Lifting (``subscribers unsuppress``) restores the status each list
had before (unsubscribed where the person had left), keeping its consent record, and
says so in the history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, Select, and_, case, func, select, update
from sqlalchemy.exc import IntegrityError

from publisher.models import (
    ADMIN_ONLY,
    DeliveryStatus,
    FeedbackKind,
    SubscriptionStatus,
    email_hash,
    suppression_replaces,
)
from publisher.store.tables import (
    deliveries,
    feedback_events,
    issues,
    subscribers,
    subscription_events,
    subscriptions,
)


@dataclass(frozen=True, slots=True)
class DeliveryRef:
    """A delivery a report may be about, with what is needed to check the report's token."""

    delivery_id: int
    issue_id: int
    subscriber_id: int
    email: str | None  # None once the subscriber was forgotten
    secret: str
    status: DeliveryStatus
    issue_created: datetime
    list_slug: str


@dataclass(frozen=True, slots=True)
class FeedbackWrite:
    """One finding to record; ``suppress`` is the status the address gets on every list."""

    subscriber_id: int
    kind: FeedbackKind
    report_id: str
    source: str
    at: datetime
    status_code: str | None = None
    diagnostic: str = ""
    delivery_id: int | None = None
    issue_id: int | None = None
    suppress: SubscriptionStatus | None = None
    mark_bounced: bool = False  # the delivery becomes bounced (a permanent failure)
    # A soft bounce suppresses (as bounced) when this many, this one included, happened
    # at or after ``soft_since``.
    soft_limit: int | None = None
    soft_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class FeedbackApplied:
    """What :meth:`FeedbackStore.apply` did; ``recorded`` False: the report was seen before."""

    recorded: bool
    suppressed_lists: tuple[str, ...] = ()
    soft_count: int = 0


@dataclass(frozen=True, slots=True)
class FeedbackRates:
    """Bounce and complaint rates over a window, as ``status`` shows them.

    ``mailed`` counts deliveries that went out (sent or bounced) and were last changed in
    the window; ``bounced`` those among them that bounced (at the relay or by a later
    report); ``complaints`` the complaint reports received in the window.
    """

    since: datetime
    mailed: int
    bounced: int
    complaints: int
    warnings: list[str] = field(default_factory=list)

    @property
    def bounce_rate(self) -> float:
        return self.bounced / self.mailed if self.mailed else 0.0

    @property
    def complaint_rate(self) -> float:
        return self.complaints / self.mailed if self.mailed else 0.0


_DELIVERY_COLUMNS = (
    deliveries.c.id,
    deliveries.c.issue_id,
    deliveries.c.subscriber_id,
    subscribers.c.email,
    subscribers.c.secret,
    deliveries.c.status,
    issues.c.created,
    issues.c.list_slug,
)


def _delivery_ref(row: Row[Any]) -> DeliveryRef:
    r = row._mapping
    return DeliveryRef(
        delivery_id=r["id"],
        issue_id=r["issue_id"],
        subscriber_id=r["subscriber_id"],
        email=r["email"],
        secret=r["secret"],
        status=DeliveryStatus(r["status"]),
        issue_created=r["created"],
        list_slug=r["list_slug"],
    )


class FeedbackStore:
    """Reads and writes of bounce and complaint reports."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- finding the delivery a report is about ---------------------------------

    def _deliveries(self) -> Select[Any]:
        return (
            select(*_DELIVERY_COLUMNS)
            .join(issues, issues.c.id == deliveries.c.issue_id)
            .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
        )

    def delivery(self, issue_id: int, subscriber_id: int) -> DeliveryRef | None:
        """The delivery of an issue to a subscriber (what a VERP token names), if any."""
        q = self._deliveries().where(
            deliveries.c.issue_id == issue_id, deliveries.c.subscriber_id == subscriber_id
        )
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        return _delivery_ref(row) if row else None

    def delivery_by_message_id(self, message_id: str) -> DeliveryRef | None:
        """The delivery we gave this Message-ID (with or without its angle brackets)."""
        wanted = message_id.strip()
        if not wanted.startswith("<"):
            wanted = f"<{wanted}>"
        q = self._deliveries().where(deliveries.c.message_id == wanted)
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        return _delivery_ref(row) if row else None

    def latest_delivery_to(self, address: str) -> DeliveryRef | None:
        """The newest delivery that went out to ``address`` (an authenticated webhook's report)."""
        q = (
            self._deliveries()
            .where(
                subscribers.c.email_hash == email_hash(address.strip()),
                deliveries.c.status.in_(
                    [DeliveryStatus.SENT.value, DeliveryStatus.BOUNCED.value, DeliveryStatus.UNKNOWN.value]
                ),
            )
            .order_by(issues.c.created.desc(), deliveries.c.id.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        return _delivery_ref(row) if row else None

    # -- writing -----------------------------------------------------------------

    def apply(self, write: FeedbackWrite) -> FeedbackApplied:
        """Record one finding and its effects in one transaction; nothing if seen before."""
        try:
            with self.engine.begin() as conn:
                seen = conn.execute(
                    select(feedback_events.c.id).where(
                        feedback_events.c.report_id == write.report_id,
                        feedback_events.c.subscriber_id == write.subscriber_id,
                    )
                ).first()
                if seen is not None:
                    return FeedbackApplied(recorded=False)
                conn.execute(
                    feedback_events.insert().values(
                        subscriber_id=write.subscriber_id,
                        delivery_id=write.delivery_id,
                        issue_id=write.issue_id,
                        at=write.at,
                        kind=write.kind.value,
                        status_code=write.status_code,
                        diagnostic=write.diagnostic,
                        report_id=write.report_id,
                        source=write.source,
                    )
                )
                if write.mark_bounced and write.delivery_id is not None:
                    _mark_bounced(conn, write)
                suppress = write.suppress
                detail = _detail(write)
                soft = 0
                if write.kind is FeedbackKind.SOFT_BOUNCE and write.soft_limit and write.soft_since:
                    soft = _soft_count(conn, write.subscriber_id, write.soft_since)
                    if soft >= write.soft_limit:
                        suppress = SubscriptionStatus.BOUNCED
                        detail = f"{soft} temporary failures since {write.soft_since:%Y-%m-%d}; {detail}"
                lists: list[str] = []
                if suppress is not None:
                    lists = _suppress(conn, write.subscriber_id, suppress, detail, write.at)
        except IntegrityError:  # a concurrent run recorded the same report first
            return FeedbackApplied(recorded=False)
        return FeedbackApplied(recorded=True, suppressed_lists=tuple(lists), soft_count=soft)

    def lift(self, subscriber_id: int, note: str, now: datetime) -> dict[str, SubscriptionStatus]:
        """Lift bounced and complained on every list; return each list's restored status.

        The restored status is the one the list had before the suppression (from the
        history), confirmed if the history does not say; the consent record is kept.
        """
        restored: dict[str, SubscriptionStatus] = {}
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(subscriptions.c.list_slug, subscriptions.c.status)
                .where(
                    subscriptions.c.subscriber_id == subscriber_id,
                    subscriptions.c.status.in_([s.value for s in ADMIN_ONLY]),
                )
                .with_for_update()
            ).all()
            for slug, current in rows:
                before = status_before_suppression(conn, subscriber_id, slug)
                restored[slug] = before
                conn.execute(
                    update(subscriptions)
                    .where(subscriptions.c.subscriber_id == subscriber_id, subscriptions.c.list_slug == slug)
                    .values(status=before.value, updated_at=now)
                )
                detail = f"unsuppressed ({current} lifted by an admin)" + (f": {note}" if note else "")
                conn.execute(
                    subscription_events.insert().values(
                        subscriber_id=subscriber_id, list_slug=slug, at=now, event=before.value, detail=detail
                    )
                )
        return restored

    # -- reading -------------------------------------------------------------------

    def rates(self, since: datetime) -> FeedbackRates:
        """Deliveries mailed, bounced, and complaints received at or after ``since``."""
        mailed_states = [DeliveryStatus.SENT.value, DeliveryStatus.BOUNCED.value]
        q = select(
            func.count(),
            func.sum(case((deliveries.c.status == DeliveryStatus.BOUNCED.value, 1), else_=0)),
        ).where(deliveries.c.status.in_(mailed_states), deliveries.c.updated_at >= since)
        complaints = (
            select(func.count())
            .select_from(feedback_events)
            .where(
                and_(feedback_events.c.kind == FeedbackKind.COMPLAINT.value, feedback_events.c.at >= since)
            )
        )
        with self.engine.connect() as conn:
            mailed, bounced = conn.execute(q).one()
            complained = conn.execute(complaints).scalar_one()
        return FeedbackRates(since, int(mailed or 0), int(bounced or 0), int(complained or 0))


def _mark_bounced(conn: Connection, write: FeedbackWrite) -> None:
    """The delivery bounced after the relay took it: the report's status and text, later."""
    text = f"bounce report {write.status_code or ''}: {write.diagnostic}".replace(" :", ":")
    conn.execute(
        update(deliveries)
        .where(
            deliveries.c.id == write.delivery_id,
            deliveries.c.status.in_(
                [DeliveryStatus.SENT.value, DeliveryStatus.UNKNOWN.value, DeliveryStatus.DEFERRED.value]
            ),
        )
        .values(status=DeliveryStatus.BOUNCED.value, last_text=text[:2000], updated_at=write.at)
    )


def _soft_count(conn: Connection, subscriber_id: int, since: datetime) -> int:
    q = (
        select(func.count())
        .select_from(feedback_events)
        .where(
            feedback_events.c.subscriber_id == subscriber_id,
            feedback_events.c.kind == FeedbackKind.SOFT_BOUNCE.value,
            feedback_events.c.at >= since,
        )
    )
    return int(conn.execute(q).scalar_one())


def _detail(write: FeedbackWrite) -> str:
    code = f" {write.status_code}" if write.status_code else ""
    text = f"{write.kind.value}{code} via {write.source}"
    if write.diagnostic:
        text += f": {write.diagnostic[:300]}"
    return text


def _suppress(
    conn: Connection, subscriber_id: int, status: SubscriptionStatus, detail: str, now: datetime
) -> list[str]:
    """Suppress every list of the subscriber (see the module's rule); the lists changed."""
    rows = conn.execute(
        select(subscriptions.c.list_slug, subscriptions.c.status)
        .where(subscriptions.c.subscriber_id == subscriber_id)
        .order_by(subscriptions.c.list_slug)
        .with_for_update()
    ).all()
    changed = []
    for slug, value in rows:
        if not suppression_replaces(SubscriptionStatus(value), status):
            continue
        changed.append(slug)
    if changed:
        conn.execute(
            update(subscriptions)
            .where(subscriptions.c.subscriber_id == subscriber_id, subscriptions.c.list_slug.in_(changed))
            .values(status=status.value, updated_at=now)
        )
        conn.execute(
            subscription_events.insert(),
            [
                {
                    "subscriber_id": subscriber_id,
                    "list_slug": slug,
                    "at": now,
                    "event": status.value,
                    "detail": detail,
                }
                for slug in changed
            ],
        )
    return changed


def status_before_suppression(conn: Connection, subscriber_id: int, list_slug: str) -> SubscriptionStatus:
    """The newest status in the list's history that is not bounced or complained."""
    q = (
        select(subscription_events.c.event)
        .where(
            subscription_events.c.subscriber_id == subscriber_id, subscription_events.c.list_slug == list_slug
        )
        .order_by(subscription_events.c.at.desc(), subscription_events.c.id.desc())
    )
    statuses = {s.value for s in SubscriptionStatus} - {s.value for s in ADMIN_ONLY}
    for (event,) in conn.execute(q):
        if event in statuses:
            return SubscriptionStatus(event)
    return SubscriptionStatus.CONFIRMED
