"""Digest issues, the items they hold, and the delivery ledger.

The two unique constraints are the exactly-once guarantee: one issue per
(list, period key) and one delivery per (issue, subscriber). An issue and all its
delivery rows are created in one transaction, so a crash either leaves no issue (and
the next run creates it) or a complete ledger (and the next run continues it).
Senders claim rows in batches (``FOR UPDATE SKIP LOCKED`` on PostgreSQL) and write
results in batches; no transaction is held while talking SMTP.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.expression import UnaryExpression
from sqlalchemy.sql.operators import custom_op

from publisher.errors import LeaseError
from publisher.models import DeliveryStatus, FeedbackKind, Item, SubscriptionStatus
from publisher.store.items import row_to_item, shown
from publisher.store.subscribers import receives
from publisher.store.tables import (
    deliveries,
    delivery_attempts,
    feedback_events,
    issue_items,
    issues,
    items,
    subscribers,
    subscriptions,
)
from publisher.store.workers import WorkerProgress, usable
from publisher.text import cut_at_word, first_line, storable, visible_line

CHUNK = 1000


@dataclass(slots=True)
class IssueRow:
    id: int
    list_slug: str
    period_key: str
    period_start: datetime
    schedule: str | None
    created: datetime
    subject: str
    forced: bool
    omitted: int = 0  # items held but not shown (over the list's max_items): the last positions


@dataclass(slots=True, frozen=True)
class IssueSummary:
    """One issue with its delivery counts per status, as ``digest status`` and ``status`` show it."""

    id: int
    list_slug: str
    period_key: str
    period_start: datetime
    schedule: str | None
    created: datetime
    subject: str
    forced: bool
    total: int
    pending: int
    sending: int
    sent: int
    deferred: int
    failed: int
    bounced: int
    unknown: int
    skipped: int
    # Reports received later about this issue's deliveries (publisher.bounces).
    soft_bounces: int = 0
    complaints: int = 0
    # Who sends it (``digest status``; empty elsewhere): per worker, its sent count and state.
    workers: tuple[WorkerProgress, ...] = ()


#: How much of a reply a table or a page shows (the store keeps up to 1,000 characters).
REPLY_SHOWN = 240
#: How much of a reply's first line makes its reason (cut at a word, with "…"): replies
#: that differ only further on are one reason.
REASON_LENGTH = 200


@dataclass(slots=True, frozen=True)
class FailedDelivery:
    """One delivery that was not sent, with the last word of the server about it.

    ``text`` is the reply as stored: a mail server's words, so possibly hostile; a front
    shows :attr:`shown_text`, never ``text`` as it is. ``email`` is None once the
    subscriber was forgotten (their replies are erased with them). ``worker`` is the
    process that made the last attempt (``host-pid-id``), None if no worker holds it.
    """

    delivery_id: int
    issue_id: int
    list_slug: str
    period_key: str
    subscriber_id: int
    email: str | None
    status: str
    attempts: int
    code: int | None
    text: str | None
    next_attempt: datetime | None
    last_attempt: datetime
    worker: str | None

    @property
    def shown_text(self) -> str:
        """The reply as one inert line of at most :data:`REPLY_SHOWN` characters."""
        return visible_line(self.text or "", REPLY_SHOWN)


@dataclass(slots=True, frozen=True)
class FailureReason:
    """How many deliveries were not sent for one reason: status, code and reply's first line.

    ``reason`` is the first line of the reply with mail addresses replaced by
    ``<address>`` (many servers name the recipient, which would make every refusal a
    reason of its own), cut at :data:`REASON_LENGTH`; like a reply, it is shown through
    :attr:`shown_reason`.
    """

    status: str
    code: int | None
    reason: str
    count: int

    @property
    def shown_reason(self) -> str:
        return visible_line(self.reason, REPLY_SHOWN)


@dataclass(slots=True)
class Claimed:
    """A claimed delivery with what is needed to personalise its message."""

    delivery_id: int
    issue_id: int
    attempts: int
    subscriber_id: int
    email: str
    name: str
    language: str
    secret: str
    list_status: str | None


@dataclass(slots=True)
class Outcome:
    """One delivery result to write: the new status and the attempt's details."""

    delivery_id: int
    status: DeliveryStatus
    code: int | None
    text: str
    at: datetime
    attempts: int
    next_attempt: datetime | None = None
    message_id: str | None = None


def _issue(row: Any) -> IssueRow:
    m = row._mapping
    return IssueRow(
        id=m["id"],
        list_slug=m["list_slug"],
        period_key=m["period_key"],
        period_start=m["period_start"],
        schedule=m["schedule"],
        created=m["created"],
        subject=m["subject"],
        forced=m["forced"],
        omitted=m["omitted_items"],
    )


class IssueStore:
    """Issues unique per (list, period) and deliveries unique per (issue, subscriber)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- building an issue -------------------------------------------------------

    def candidate_items(
        self,
        list_slug: str,
        categories: Sequence[str] | None,
        languages: Sequence[str],
        since: datetime,
        sources: Sequence[str],
    ) -> list[Item]:
        """Items readers see, published since ``since``, that no issue of this list holds yet.

        ``categories`` None means every item, categorised or not. ``sources`` are the
        configured source names in config order (see :func:`store.items.shown`). An item
        whose story (canonical link) an earlier issue already told is left out too: when
        an earlier source's copy arrives after a later source's copy was mailed, the
        feeds switch to it, but the list's readers have already read that story.
        """
        held = (
            select(issue_items.c.item_id)
            .join(issues, issues.c.id == issue_items.c.issue_id)
            .where(issues.c.list_slug == list_slug, issue_items.c.item_id == items.c.id)
        )
        told = items.alias("told")
        story_told = (
            select(issue_items.c.item_id)
            .join(issues, issues.c.id == issue_items.c.issue_id)
            .join(told, told.c.id == issue_items.c.item_id)
            .where(
                issues.c.list_slug == list_slug, told.c.link_key == items.c.link_key, told.c.link_key != ""
            )
        )
        q = select(items).where(
            items.c.published >= since, ~exists(held), ~exists(story_told), shown(sources)
        )
        if categories is not None:
            q = q.where(items.c.category.in_(list(categories)))
        if languages:
            q = q.where(items.c.language.in_(list(languages)))
        q = q.order_by(items.c.published.desc(), items.c.id)
        with self.engine.connect() as conn:
            return [row_to_item(r) for r in conn.execute(q)]

    def get(self, list_slug: str, period_key: str) -> IssueRow | None:
        q = select(issues).where(issues.c.list_slug == list_slug, issues.c.period_key == period_key)
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        return _issue(row) if row else None

    def by_id(self, issue_id: int) -> IssueRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(issues).where(issues.c.id == issue_id)).first()
        return _issue(row) if row else None

    def sent_issues(self, list_slug: str) -> list[IssueRow]:
        """The list's issues that reached at least one reader, newest first (the archive's)."""
        sent = select(deliveries.c.id).where(
            deliveries.c.issue_id == issues.c.id, deliveries.c.status == DeliveryStatus.SENT.value
        )
        q = (
            select(issues)
            .where(issues.c.list_slug == list_slug, exists(sent))
            .order_by(issues.c.created.desc(), issues.c.id.desc())
        )
        with self.engine.connect() as conn:
            return [_issue(r) for r in conn.execute(q)]

    def count_for_period(self, list_slug: str, period_prefix: str) -> int:
        q = (
            select(func.count())
            .select_from(issues)
            .where(issues.c.list_slug == list_slug, issues.c.period_key.startswith(period_prefix))
        )
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

    def create(
        self,
        *,
        list_slug: str,
        period_key: str,
        period_start: datetime,
        schedule: str | None,
        subject: str,
        item_ids: Sequence[str],
        languages: Sequence[str] | None = None,
        now: datetime,
        forced: bool = False,
        omitted: int = 0,
    ) -> tuple[int, int] | None:
        """Create the issue, its items and one pending delivery per subscriber atomically.

        ``item_ids`` are every item the issue covers, the shown ones first; the last
        ``omitted`` of them are held (no later issue brings them) but not shown.

        The recipients are every subscriber the list's issue goes to (``receives``, of
        ``languages`` when given), chosen by the database in the same
        transaction: no subscriber row travels through Python, so a 100k list costs one
        statement and no memory. Returns (issue id, deliveries created), or None when
        the (list, period) issue already exists: someone else (a previous run, another
        process) created it, and that one is the issue.
        """
        try:
            with self.engine.begin() as conn:
                issue_id = conn.execute(
                    insert(issues)
                    .values(
                        list_slug=list_slug,
                        period_key=period_key,
                        period_start=period_start,
                        schedule=schedule,
                        created=now,
                        subject=subject,
                        forced=forced,
                        omitted_items=omitted,
                    )
                    .returning(issues.c.id)
                ).scalar_one()
                if item_ids:
                    conn.execute(
                        insert(issue_items),
                        [{"issue_id": issue_id, "item_id": i, "position": n} for n, i in enumerate(item_ids)],
                    )
                recipients = _insert_confirmed(conn, issue_id, list_slug, languages, now)
        except IntegrityError:
            return None
        return int(issue_id), recipients

    def item_ids(self, issue_id: int) -> list[str]:
        """Every item the issue covers, in position order (shown ones first)."""
        q = (
            select(issue_items.c.item_id)
            .where(issue_items.c.issue_id == issue_id)
            .order_by(issue_items.c.position)
        )
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(q)]

    def shown_item_ids(self, issue: IssueRow) -> list[str]:
        """The items the issue's mail shows: all it covers but the ``omitted`` last ones."""
        ids = self.item_ids(issue.id)
        return ids[: len(ids) - issue.omitted]

    # -- the delivery ledger -----------------------------------------------------

    def claim(self, worker: str, limit: int, now: datetime, *, list_slug: str | None = None) -> list[Claimed]:
        """Mark up to ``limit`` due deliveries as sending by ``worker`` and return them.

        Due: pending, or deferred with its retry time come. On PostgreSQL concurrent
        workers skip each other's rows (SKIP LOCKED); on SQLite the UPDATE re-checks
        that each row is still due, so a row another worker claimed meanwhile is not ours.
        A registered worker that lost its lease claims nothing (LeaseError): the process
        that won it has settled, or is settling, what it held.
        """
        sqlite = self.engine.dialect.name == "sqlite"
        while True:
            with self.engine.begin() as conn:
                if not usable(conn, worker):
                    raise LeaseError(
                        f"worker {worker} lost its lease: another process settled its deliveries"
                    )
                ids = (
                    self._pick_sqlite(conn, limit, now, list_slug)
                    if sqlite
                    else self._pick(conn, limit, now, list_slug)
                )
                if not ids:
                    return []
                # On SQLite the re-check must not use the status index: SQLite would then
                # walk every due row instead of looking up the few hundred ids.
                still_due = _due(now, _unindexed if sqlite else _as_is)
                mine = self._mark_sending(conn, ids, still_due, worker, now)
                if mine:
                    return self._claimed_rows(conn, mine)
            # Every picked row was claimed by another worker meanwhile (SQLite): pick again.

    @staticmethod
    def _pick(conn: Connection, limit: int, now: datetime, list_slug: str | None) -> list[int]:
        """The ids of the first ``limit`` due deliveries (of ``list_slug``), locked, in id order."""
        q = _first(_due(now, _as_is), limit, list_slug).with_for_update(skip_locked=True)
        return [r[0] for r in conn.execute(q)]

    @staticmethod
    def _pick_sqlite(conn: Connection, limit: int, now: datetime, list_slug: str | None) -> list[int]:
        """The same rows as :meth:`_pick`, without SQLite's quadratic plan.

        Asked for all due rows at once, SQLite gathers every one of them through the
        (status, next_attempt) index and sorts them by id, for every batch. Rows pending
        with no retry time (nearly all of them) come in id order straight off that
        index; the other due rows are few. The first ``limit`` of each, merged, are the
        first ``limit`` of all due rows.
        """
        fresh = and_(deliveries.c.status == DeliveryStatus.PENDING.value, deliveries.c.next_attempt.is_(None))
        others = or_(
            and_(deliveries.c.status == DeliveryStatus.PENDING.value, deliveries.c.next_attempt.is_not(None)),
            and_(deliveries.c.status == DeliveryStatus.DEFERRED.value, deliveries.c.next_attempt <= now),
        )
        ids = [r[0] for part in (fresh, others) for r in conn.execute(_first(part, limit, list_slug))]
        return sorted(ids)[:limit]

    @staticmethod
    def _mark_sending(
        conn: Connection, ids: list[int], still_due: Any, worker: str, now: datetime
    ) -> list[int]:
        """Mark the rows that are still due as this worker's; return their ids.

        Re-checking matters on SQLite: the pick runs outside the transaction (no row
        locks there), so a concurrent worker may have claimed some of those rows since;
        only the rows this UPDATE changes, under the write lock, are ours.
        """
        result = conn.execute(
            update(deliveries)
            .where(deliveries.c.id.in_(ids), still_due)
            .values(
                status=DeliveryStatus.SENDING.value,
                claimed_by=worker,
                claimed_at=now,
                started_at=None,
                updated_at=now,
            )
            .returning(deliveries.c.id)
        )
        return sorted(r[0] for r in result)

    @staticmethod
    def _claimed_rows(conn: Connection, ids: list[int]) -> list[Claimed]:
        q = (
            select(
                deliveries.c.id,
                deliveries.c.issue_id,
                deliveries.c.attempts,
                subscribers.c.id.label("sid"),
                subscribers.c.email,
                subscribers.c.name,
                subscribers.c.language,
                subscribers.c.secret,
                subscriptions.c.status.label("list_status"),
            )
            .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
            .join(issues, issues.c.id == deliveries.c.issue_id)
            .outerjoin(
                subscriptions,
                and_(
                    subscriptions.c.subscriber_id == deliveries.c.subscriber_id,
                    subscriptions.c.list_slug == issues.c.list_slug,
                ),
            )
            .where(deliveries.c.id.in_(ids))
            .order_by(deliveries.c.id)
        )
        return [
            Claimed(did, issue_id, attempts, sid, email or "", name, language, secret, list_status)
            for did, issue_id, attempts, sid, email, name, language, secret, list_status in conn.execute(q)
        ]

    def record(self, outcomes: Sequence[Outcome], *, worker: str) -> int:
        """Write a batch of ``worker``'s results; return how many rows took them.

        Only rows still ``sending`` and claimed by ``worker`` change (fencing): a worker
        whose lease lapsed and whose rows another process settled changes nothing, even
        if it still runs. ``claimed_by`` stays: it says who sent the message. An id given
        twice takes its first outcome. On PostgreSQL one statement writes the whole batch
        (:data:`_RECORD_BATCH`); on SQLite one SELECT, one UPDATE and one INSERT per batch.
        """
        first: dict[int, Outcome] = {}
        for o in outcomes:
            first.setdefault(o.delivery_id, o)
        outcomes = list(first.values())
        if not outcomes:
            return 0
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                return _record_batch(conn, outcomes, worker)
            ours = _ours(conn, [o.delivery_id for o in outcomes], worker)
            outcomes = [o for o in outcomes if o.delivery_id in ours]
            if not outcomes:
                return 0
            conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.id == bindparam("b_id"),
                    deliveries.c.status == DeliveryStatus.SENDING.value,
                    deliveries.c.claimed_by == bindparam("b_worker"),
                )
                .values(
                    status=bindparam("b_status"),
                    attempts=bindparam("b_attempts"),
                    next_attempt=bindparam("b_next"),
                    last_code=bindparam("b_code"),
                    last_text=bindparam("b_text"),
                    message_id=func.coalesce(bindparam("b_mid"), deliveries.c.message_id),
                    updated_at=bindparam("b_at"),
                ),
                [
                    {
                        "b_id": o.delivery_id,
                        "b_worker": worker,
                        "b_status": o.status.value,
                        "b_attempts": o.attempts,
                        "b_next": o.next_attempt,
                        "b_code": o.code,
                        "b_text": _reply_text(o.text),
                        "b_mid": o.message_id,
                        "b_at": o.at,
                    }
                    for o in outcomes
                ],
            )
            conn.execute(
                insert(delivery_attempts),
                [
                    {
                        "delivery_id": o.delivery_id,
                        "at": o.at,
                        "status": o.status.value,
                        "code": o.code,
                        "text": _reply_text(o.text),
                    }
                    for o in outcomes
                ],
            )
        return len(outcomes)

    def release(self, delivery_ids: Sequence[int], now: datetime, *, worker: str) -> None:
        """Give ``worker``'s claimed deliveries that were never started back to the queue.

        Fenced like :meth:`record`: only rows still ``sending`` by ``worker`` change.
        """
        with self.engine.begin() as conn:
            for start in range(0, len(delivery_ids), CHUNK):
                chunk = list(delivery_ids[start : start + CHUNK])
                conn.execute(
                    update(deliveries)
                    .where(
                        deliveries.c.id.in_(chunk),
                        deliveries.c.status == DeliveryStatus.SENDING.value,
                        deliveries.c.claimed_by == worker,
                    )
                    .values(**_RELEASED, updated_at=now)
                )

    def mark_started(self, worker: str, delivery_ids: Sequence[int], now: datetime) -> list[int]:
        """Mark ``worker``'s claimed rows as about to go out; return the ids marked.

        Called in batches ahead of the transport (publisher.ledger): a row the worker
        starts always carries the mark, so a lost worker's rows without it are safe to
        queue again. An id missing from the answer is no longer the worker's (its lease
        was lost and the row settled by another process): it must not be sent.
        """
        if not delivery_ids:
            return []
        with self.engine.begin() as conn:
            result = conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.id.in_(list(delivery_ids)),
                    deliveries.c.status == DeliveryStatus.SENDING.value,
                    deliveries.c.claimed_by == worker,
                )
                .values(started_at=now)
                .returning(deliveries.c.id)
            )
            return sorted(r[0] for r in result)

    def settle_lost(self, worker: str, now: datetime, text: str) -> tuple[int, int]:
        """Settle a lost worker's claims from the store alone: (released, unknown).

        Rows without a start mark go back to ``pending`` first, then rows with one become
        ``unknown`` with ``text``. In that order a mark the worker commits meanwhile
        either comes before the release (the row is then not released, and becomes
        unknown) or finds the row no longer its own (and the row is not sent).
        """
        mine = and_(deliveries.c.claimed_by == worker, deliveries.c.status == DeliveryStatus.SENDING.value)
        with self.engine.begin() as conn:
            released = conn.execute(
                update(deliveries)
                .where(mine, deliveries.c.started_at.is_(None))
                .values(**_RELEASED, updated_at=now)
            ).rowcount
            unknown = [
                r[0]
                for r in conn.execute(
                    update(deliveries)
                    .where(mine, deliveries.c.started_at.is_not(None))
                    .values(
                        status=DeliveryStatus.UNKNOWN.value,
                        attempts=deliveries.c.attempts + 1,
                        last_code=None,
                        last_text=text,
                        updated_at=now,
                    )
                    .returning(deliveries.c.id)
                )
            ]
            if unknown:
                conn.execute(
                    insert(delivery_attempts),
                    [
                        {"delivery_id": i, "at": now, "status": DeliveryStatus.UNKNOWN.value, "text": text}
                        for i in unknown
                    ],
                )
        return int(released or 0), len(unknown)

    def claimed_by(self, worker: str) -> list[int]:
        q = select(deliveries.c.id).where(
            deliveries.c.claimed_by == worker, deliveries.c.status == DeliveryStatus.SENDING.value
        )
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(q)]

    def stale_workers(self, before: datetime) -> list[str]:
        """Workers holding 'sending' rows claimed before ``before`` (crashed elsewhere)."""
        q = (
            select(deliveries.c.claimed_by)
            .where(deliveries.c.status == DeliveryStatus.SENDING.value, deliveries.c.claimed_at < before)
            .distinct()
        )
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(q) if r[0]]

    def attempts_of(self, delivery_ids: Sequence[int]) -> dict[int, int]:
        with self.engine.connect() as conn:
            q = select(deliveries.c.id, deliveries.c.attempts).where(deliveries.c.id.in_(list(delivery_ids)))
            return {r[0]: r[1] for r in conn.execute(q)}

    def resend_unknown(self, issue_id: int, now: datetime) -> int:
        """Put an issue's 'unknown' deliveries back in the queue (an admin's explicit ask)."""
        with self.engine.begin() as conn:
            result = conn.execute(
                update(deliveries)
                .where(deliveries.c.issue_id == issue_id, deliveries.c.status == DeliveryStatus.UNKNOWN.value)
                .values(status=DeliveryStatus.PENDING.value, updated_at=now)
            )
            return int(result.rowcount or 0)

    def unknown_with_text(
        self, text: str, *, list_slug: str | None = None, issue_id: int | None = None
    ) -> list[tuple[int, str, str, int]]:
        """Per issue, its 'unknown' deliveries with no SMTP code and exactly ``text``.

        Rows (issue id, list, period key, count), oldest issue first: what
        :meth:`requeue_unknown_with_text` would put back in the queue.
        """
        with self.engine.connect() as conn:
            return _unknown_with(conn, text, list_slug, issue_id)

    def requeue_unknown_with_text(
        self, text: str, now: datetime, *, list_slug: str | None = None, issue_id: int | None = None
    ) -> list[tuple[int, str, str, int]]:
        """Put those deliveries back to pending (attempts kept); the rows requeued, per issue."""
        with self.engine.begin() as conn:
            found = _unknown_with(conn, text, list_slug, issue_id)
            if found:
                conn.execute(
                    update(deliveries)
                    .where(
                        deliveries.c.issue_id.in_([row[0] for row in found]),
                        deliveries.c.status == DeliveryStatus.UNKNOWN.value,
                        deliveries.c.last_code.is_(None),
                        deliveries.c.last_text == text,
                    )
                    .values(status=DeliveryStatus.PENDING.value, next_attempt=None, updated_at=now)
                )
        return found

    def queued_count(self, list_slug: str | None = None) -> int:
        """Deliveries (of ``list_slug``'s issues) still to send: pending or deferred."""
        q = (
            select(func.count())
            .select_from(deliveries)
            .where(deliveries.c.status.in_([DeliveryStatus.PENDING.value, DeliveryStatus.DEFERRED.value]))
        )
        if list_slug is not None:
            q = q.where(deliveries.c.issue_id.in_(select(issues.c.id).where(issues.c.list_slug == list_slug)))
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

    # -- reports ---------------------------------------------------------------

    def summaries(
        self, list_slug: str | None = None, limit: int = 20, *, ids: Sequence[int] | None = None
    ) -> list[IssueSummary]:
        """Newest issues (of ``list_slug``, or among ``ids``) first with delivery counts per status."""
        counts = {
            s.value: func.sum(case((deliveries.c.status == s.value, 1), else_=0)).label(s.value)
            for s in DeliveryStatus
        }
        q = (
            select(issues, func.count(deliveries.c.id).label("total"), *counts.values())
            .outerjoin(deliveries, deliveries.c.issue_id == issues.c.id)
            .group_by(issues.c.id)
            .order_by(issues.c.created.desc(), issues.c.id.desc())
            .limit(limit)
        )
        if list_slug is not None:
            q = q.where(issues.c.list_slug == list_slug)
        if ids is not None:
            q = q.where(issues.c.id.in_(list(ids)))
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
            feedback = _feedback_counts(conn, [r.id for r in rows])
        return [
            IssueSummary(
                id=r.id,
                list_slug=r.list_slug,
                period_key=r.period_key,
                period_start=r.period_start,
                schedule=r.schedule,
                created=r.created,
                subject=r.subject,
                forced=r.forced,
                total=int(r.total or 0),
                pending=int(r.pending or 0),
                sending=int(r.sending or 0),
                sent=int(r.sent or 0),
                deferred=int(r.deferred or 0),
                failed=int(r.failed or 0),
                bounced=int(r.bounced or 0),
                unknown=int(r.unknown or 0),
                skipped=int(r.skipped or 0),
                soft_bounces=feedback.get((r.id, FeedbackKind.SOFT_BOUNCE.value), 0),
                complaints=feedback.get((r.id, FeedbackKind.COMPLAINT.value), 0),
            )
            for r in rows
        ]

    def queue_counts(self) -> dict[str, int]:
        """Deliveries still to do: pending, sending, deferred (and unknown to review)."""
        open_states = [
            DeliveryStatus.PENDING,
            DeliveryStatus.SENDING,
            DeliveryStatus.DEFERRED,
            DeliveryStatus.UNKNOWN,
        ]
        q = (
            select(deliveries.c.status, func.count())
            .where(deliveries.c.status.in_([s.value for s in open_states]))
            .group_by(deliveries.c.status)
        )
        with self.engine.connect() as conn:
            found = {r[0]: int(r[1]) for r in conn.execute(q)}
        return {s.value: found.get(s.value, 0) for s in open_states}

    # -- why deliveries were not sent ----------------------------------------------

    def latest_issue_ids(self, list_slug: str | None = None) -> list[int]:
        """The newest issue of each list (or of ``list_slug``), newest first."""
        newer = issues.alias("newer")
        later = select(newer.c.id).where(
            newer.c.list_slug == issues.c.list_slug,
            or_(
                newer.c.created > issues.c.created,
                and_(newer.c.created == issues.c.created, newer.c.id > issues.c.id),
            ),
        )
        q = select(issues.c.id).where(~exists(later)).order_by(issues.c.created.desc(), issues.c.id.desc())
        if list_slug is not None:
            q = q.where(issues.c.list_slug == list_slug)
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(q)]

    def failed_deliveries(
        self, issue_ids: Sequence[int], statuses: Sequence[DeliveryStatus], limit: int
    ) -> tuple[list[FailedDelivery], int]:
        """Of these issues, the first ``limit`` deliveries in ``statuses``, latest attempt
        first, and how many there are in all."""
        if not issue_ids or not statuses:
            return [], 0
        where = and_(
            deliveries.c.issue_id.in_(list(issue_ids)),
            deliveries.c.status.in_([s.value for s in statuses]),
        )
        q = (
            select(  # labelled as FailedDelivery's fields
                deliveries.c.id.label("delivery_id"),
                deliveries.c.issue_id,
                issues.c.list_slug,
                issues.c.period_key,
                deliveries.c.subscriber_id,
                subscribers.c.email,
                deliveries.c.status,
                deliveries.c.attempts,
                deliveries.c.last_code.label("code"),
                deliveries.c.last_text.label("text"),
                deliveries.c.next_attempt,
                deliveries.c.updated_at.label("last_attempt"),
                deliveries.c.claimed_by.label("worker"),
            )
            .join(issues, issues.c.id == deliveries.c.issue_id)
            .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
            .where(where)
            .order_by(deliveries.c.updated_at.desc(), deliveries.c.id.desc())
            .limit(limit)
        )
        counted = select(func.count()).select_from(deliveries).where(where)
        with self.engine.connect() as conn:
            rows = [FailedDelivery(**r._mapping) for r in conn.execute(q)]
            total = int(conn.execute(counted).scalar_one())
        return rows, total

    def failure_reasons(
        self, issue_ids: Sequence[int], statuses: Sequence[DeliveryStatus]
    ) -> list[FailureReason]:
        """Of these issues, the deliveries in ``statuses`` counted per reason, most first.

        The database groups by (status, code, the reply's first characters), so a
        hundred thousand refusals with one text are one row; the rows are then merged
        by :class:`FailureReason` (first line, addresses masked) here.
        """
        if not issue_ids or not statuses:
            return []
        head = func.substr(deliveries.c.last_text, 1, REASON_LENGTH * 2)
        q = (
            select(deliveries.c.status, deliveries.c.last_code, head, func.count())
            .where(
                deliveries.c.issue_id.in_(list(issue_ids)),
                deliveries.c.status.in_([s.value for s in statuses]),
            )
            .group_by(deliveries.c.status, deliveries.c.last_code, head)
        )
        merged: dict[tuple[str, int | None, str], int] = {}
        with self.engine.connect() as conn:
            for status, code, text, count in conn.execute(q):
                key = (str(status), code, _reason(text or ""))
                merged[key] = merged.get(key, 0) + int(count)
        found = [
            FailureReason(status, code, reason, count) for (status, code, reason), count in merged.items()
        ]
        return sorted(found, key=lambda r: (-r.count, r.status, r.code or 0, r.reason))


CONFIRMED = SubscriptionStatus.CONFIRMED.value
# What a row given back to the queue looks like: nobody's, never started.
_RELEASED: dict[str, Any] = {
    "status": DeliveryStatus.PENDING.value,
    "claimed_by": None,
    "claimed_at": None,
    "started_at": None,
}


# A batch of outcomes as arrays, one element per outcome, in the ledger's order: the
# rows still ``sending`` by the worker take them, and each row that did gets its attempt.
# Why one statement: the executemany UPDATE it replaces cost the server a statement per
# message, the largest share of the database's work per message when several workers
# share one PostgreSQL. Ids are unique (:meth:`IssueStore.record` keeps an id's first).
_RECORD_BATCH = text(
    """
WITH batch AS (
    SELECT * FROM unnest(
        CAST(:ids AS integer[]), CAST(:statuses AS text[]), CAST(:attempts AS integer[]),
        CAST(:nexts AS timestamptz[]), CAST(:codes AS integer[]), CAST(:texts AS text[]),
        CAST(:mids AS text[]), CAST(:ats AS timestamptz[])
    ) WITH ORDINALITY AS b(id, status, attempts, next_attempt, code, last_text, mid, at, n)
), taken AS (
    UPDATE deliveries d
    SET status = b.status, attempts = b.attempts, next_attempt = b.next_attempt,
        last_code = b.code, last_text = b.last_text, message_id = coalesce(b.mid, d.message_id),
        updated_at = b.at
    FROM batch b
    WHERE d.id = b.id AND d.status = 'sending' AND d.claimed_by = :worker
    RETURNING d.id, b.at, b.status, b.code, b.last_text, b.n
)
INSERT INTO delivery_attempts (delivery_id, at, status, code, text)
SELECT id, at, status, code, last_text FROM taken ORDER BY n
"""
)


def _reply_text(text: str) -> str:
    """A server's reply as stored: at most 1,000 characters, :func:`storable` (a relay
    may be hostile, and one reply that cannot be stored would stop a whole batch)."""
    return storable(text)[:1000]


# A mail address as servers quote it in a refusal, with or without its angle brackets.
_ADDRESS = re.compile(r"<?[^\s<>@\"']+@[^\s<>@\"']+>?")


def _reason(text: str) -> str:
    """A reply's reason: its first line, mail addresses as ``<address>``, cut."""
    return cut_at_word(_ADDRESS.sub("<address>", first_line(text)), REASON_LENGTH)


def _record_batch(conn: Connection, outcomes: Sequence[Outcome], worker: str) -> int:
    """:meth:`IssueStore.record` on PostgreSQL: one statement for the whole batch."""
    result = conn.execute(
        _RECORD_BATCH,
        {
            "ids": [o.delivery_id for o in outcomes],
            "statuses": [o.status.value for o in outcomes],
            "attempts": [o.attempts for o in outcomes],
            "nexts": [o.next_attempt for o in outcomes],
            "codes": [o.code for o in outcomes],
            "texts": [_reply_text(o.text) for o in outcomes],
            "mids": [o.message_id for o in outcomes],
            "ats": [o.at for o in outcomes],
            "worker": worker,
        },
    )
    return int(result.rowcount or 0)


def _ours(conn: Connection, delivery_ids: list[int], worker: str) -> set[int]:
    """Of ``delivery_ids``, those still ``sending`` by ``worker``, locked until commit."""
    found: set[int] = set()
    for start in range(0, len(delivery_ids), CHUNK):
        q = select(deliveries.c.id).where(
            deliveries.c.id.in_(delivery_ids[start : start + CHUNK]),
            deliveries.c.status == DeliveryStatus.SENDING.value,
            deliveries.c.claimed_by == worker,
        )
        if conn.dialect.name != "sqlite":
            q = q.with_for_update()
        found.update(r[0] for r in conn.execute(q))
    return found


def _feedback_counts(conn: Connection, issue_ids: list[int]) -> dict[tuple[int, str], int]:
    """Bounce and complaint reports per (issue, kind)."""
    if not issue_ids:
        return {}
    q = (
        select(feedback_events.c.issue_id, feedback_events.c.kind, func.count())
        .where(feedback_events.c.issue_id.in_(issue_ids))
        .group_by(feedback_events.c.issue_id, feedback_events.c.kind)
    )
    return {(int(i), str(k)): int(n) for i, k, n in conn.execute(q)}


def _insert_confirmed(
    conn: Connection, issue_id: int, list_slug: str, languages: Sequence[str] | None, now: datetime
) -> int:
    """One pending delivery per confirmed subscriber, as one INSERT ... SELECT.

    The subscribers :func:`publisher.store.subscribers.receives` names, in id order.
    """
    chosen = (
        select(
            literal(issue_id, deliveries.c.issue_id.type),
            subscribers.c.id,
            literal(DeliveryStatus.PENDING.value, deliveries.c.status.type),
            literal(0, deliveries.c.attempts.type),
            literal(now, deliveries.c.updated_at.type),
        )
        .join(subscriptions, subscriptions.c.subscriber_id == subscribers.c.id)
        .where(receives(list_slug, languages))
        .order_by(subscribers.c.id)
    )
    columns = ["issue_id", "subscriber_id", "status", "attempts", "updated_at"]
    conn.execute(insert(deliveries).from_select(columns, chosen))
    # rowcount of INSERT ... SELECT is not reliable across drivers (psycopg says -1).
    counted = select(func.count()).select_from(deliveries).where(deliveries.c.issue_id == issue_id)
    return int(conn.execute(counted).scalar_one())


def _unknown_with(
    conn: Connection, text: str, list_slug: str | None, issue_id: int | None
) -> list[tuple[int, str, str, int]]:
    """(issue id, list, period key, count) of unknown deliveries with no code and ``text``."""
    q = (
        select(issues.c.id, issues.c.list_slug, issues.c.period_key, func.count(deliveries.c.id))
        .join(deliveries, deliveries.c.issue_id == issues.c.id)
        .where(
            deliveries.c.status == DeliveryStatus.UNKNOWN.value,
            deliveries.c.last_code.is_(None),
            deliveries.c.last_text == text,
        )
        .group_by(issues.c.id, issues.c.list_slug, issues.c.period_key)
        .order_by(issues.c.id)
    )
    if list_slug is not None:
        q = q.where(issues.c.list_slug == list_slug)
    if issue_id is not None:
        q = q.where(issues.c.id == issue_id)
    return [(r[0], r[1], r[2], int(r[3])) for r in conn.execute(q)]


def _as_is(column: Any) -> Any:
    return column


def _unindexed(column: Any) -> Any:
    """``+column``: SQLite's documented way to keep a term from choosing an index."""
    return UnaryExpression(column, operator=custom_op("+"), type_=column.type)


def _due(now: datetime, col: Callable[[Any], Any]) -> Any:
    """Pending, or deferred with its retry time come."""
    status = col(deliveries.c.status)
    return or_(
        status == DeliveryStatus.PENDING.value,
        and_(status == DeliveryStatus.DEFERRED.value, col(deliveries.c.next_attempt) <= now),
    )


def _first(condition: Any, limit: int, list_slug: str | None) -> Any:
    """The first ``limit`` delivery ids (of ``list_slug``) meeting ``condition``."""
    q = select(deliveries.c.id).where(condition)
    if list_slug is not None:
        q = q.where(deliveries.c.issue_id.in_(select(issues.c.id).where(issues.c.list_slug == list_slug)))
    return q.order_by(deliveries.c.id).limit(limit)
