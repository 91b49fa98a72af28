"""Import planning: what one batch of CSV rows does to the subscribers already stored.

Decisions only, no SQL: given a batch of clean rows and what the store holds for
their addresses, :func:`plan_batch` says which subscribers to insert or update, which
subscriptions and events to write, and counts the outcome. The repository
(:class:`publisher.store.subscribers.SubscriberStore`) reads the stored state and runs
the planned writes as a few set-based statements per batch. Keeping the rules apart
from the statements lets each be read and changed on its own; the rules are:

- a suppressed (unsubscribed, bounced, complained) or forgotten address stays so:
  an import never lifts a suppression;
- a row's empty name or language keeps the stored one, attributes merge (the file wins);
- a suppressed status in the file is recorded, and keeps the consent given before.

The planned writes are lists of statement parameters, built once per batch: one
statement per kind of write, never one round trip per row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from publisher.models import SUPPRESSED, Consent, SubscriptionStatus, email_hash


@dataclass(slots=True)
class ImportRow:
    """One clean, de-duplicated CSV row; ``None`` keeps what the store already has."""

    email: str
    name: str | None = None
    language: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    status: SubscriptionStatus = SubscriptionStatus.CONFIRMED  # or a suppressed status from the file
    hash: str = field(init=False)

    def __post_init__(self) -> None:
        self.hash = email_hash(self.email)


@dataclass(slots=True)
class BatchOutcome:
    """How many rows of a batch were added, changed, left alone or kept suppressed."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    suppressed_kept: int = 0

    def add(self, other: BatchOutcome) -> None:
        self.added += other.added
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.suppressed_kept += other.suppressed_kept


@dataclass(slots=True)
class StoredSubscriber:
    """A stored subscriber and its status on the list being imported (None: not on it).

    Not frozen: a re-import builds one per row, and a frozen init costs more.
    """

    id: int
    email: str | None
    name: str
    language: str
    attributes: dict[str, str]
    status: SubscriptionStatus | None

    @property
    def suppressed(self) -> bool:
        return self.email is None or self.status in SUPPRESSED


@dataclass(slots=True)
class PlannedWrites:
    """The statement parameters one batch (or one status change) will run with.

    ``new_subscribers`` pairs each row with its insert values; the repository adds the
    secrets and subscribes them set-based, grouped by the row's status.
    """

    new_subscribers: list[tuple[ImportRow, dict[str, Any]]] = field(default_factory=list)
    subscriber_updates: list[dict[str, Any]] = field(default_factory=list)
    new_subscriptions: list[dict[str, Any]] = field(default_factory=list)
    subscription_updates: list[dict[str, Any]] = field(default_factory=list)  # with new consent
    suppressions: list[dict[str, Any]] = field(default_factory=list)  # status only, consent kept
    events: list[dict[str, Any]] = field(default_factory=list)


def plan_batch(
    rows: Sequence[ImportRow],
    stored: Mapping[str, StoredSubscriber],
    list_slug: str,
    consent: Consent,
    default_language: str,
) -> tuple[PlannedWrites, BatchOutcome]:
    """The writes and counts of one batch; ``stored`` maps address hashes to what is on file."""
    writes = PlannedWrites()
    outcome = BatchOutcome()
    for row in rows:
        found = stored.get(row.hash)
        if found is None:
            _plan_new(row, default_language, writes, outcome)
        else:
            _plan_existing(row, found, list_slug, consent, writes, outcome)
    return writes, outcome


def _plan_new(row: ImportRow, default_language: str, writes: PlannedWrites, outcome: BatchOutcome) -> None:
    values = {
        "email": row.email,
        "email_hash": row.hash,
        "name": row.name or "",
        "language": row.language or default_language,
        "attributes": row.attributes,
    }
    writes.new_subscribers.append((row, values))
    if row.status in SUPPRESSED:
        outcome.suppressed_kept += 1
    else:
        outcome.added += 1


def _plan_existing(
    row: ImportRow,
    found: StoredSubscriber,
    list_slug: str,
    consent: Consent,
    writes: PlannedWrites,
    outcome: BatchOutcome,
) -> None:
    if found.suppressed:
        outcome.suppressed_kept += 1
        return
    name = row.name or found.name
    language = row.language or found.language
    attributes = {**found.attributes, **row.attributes}
    details_changed = (name, language, attributes) != (found.name, found.language, found.attributes)
    if details_changed:
        writes.subscriber_updates.append(
            {"sid": found.id, "v_name": name, "v_language": language, "v_attributes": attributes}
        )
    if row.status in SUPPRESSED:
        outcome.suppressed_kept += 1
    elif found.status is None:
        outcome.added += 1
    elif found.status is SubscriptionStatus.CONFIRMED:
        if details_changed:
            outcome.updated += 1
        else:
            outcome.unchanged += 1
        return
    else:
        outcome.updated += 1
    plan_status(found.id, found.status, row.status, list_slug, consent, writes)


def plan_status(
    subscriber_id: int,
    old: SubscriptionStatus | None,
    new: SubscriptionStatus,
    list_slug: str,
    consent: Consent,
    writes: PlannedWrites,
    *,
    detail: str | None = None,
) -> None:
    """Queue the subscription insert or update and the event for one status change.

    A move to confirmed or pending records ``consent``; a move to a suppression keeps
    the consent that was given before (it stays true that it was given).
    """
    event = {
        "subscriber_id": subscriber_id,
        "list_slug": list_slug,
        "at": consent.at,
        "event": new.value,
        "detail": detail if detail is not None else consent.detail,
    }
    writes.events.append(event)
    gives_consent = new not in SUPPRESSED
    if old is None:
        writes.new_subscriptions.append(
            {
                "subscriber_id": subscriber_id,
                "list_slug": list_slug,
                "status": new.value,
                "consent_at": consent.at if gives_consent else None,
                "consent_method": consent.method if gives_consent else None,
                "consent_source": consent.source if gives_consent else None,
                "updated_at": consent.at,
            }
        )
        return
    change = {"sid": subscriber_id, "slug": list_slug, "v_status": new.value, "v_updated_at": consent.at}
    if gives_consent:
        change.update(
            v_consent_at=consent.at, v_consent_method=consent.method, v_consent_source=consent.source
        )
        writes.subscription_updates.append(change)
    else:
        writes.suppressions.append(change)
