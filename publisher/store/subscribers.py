"""Subscribers, their per-list subscriptions and the history of each change.

This module owns the rules that must hold whatever front asks: a suppression
(unsubscribed, bounced, complained) is never lifted without an explicit, recorded
consent; every status change writes a ``subscription_events`` row in the same
transaction; a forgotten address survives only as its hash. Validation of what the
admin or the visitor typed lives in :mod:`publisher.subscriptions`; this module
receives clean values.

Imports on SQLite run in batches of a few statements each (select the batch's existing
addresses, then ``executemany`` inserts and updates, and INSERT ... SELECT for new
addresses), never one round trip per row: 100k rows must load in a few seconds. What
each row does is decided by :mod:`publisher.store.subscriber_import`; this module reads
and writes. On PostgreSQL the same rules run as SQL over a COPY of the whole file
(:mod:`publisher.store.subscriber_copy`), several times faster.

Reads that leave the store come back as dataclasses (the frozen ones below, or
:class:`publisher.models.Subscriber`), never as rows or dicts.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, func, literal, null, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from publisher.models import (
    ADMIN_ONLY,
    SUPPRESSED,
    Consent,
    Subscriber,
    SubscriptionStatus,
    Unsubscribe,
    email_hash,
)
from publisher.store.feedback import status_before_suppression
from publisher.store.subscriber_copy import import_by_copy
from publisher.store.subscriber_import import (
    BatchOutcome,
    ImportRow,
    PlannedWrites,
    StoredSubscriber,
    plan_batch,
    plan_status,
)
from publisher.store.tables import (
    deliveries,
    delivery_attempts,
    feedback_events,
    issues,
    subscribers,
    subscription_events,
    subscriptions,
)

_CHUNK = 1000
_COPY_ATTEMPTS = 3
_TRANSACTION_ROWS = 20_000


def new_secret() -> str:
    """A per-subscriber secret that signs unsubscribe and preferences tokens."""
    return secrets.token_hex(16)


def new_secrets(count: int) -> list[str]:
    """``count`` secrets like :func:`new_secret`, from one read of the system CSPRNG."""
    raw = secrets.token_bytes(16 * count)
    return [raw[i : i + 16].hex() for i in range(0, 16 * count, 16)]


@dataclass(slots=True, frozen=True)
class ListStatus:
    """One subscription as ``subscribers show`` prints it, with its whole consent record.

    ``consent_text`` and ``consent_language`` are what a web sign-up's form showed;
    ``confirmed_at`` and ``confirmed_source`` when and from where its link was used.
    """

    list_slug: str
    status: SubscriptionStatus
    consent_at: datetime | None
    consent_method: str | None
    consent_source: str | None
    updated_at: datetime
    consent_text: str | None = None
    consent_language: str | None = None
    confirmed_at: datetime | None = None
    confirmed_source: str | None = None


@dataclass(slots=True, frozen=True)
class SubscriptionEvent:
    """One line of a subscriber's history."""

    at: datetime
    list_slug: str | None
    event: str
    detail: str | None


@dataclass(slots=True, frozen=True)
class FeedbackRecord:
    """One bounce or complaint report about a subscriber (or a suppression by hand)."""

    at: datetime
    kind: str  # a models.FeedbackKind value
    status_code: str | None
    diagnostic: str
    report_id: str
    source: str
    list_slug: str | None  # the list of the issue it is about; None for one by hand
    period_key: str | None


@dataclass(slots=True, frozen=True)
class SubscriberRecord:
    """Everything the store knows about one address; ``email`` is None once forgotten."""

    id: int
    email: str | None
    name: str
    language: str
    created: datetime
    forgotten_at: datetime | None
    attributes: Mapping[str, str]
    lists: tuple[ListStatus, ...]
    events: tuple[SubscriptionEvent, ...]
    feedback: tuple[FeedbackRecord, ...] = ()  # bounce and complaint reports, oldest first


@dataclass(slots=True, frozen=True)
class DeliveryRecord:
    """One digest delivered (or tried) to a subscriber, as their data export shows it."""

    list_slug: str
    period_key: str
    subject: str
    status: str
    updated_at: datetime


@dataclass(slots=True, frozen=True)
class SubscriberMatch:
    """One address found by a console search, with its status on each list."""

    id: int
    email: str | None
    name: str
    language: str
    lists: Mapping[str, SubscriptionStatus]


def like_pattern(text: str) -> str:
    """``text`` as a LIKE pattern matching it anywhere, its own ``%``, ``_`` and ``\\`` literal."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(slots=True, frozen=True)
class ExportRow:
    """One subscription of a list with its subscriber, as a CSV export writes it."""

    email: str
    name: str
    language: str
    attributes: Mapping[str, str]
    status: SubscriptionStatus
    consent_at: datetime | None
    consent_method: str | None
    consent_source: str | None


def _row_to_subscriber(m: RowMapping) -> Subscriber:
    return Subscriber(
        id=m["id"],
        email=m["email"] or "",
        name=m["name"],
        language=m["language"],
        secret=m["secret"],
        list_slug=m["list_slug"],
        status=SubscriptionStatus(m["status"]),
        attributes=dict(m["attributes"] or {}),
    )


_SUBSCRIBER_COLUMNS = (
    subscribers.c.id,
    subscribers.c.email,
    subscribers.c.name,
    subscribers.c.language,
    subscribers.c.secret,
    subscribers.c.attributes,
    subscriptions.c.list_slug,
    subscriptions.c.status,
)


def receives(list_slug: str, languages: Collection[str] | None = None) -> ColumnElement[bool]:
    """Who an issue of a list goes to: confirmed on it, an address on file (not forgotten),
    and one of ``languages`` when given. Over ``subscribers`` joined to ``subscriptions``.

    The one definition shared by issue creation, counts and paging.
    """
    condition = and_(
        subscriptions.c.list_slug == list_slug,
        subscriptions.c.status == SubscriptionStatus.CONFIRMED.value,
        subscribers.c.email.is_not(None),
    )
    if languages:
        condition = and_(condition, subscribers.c.language.in_(list(languages)))
    return condition


class SubscriberStore:
    """Addresses, statuses per list, consent and events."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # PostgreSQL imports by COPY and set-based SQL; SQLite in batches of parameters.
        self._copies = engine.dialect.name == "postgresql"

    # -- reads for the digest sender and the web app ----------------------------

    def get(self, subscriber_id: int, list_slug: str | None = None) -> Subscriber | None:
        """One subscriber with its status on ``list_slug`` (default: its first list by slug).

        None when the id is unknown or the subscriber is on no list (or not on ``list_slug``).
        """
        q = (
            select(*_SUBSCRIBER_COLUMNS)
            .join(subscriptions, subscriptions.c.subscriber_id == subscribers.c.id)
            .where(subscribers.c.id == subscriber_id)
            .order_by(subscriptions.c.list_slug)
            .limit(1)
        )
        if list_slug is not None:
            q = q.where(subscriptions.c.list_slug == list_slug)
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        return _row_to_subscriber(row._mapping) if row else None

    def count_confirmed(self, list_slug: str, languages: Collection[str] | None = None) -> int:
        """How many subscribers an issue of the list would go to, counted by the database."""
        with self.engine.connect() as conn:
            return self._count_receiving(conn, list_slug, languages)

    def count_confirmed_after_import(
        self,
        list_slug: str,
        languages: Collection[str] | None,
        rows: Sequence[ImportRow],
        consent: Consent,
        default_language: str,
    ) -> int:
        """:meth:`count_confirmed` as it would be after importing ``rows``; writes nothing.

        The import runs in a transaction that is rolled back, so a dry run counts exactly
        what the real send (which imports the list's file first) would reach.
        """
        with self.engine.connect() as conn:
            transaction = conn.begin()
            try:
                if self._copies:
                    import_by_copy(conn, list_slug, rows, consent, default_language, new_secrets(len(rows)))
                else:
                    for start in range(0, len(rows), _CHUNK):
                        self._import_batch(
                            conn, list_slug, rows[start : start + _CHUNK], consent, default_language
                        )
                return self._count_receiving(conn, list_slug, languages)
            finally:
                transaction.rollback()

    def _count_receiving(self, conn: Connection, list_slug: str, languages: Collection[str] | None) -> int:
        q = (
            select(func.count())
            .select_from(subscribers)
            .join(subscriptions, subscriptions.c.subscriber_id == subscribers.c.id)
        )
        return int(conn.execute(q.where(receives(list_slug, languages))).scalar_one())

    def unserved_by_language(self, list_slug: str, languages: Collection[str] | None) -> dict[str, int]:
        """Confirmed subscribers a list does not send to because of their language, per language.

        Exactly those :func:`receives` takes without ``languages`` and drops with them,
        so the count and the send cannot disagree. Empty when ``languages`` is empty
        (the list sends in every language). Languages come in alphabetical order.
        """
        if not languages:
            return {}
        q = (
            select(subscribers.c.language, func.count())
            .select_from(subscribers)
            .join(subscriptions, subscriptions.c.subscriber_id == subscribers.c.id)
            .where(receives(list_slug), subscribers.c.language.not_in(list(languages)))
            .group_by(subscribers.c.language)
            .order_by(subscribers.c.language)
        )
        with self.engine.connect() as conn:
            return {str(language): int(n) for language, n in conn.execute(q)}

    def iter_confirmed(
        self, list_slug: str, languages: Collection[str] | None = None, *, chunk: int = _CHUNK
    ) -> Iterator[list[Subscriber]]:
        """Confirmed subscribers of a list in id order, ``chunk`` at a time (keyset paging)."""
        last_id = 0
        while True:
            q = (
                select(*_SUBSCRIBER_COLUMNS)
                .join(subscriptions, subscriptions.c.subscriber_id == subscribers.c.id)
                .where(receives(list_slug, languages), subscribers.c.id > last_id)
                .order_by(subscribers.c.id)
                .limit(chunk)
            )
            with self.engine.connect() as conn:
                page = [_row_to_subscriber(r._mapping) for r in conn.execute(q)]
            if not page:
                return
            yield page
            last_id = page[-1].id

    def confirmed(self, list_slug: str, languages: Collection[str] | None = None) -> list[Subscriber]:
        """Every confirmed subscriber of a list, optionally only those of some languages."""
        return [s for page in self.iter_confirmed(list_slug, languages) for s in page]

    def counts_by_status(self, list_slug: str) -> dict[str, int]:
        """Subscriptions of a list per status; every status is present, zero included."""
        q = (
            select(subscriptions.c.status, func.count())
            .where(subscriptions.c.list_slug == list_slug)
            .group_by(subscriptions.c.status)
        )
        counts = {s.value: 0 for s in SubscriptionStatus}
        with self.engine.connect() as conn:
            for status, n in conn.execute(q):
                counts[status] = int(n)
        return counts

    def secret(self, subscriber_id: int) -> str | None:
        with self.engine.connect() as conn:
            value = conn.execute(
                select(subscribers.c.secret).where(subscribers.c.id == subscriber_id)
            ).scalar_one_or_none()
        return None if value is None else str(value)

    def statuses(self, subscriber_id: int) -> dict[str, SubscriptionStatus]:
        """The subscriber's status on every list it has a subscription row for."""
        q = (
            select(subscriptions.c.list_slug, subscriptions.c.status)
            .where(subscriptions.c.subscriber_id == subscriber_id)
            .order_by(subscriptions.c.list_slug)
        )
        with self.engine.connect() as conn:
            return {slug: SubscriptionStatus(status) for slug, status in conn.execute(q)}

    def find_id(self, address: str) -> int | None:
        """The id of a normalised address, forgotten ones included (found by hash)."""
        with self.engine.connect() as conn:
            value = conn.execute(
                select(subscribers.c.id).where(subscribers.c.email_hash == email_hash(address))
            ).scalar_one_or_none()
        return None if value is None else int(value)

    def is_forgotten(self, subscriber_id: int) -> bool:
        with self.engine.connect() as conn:
            row = conn.execute(select(subscribers.c.email).where(subscribers.c.id == subscriber_id)).first()
        return row is not None and row.email is None

    def record(self, subscriber_id: int) -> SubscriberRecord | None:
        """The subscriber, its subscriptions and its history, oldest event first."""
        with self.engine.connect() as conn:
            row = conn.execute(select(subscribers).where(subscribers.c.id == subscriber_id)).first()
            if row is None:
                return None
            subs = conn.execute(
                select(subscriptions)
                .where(subscriptions.c.subscriber_id == subscriber_id)
                .order_by(subscriptions.c.list_slug)
            ).all()
            events = conn.execute(
                select(subscription_events)
                .where(subscription_events.c.subscriber_id == subscriber_id)
                .order_by(subscription_events.c.at, subscription_events.c.id)
            ).all()
            feedback = conn.execute(
                select(feedback_events, issues.c.list_slug, issues.c.period_key)
                .outerjoin(issues, issues.c.id == feedback_events.c.issue_id)
                .where(feedback_events.c.subscriber_id == subscriber_id)
                .order_by(feedback_events.c.at, feedback_events.c.id)
            ).all()
        return SubscriberRecord(
            id=row.id,
            email=row.email,
            name=row.name,
            language=row.language,
            created=row.created,
            forgotten_at=row.forgotten_at,
            attributes=dict(row.attributes or {}),
            lists=tuple(
                ListStatus(
                    s.list_slug,
                    SubscriptionStatus(s.status),
                    s.consent_at,
                    s.consent_method,
                    s.consent_source,
                    s.updated_at,
                    s.consent_text,
                    s.consent_language,
                    s.confirmed_at,
                    s.confirmed_source,
                )
                for s in subs
            ),
            events=tuple(SubscriptionEvent(e.at, e.list_slug, e.event, e.detail) for e in events),
            feedback=tuple(
                FeedbackRecord(
                    f.at,
                    f.kind,
                    f.status_code,
                    f.diagnostic,
                    f.report_id,
                    f.source,
                    f.list_slug,
                    f.period_key,
                )
                for f in feedback
            ),
        )

    def search(self, text: str, limit: int, offset: int = 0) -> tuple[list[SubscriberMatch], int]:
        """Subscribers whose address or name contains ``text`` (any case), by address; and how many.

        Forgotten subscribers have neither and are never found. ``text`` is matched
        literally (``%`` and ``_`` are not wildcards).
        """
        where: ColumnElement[bool] = subscribers.c.email.is_not(None)
        if text:
            pattern = like_pattern(text.lower())
            where = and_(
                where,
                func.lower(subscribers.c.email).like(pattern, escape="\\")
                | func.lower(subscribers.c.name).like(pattern, escape="\\"),
            )
        with self.engine.connect() as conn:
            total = int(conn.execute(select(func.count()).select_from(subscribers).where(where)).scalar_one())
            rows = conn.execute(
                select(subscribers.c.id, subscribers.c.email, subscribers.c.name, subscribers.c.language)
                .where(where)
                .order_by(subscribers.c.email, subscribers.c.id)
                .limit(limit)
                .offset(offset)
            ).all()
            statuses: dict[int, dict[str, SubscriptionStatus]] = {r.id: {} for r in rows}
            if rows:
                for s in conn.execute(
                    select(subscriptions.c.subscriber_id, subscriptions.c.list_slug, subscriptions.c.status)
                    .where(subscriptions.c.subscriber_id.in_(list(statuses)))
                    .order_by(subscriptions.c.list_slug)
                ):
                    statuses[s.subscriber_id][s.list_slug] = SubscriptionStatus(s.status)
        found = [SubscriberMatch(r.id, r.email, r.name, r.language, statuses[r.id]) for r in rows]
        return found, total

    def deliveries_since(self, subscriber_id: int, since: datetime) -> list[DeliveryRecord]:
        """The subscriber's deliveries last changed at or after ``since``, oldest first."""
        q = (
            select(
                issues.c.list_slug,
                issues.c.period_key,
                issues.c.subject,
                deliveries.c.status,
                deliveries.c.updated_at,
            )
            .join(issues, issues.c.id == deliveries.c.issue_id)
            .where(deliveries.c.subscriber_id == subscriber_id, deliveries.c.updated_at >= since)
            .order_by(deliveries.c.updated_at, deliveries.c.id)
        )
        with self.engine.connect() as conn:
            return [DeliveryRecord(*row) for row in conn.execute(q)]

    def export_rows(self, list_slug: str, statuses: Collection[str] | None = None) -> Iterator[ExportRow]:
        """Rows of a list for CSV export, by id; forgotten addresses have nothing to export."""
        q = (
            select(
                subscribers.c.email,
                subscribers.c.name,
                subscribers.c.language,
                subscribers.c.attributes,
                subscriptions.c.status,
                subscriptions.c.consent_at,
                subscriptions.c.consent_method,
                subscriptions.c.consent_source,
            )
            .join(subscriptions, subscriptions.c.subscriber_id == subscribers.c.id)
            .where(subscriptions.c.list_slug == list_slug, subscribers.c.email.is_not(None))
            .order_by(subscribers.c.id)
        )
        if statuses is not None:
            q = q.where(subscriptions.c.status.in_([str(s) for s in statuses]))
        with self.engine.connect() as conn:
            for r in conn.execute(q):
                yield ExportRow(
                    email=r.email,
                    name=r.name,
                    language=r.language,
                    attributes=dict(r.attributes or {}),
                    status=SubscriptionStatus(r.status),
                    consent_at=r.consent_at,
                    consent_method=r.consent_method,
                    consent_source=r.consent_source,
                )

    # -- bulk import -------------------------------------------------------------

    def import_rows(
        self,
        list_slug: str,
        rows: Sequence[ImportRow],
        consent: Consent,
        default_language: str,
        *,
        progress: Callable[[int, int], None] | None = None,
        batch_size: int = _CHUNK,
        transaction_rows: int = _TRANSACTION_ROWS,
    ) -> BatchOutcome:
        """Apply de-duplicated rows, ``batch_size`` per statement; suppressions win.

        On SQLite, batches are grouped into transactions of about ``transaction_rows``
        rows: one commit per batch would rewrite the random-keyed hash index pages a
        hundred times over, one commit for everything would hold SQLite's write lock for
        the whole file. On PostgreSQL the rows are copied into a temporary table and
        applied set-based in one transaction (:mod:`publisher.store.subscriber_copy`);
        ``progress`` then counts rows as they are copied, the last call once all is written.
        """
        if self._copies:
            return self._import_by_copy(list_slug, rows, consent, default_language, progress, batch_size)
        outcome = BatchOutcome()
        total = len(rows)
        if progress:
            progress(0, total)
        per_transaction = max(batch_size, transaction_rows)
        for start in range(0, total, per_transaction):
            group = rows[start : start + per_transaction]
            with self.engine.begin() as conn:
                for offset in range(0, len(group), batch_size):
                    batch = group[offset : offset + batch_size]
                    outcome.add(self._import_batch(conn, list_slug, batch, consent, default_language))
                    if progress:
                        progress(start + offset + len(batch), total)
        return outcome

    def _import_by_copy(
        self,
        list_slug: str,
        rows: Sequence[ImportRow],
        consent: Consent,
        default_language: str,
        progress: Callable[[int, int], None] | None,
        progress_every: int,
    ) -> BatchOutcome:
        """The PostgreSQL import, run again if an address of the file was signed up meanwhile.

        The plan is made from one snapshot; a sign-up committed between the plan and the
        insert makes the insert fail on the unique address, rolling everything back. A
        second run (the import is idempotent) then sees that sign-up. ``ON CONFLICT DO
        NOTHING`` would instead skip the row while its event and the counts still said
        it was added, and costs about half as much again per inserted row.
        """
        attempt = 1
        while True:
            try:
                with self.engine.begin() as conn:
                    return import_by_copy(
                        conn,
                        list_slug,
                        rows,
                        consent,
                        default_language,
                        new_secrets(len(rows)),
                        progress=progress,
                        progress_every=progress_every,
                    )
            except IntegrityError:
                if attempt == _COPY_ATTEMPTS:
                    raise
                attempt += 1

    def _import_batch(
        self,
        conn: Connection,
        list_slug: str,
        rows: Sequence[ImportRow],
        consent: Consent,
        default_language: str,
    ) -> BatchOutcome:
        stored = self._stored(conn, list_slug, [r.hash for r in rows])
        writes, outcome = plan_batch(rows, stored, list_slug, consent, default_language)
        self._apply(conn, list_slug, consent, writes)
        return outcome

    def _stored(self, conn: Connection, list_slug: str, hashes: list[str]) -> dict[str, StoredSubscriber]:
        """What the store holds for these address hashes, with their status on the list."""
        joined = subscribers.outerjoin(
            subscriptions,
            and_(subscriptions.c.subscriber_id == subscribers.c.id, subscriptions.c.list_slug == list_slug),
        )
        q = (
            select(
                subscribers.c.id,
                subscribers.c.email_hash,
                subscribers.c.email,
                subscribers.c.name,
                subscribers.c.language,
                subscribers.c.attributes,
                subscriptions.c.status,
            )
            .select_from(joined)
            .where(subscribers.c.email_hash.in_(hashes))
        )
        return {
            r.email_hash: StoredSubscriber(
                r.id,
                r.email,
                r.name,
                r.language,
                dict(r.attributes or {}),
                SubscriptionStatus(r.status) if r.status else None,
            )
            for r in conn.execute(q)
        }

    def _apply(self, conn: Connection, list_slug: str, consent: Consent, writes: PlannedWrites) -> None:
        if writes.new_subscribers:
            # ``created`` is one bound value for the whole batch, not one per row.
            insert = subscribers.insert().values(
                created=bindparam("created_at", consent.at, type_=subscribers.c.created.type)
            )
            keys = new_secrets(len(writes.new_subscribers))
            conn.execute(
                insert,
                [
                    {**values, "secret": key}
                    for (_, values), key in zip(writes.new_subscribers, keys, strict=True)
                ],
            )
            by_status: dict[SubscriptionStatus, list[str]] = {}
            for row, _ in writes.new_subscribers:
                by_status.setdefault(row.status, []).append(row.hash)
            for status, hashes in by_status.items():
                _subscribe_new(conn, hashes, list_slug, status, consent)
        if writes.subscriber_updates:
            conn.execute(
                update(subscribers)
                .where(subscribers.c.id == bindparam("sid"))
                .values(
                    name=bindparam("v_name"),
                    language=bindparam("v_language"),
                    attributes=bindparam("v_attributes", type_=subscribers.c.attributes.type),
                ),
                writes.subscriber_updates,
            )
        _write_status_changes(conn, writes)

    # -- single changes ----------------------------------------------------------

    def create(self, email: str, name: str, language: str, attributes: dict[str, str], now: datetime) -> int:
        """Insert a new address with a fresh secret; return its id."""
        with self.engine.begin() as conn:
            return int(
                conn.execute(
                    subscribers.insert().returning(subscribers.c.id),
                    {
                        "email": email,
                        "email_hash": email_hash(email),
                        "name": name,
                        "language": language,
                        "secret": new_secret(),
                        "attributes": attributes,
                        "created": now,
                    },
                ).scalar_one()
            )

    def update_details(
        self,
        subscriber_id: int,
        *,
        email: str | None = None,
        name: str | None = None,
        language: str | None = None,
    ) -> None:
        """Change what is given; restoring an ``email`` also clears ``forgotten_at``."""
        values: dict[str, Any] = {}
        if email is not None:
            values.update(email=email, forgotten_at=None)
        if name is not None:
            values["name"] = name
        if language is not None:
            values["language"] = language
        if values:
            with self.engine.begin() as conn:
                conn.execute(update(subscribers).where(subscribers.c.id == subscriber_id).values(**values))

    def change_status(
        self,
        subscriber_id: int,
        list_slug: str,
        status: SubscriptionStatus,
        *,
        consent: Consent,
        detail: str | None = None,
        lift_suppression: bool = False,
    ) -> bool:
        """Move one subscription to ``status``; return whether anything changed.

        A suppressed subscription only leaves suppression when ``lift_suppression`` is
        true (an explicit admin ``--force`` or the subscriber's own request); otherwise
        nothing changes. ``consent`` is recorded when the new status is confirmed or
        pending, and its time stamps the event either way.
        """
        with self.engine.begin() as conn:
            old = _locked_status(conn, subscriber_id, list_slug)
            if old == status:
                return False
            if old in SUPPRESSED and status not in SUPPRESSED and not lift_suppression:
                return False
            writes = PlannedWrites()
            plan_status(subscriber_id, old, status, list_slug, consent, writes, detail=detail)
            _write_status_changes(conn, writes)
        return True

    def unsubscribe(self, subscriber_id: int, list_slug: str, consent: Consent) -> Unsubscribe:
        """Unsubscribe from one list, in one transaction; idempotent.

        Confirmed or pending becomes unsubscribed. Bounced or complained stays as it is
        (a suppression the admin lifts), and the unsubscribe is written to the history,
        which is what lifting restores from: the address comes back unsubscribed, never
        confirmed. Asked again, nothing more is written (``already``).
        """
        with self.engine.begin() as conn:
            old = _locked_status(conn, subscriber_id, list_slug)
            if old is None:
                return Unsubscribe.NOT_ON_LIST
            if old is SubscriptionStatus.UNSUBSCRIBED:
                return Unsubscribe.ALREADY
            writes = PlannedWrites()
            if old in ADMIN_ONLY:
                if (
                    status_before_suppression(conn, subscriber_id, list_slug)
                    is SubscriptionStatus.UNSUBSCRIBED
                ):
                    return Unsubscribe.ALREADY
                detail = f"{consent.detail} (while {old.value}; lifting that leaves it unsubscribed)"
                writes.events.append(
                    {
                        "subscriber_id": subscriber_id,
                        "list_slug": list_slug,
                        "at": consent.at,
                        "event": SubscriptionStatus.UNSUBSCRIBED.value,
                        "detail": detail,
                    }
                )
                _write_status_changes(conn, writes)
                return Unsubscribe.RECORDED
            plan_status(subscriber_id, old, SubscriptionStatus.UNSUBSCRIBED, list_slug, consent, writes)
            _write_status_changes(conn, writes)
        return Unsubscribe.UNSUBSCRIBED

    def forget(self, subscriber_id: int, now: datetime) -> bool:
        """Erase personal data but keep the hash and suppress every list; False if done before.

        Delivery rows keep their ids and statuses; their SMTP texts, which may quote the
        address, are cleared.
        """
        with self.engine.begin() as conn:
            email = conn.execute(
                select(subscribers.c.email).where(subscribers.c.id == subscriber_id).with_for_update()
            ).scalar_one_or_none()
            if email is None:
                return False
            conn.execute(
                update(subscribers)
                .where(subscribers.c.id == subscriber_id)
                .values(email=None, name="", attributes={}, forgotten_at=now)
            )
            conn.execute(
                update(subscriptions)
                .where(
                    subscriptions.c.subscriber_id == subscriber_id,
                    subscriptions.c.status.not_in([s.value for s in SUPPRESSED]),
                )
                .values(status=SubscriptionStatus.UNSUBSCRIBED.value, updated_at=now)
            )
            conn.execute(
                update(subscriptions)
                .where(subscriptions.c.subscriber_id == subscriber_id)
                .values(consent_source=None)
            )
            conn.execute(
                update(subscription_events)
                .where(subscription_events.c.subscriber_id == subscriber_id)
                .values(detail=None)
            )
            conn.execute(
                subscription_events.insert().values(
                    subscriber_id=subscriber_id, list_slug=None, at=now, event="forgotten", detail=None
                )
            )
            # A bounce's diagnostic often quotes the address ("550 5.1.1 <a@b>: unknown").
            conn.execute(
                update(feedback_events)
                .where(feedback_events.c.subscriber_id == subscriber_id)
                .values(diagnostic="")
            )
            delivery_ids = select(deliveries.c.id).where(deliveries.c.subscriber_id == subscriber_id)
            conn.execute(
                update(deliveries).where(deliveries.c.subscriber_id == subscriber_id).values(last_text=None)
            )
            conn.execute(
                update(delivery_attempts)
                .where(delivery_attempts.c.delivery_id.in_(delivery_ids.scalar_subquery()))
                .values(text=None)
            )
        return True


_UPDATE_SUBSCRIPTION = (
    update(subscriptions)
    .where(
        subscriptions.c.subscriber_id == bindparam("sid"),
        subscriptions.c.list_slug == bindparam("slug"),
    )
    .values(
        status=bindparam("v_status"),
        consent_at=bindparam("v_consent_at", type_=subscriptions.c.consent_at.type),
        consent_method=bindparam("v_consent_method"),
        consent_source=bindparam("v_consent_source"),
        updated_at=bindparam("v_updated_at", type_=subscriptions.c.updated_at.type),
    )
)

_SUPPRESS_SUBSCRIPTION = (
    update(subscriptions)
    .where(
        subscriptions.c.subscriber_id == bindparam("sid"),
        subscriptions.c.list_slug == bindparam("slug"),
    )
    .values(
        status=bindparam("v_status"),
        updated_at=bindparam("v_updated_at", type_=subscriptions.c.updated_at.type),
    )
)


def _subscribe_new(
    conn: Connection, hashes: list[str], list_slug: str, status: SubscriptionStatus, consent: Consent
) -> None:
    """Subscriptions and events for just-inserted addresses, as two INSERT ... SELECT.

    Set-based on purpose: one row of parameters per address would cost more than the
    whole rest of an import.
    """
    gives_consent = status not in SUPPRESSED
    at = literal(consent.at, subscriptions.c.updated_at.type)
    new_ids = select(subscribers.c.id).where(subscribers.c.email_hash.in_(hashes))
    conn.execute(
        subscriptions.insert().from_select(
            [
                "subscriber_id",
                "list_slug",
                "status",
                "consent_at",
                "consent_method",
                "consent_source",
                "updated_at",
            ],
            new_ids.add_columns(
                literal(list_slug),
                literal(status.value),
                at if gives_consent else null(),
                literal(consent.method) if gives_consent else null(),
                literal(consent.source) if gives_consent else null(),
                at,
            ),
        )
    )
    conn.execute(
        subscription_events.insert().from_select(
            ["subscriber_id", "list_slug", "at", "event", "detail"],
            new_ids.add_columns(literal(list_slug), at, literal(status.value), literal(consent.detail)),
        )
    )


def _write_status_changes(conn: Connection, writes: PlannedWrites) -> None:
    """Run the queued subscription inserts, updates and events, one statement each."""
    if writes.new_subscriptions:
        conn.execute(subscriptions.insert(), writes.new_subscriptions)
    if writes.subscription_updates:
        conn.execute(_UPDATE_SUBSCRIPTION, writes.subscription_updates)
    if writes.suppressions:
        conn.execute(_SUPPRESS_SUBSCRIPTION, writes.suppressions)
    if writes.events:
        conn.execute(subscription_events.insert(), writes.events)


def _locked_status(conn: Connection, subscriber_id: int, list_slug: str) -> SubscriptionStatus | None:
    """A subscription's status, its row locked until the transaction ends (None: not on the list)."""
    current = conn.execute(
        select(subscriptions.c.status)
        .where(subscriptions.c.subscriber_id == subscriber_id, subscriptions.c.list_slug == list_slug)
        .with_for_update()
    ).scalar_one_or_none()
    return SubscriptionStatus(current) if current else None
