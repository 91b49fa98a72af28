"""One finding of a report -> store changes, trusted only when it names a real delivery.

What makes a report trustworthy is not what it says but how it names the delivery:

- a VERP token (``bounces+TOKEN@``, publisher.bounces.verp) must verify with the
  secret of the subscriber it names, for a delivery of the issue it names, sent at most
  :data:`TOKEN_LIFETIME` ago (reports come within days; an old token seen in a leaked
  mail should not act for ever);
- a complaint (ARF) may name the original by the Message-ID we gave it, which is
  random per message and stored with the delivery;
- an authenticated webhook (its signature or shared secret checked by its front) names
  the address, which must be one we sent to.

Anything else changes nobody (``unmatched``), with a log line saying why. What a
trusted finding does: a permanent failure marks the delivery bounced and the address
bounced on every list; a temporary one is counted, and ``[bounces] soft_limit`` of them
within ``soft_window`` make it bounced; a complaint makes it complained on every list.
All of it in one store transaction, idempotent by report id (publisher.store.feedback).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from publisher.bounces.verp import read_verp_token, verify_verp_token
from publisher.config import BouncesConfig, Settings
from publisher.errors import SubscriberError, TokenError
from publisher.messages import clean_header_text
from publisher.models import (
    Clock,
    DeliveryStatus,
    FeedbackEvent,
    FeedbackKind,
    FeedbackOutcome,
    SubscriptionStatus,
)
from publisher.store import Store
from publisher.store.feedback import DeliveryRef, FeedbackWrite
from publisher.subscriptions import normalise_address

log = logging.getLogger("publisher.bounces")

#: How long after an issue is sent its return-path tokens are honoured.
TOKEN_LIFETIME = timedelta(days=90)
#: Deliveries a report can be about: the message went out (or may have).
_MAILED = frozenset(
    {
        DeliveryStatus.SENT,
        DeliveryStatus.BOUNCED,
        DeliveryStatus.UNKNOWN,
        DeliveryStatus.DEFERRED,
        DeliveryStatus.FAILED,
    }
)


def apply_feedback(settings: Settings, store: Store, clock: Clock, event: FeedbackEvent) -> FeedbackOutcome:
    """Record ``event`` and apply what its kind says, or change nothing (see the module)."""
    now = clock()
    # The report's own words (its Message-ID, a remote server's diagnostic) are stored,
    # logged and printed by `subscribers show`: one line, no control or bidi characters,
    # so a hostile relay cannot split a log line or send escape codes to a terminal.
    report_id = clean_header_text(event.report_id)[:255]
    ref, why = _delivery_named(store, event, now)
    if ref is None:
        log.warning("bounces: report %s (%s) changes nobody: %s", report_id, event.source, why)
        return FeedbackOutcome.UNMATCHED
    config = settings.bounces or BouncesConfig()
    write = FeedbackWrite(
        subscriber_id=ref.subscriber_id,
        kind=event.kind,
        report_id=report_id,
        source=event.source,
        at=now,
        status_code=event.status_code,
        diagnostic=clean_header_text(event.diagnostic)[:2000],
        delivery_id=ref.delivery_id,
        issue_id=ref.issue_id,
        suppress={
            FeedbackKind.HARD_BOUNCE: SubscriptionStatus.BOUNCED,
            FeedbackKind.COMPLAINT: SubscriptionStatus.COMPLAINED,
        }.get(event.kind),
        mark_bounced=event.kind is FeedbackKind.HARD_BOUNCE,
        soft_limit=config.soft_limit,
        soft_since=now - config.soft_window,
    )
    applied = store.feedback.apply(write)
    if not applied.recorded:
        log.info("bounces: report %s was applied before; nothing changed", report_id)
        return FeedbackOutcome.DUPLICATE
    lists = ", ".join(applied.suppressed_lists) or "no list changed"
    log.info(
        "bounces: %s %s for subscriber %d (issue %d, list %s) from %s: %s",
        event.kind.value, event.status_code or "", ref.subscriber_id, ref.issue_id, ref.list_slug,
        event.source, lists,
    )  # fmt: skip
    return FeedbackOutcome.APPLIED


def _delivery_named(store: Store, event: FeedbackEvent, now: datetime) -> tuple[DeliveryRef | None, str]:
    """The delivery the event names in a way we trust, or None and the reason."""
    ref: DeliveryRef | None
    if event.delivery_token:
        try:
            named = read_verp_token(event.delivery_token)
        except TokenError as e:
            return None, f"{e}"
        ref = store.feedback.delivery(named.issue_id, named.subscriber_id)
        if ref is None:
            return None, "its return-path token names no delivery we made"
        try:
            verify_verp_token(event.delivery_token, ref.secret)
        except TokenError as e:
            return None, f"{e} (forged or altered)"
    elif event.original_message_id:
        ref = store.feedback.delivery_by_message_id(event.original_message_id)
        if ref is None:
            return None, "the original's Message-ID is not one we sent"
    elif event.address and event.source.startswith("webhook:"):
        ref = store.feedback.latest_delivery_to(event.address)
        if ref is None:
            return None, "the address is not one we sent to"
    else:
        return None, "it carries no return-path token and no Message-ID of ours"
    if ref.status not in _MAILED:
        return None, f"the delivery it names was never sent (it is {ref.status.value})"
    if now - ref.issue_created > TOKEN_LIFETIME:
        return None, f"the issue it names is older than {TOKEN_LIFETIME.days} days (expired)"
    if ref.email is None:
        return None, "the subscriber it names was forgotten"
    return ref, ""


# -- by hand -------------------------------------------------------------------------------


def suppress_address(
    store: Store, clock: Clock, address: str, status: SubscriptionStatus, note: str
) -> tuple[str, ...]:
    """``subscribers suppress``: bounced or complained on every list, recorded as a report.

    Returns the lists that changed. Works for an address we never mailed, so it is
    not a report to verify: the admin is the source (``cli``).
    """
    if status not in (SubscriptionStatus.BOUNCED, SubscriptionStatus.COMPLAINED):
        raise SubscriberError(address, "--reason must be 'bounced' or 'complained'")
    subscriber_id = _find(store, address)
    kind = FeedbackKind.HARD_BOUNCE if status is SubscriptionStatus.BOUNCED else FeedbackKind.COMPLAINT
    applied = store.feedback.apply(
        FeedbackWrite(
            subscriber_id=subscriber_id,
            kind=kind,
            report_id=f"cli:{uuid.uuid4()}",
            source="cli",
            at=clock(),
            diagnostic=note,
            suppress=status,
        )
    )
    return applied.suppressed_lists


def unsuppress_address(store: Store, clock: Clock, address: str, note: str) -> dict[str, SubscriptionStatus]:
    """``subscribers unsuppress``: lift bounced and complained; the lists and their status now."""
    return store.feedback.lift(_find(store, address), note, clock())


def _find(store: Store, address: str) -> int:
    clean = normalise_address(address)
    subscriber_id = store.subscribers.find_id(clean)
    if subscriber_id is None:
        raise SubscriberError(clean, "no such subscriber; check the address with `subscribers show`")
    return subscriber_id
