"""Web sign-ups: pending subscriptions with their consent record, abuse-limit counters, site secrets.

A sign-up from the web form makes a subscription ``pending`` and records the consent
on the subscription row itself (``consent_at``, ``consent_method`` "web",
``consent_source`` the client address, ``consent_text`` the exact words the form
showed, ``consent_language``); the confirmation adds ``confirmed_at`` and
``confirmed_source``. Suppressions stay sticky: a bounced or complained subscription
is never made pending here, and an unsubscribed one that is made pending remembers
it in ``pending_from``, so an expired sign-up gives the suppression back instead of
deleting it (an import must not then resubscribe the address).

The abuse limits count rows of ``signup_attempts`` in the store, so every process
serving the same store agrees; keys are sha256 digests, never addresses or IPs.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, and_, delete, exists, func, select, update
from sqlalchemy.exc import IntegrityError

from publisher.models import Consent, SubscriptionStatus
from publisher.store.tables import (
    signup_attempts,
    site_secrets,
    subscribers,
    subscription_events,
    subscriptions,
)

#: Statuses a web sign-up may (re)start as ``pending``: none yet, left before, or pending
#: already (its time and consent are renewed, so the new link is the one that works).
JOINABLE = frozenset({None, SubscriptionStatus.UNSUBSCRIBED, SubscriptionStatus.PENDING})


@dataclass(slots=True, frozen=True)
class PendingSignup:
    """One unconfirmed web sign-up of one address to one list, as ``subscribers pending`` shows it."""

    email: str
    list_slug: str
    since: datetime
    method: str
    source: str
    language: str
    consent_text: str


def attempt_key(value: str) -> str:
    """What ``signup_attempts`` stores for an address or a client IP: its sha256, not the value."""
    return hashlib.sha256(value.lower().encode("utf-8")).hexdigest()


class SignupStore:
    """Pending web sign-ups, their consent and confirmation, the abuse counters and site secrets."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- server secrets --------------------------------------------------------

    def site_secret(self, name: str) -> str:
        """The store's secret ``name``, created at first use; every process gets the same one."""
        with self.engine.connect() as conn:
            value = conn.execute(select(site_secrets.c.value).where(site_secrets.c.name == name)).scalar()
        if value is not None:
            return str(value)
        try:
            with self.engine.begin() as conn:
                conn.execute(site_secrets.insert().values(name=name, value=secrets.token_hex(32)))
        except IntegrityError:
            pass  # another process created it first: use theirs
        with self.engine.connect() as conn:
            return str(
                conn.execute(select(site_secrets.c.value).where(site_secrets.c.name == name)).scalar_one()
            )

    # -- abuse limits ------------------------------------------------------------

    def count_attempts(self, kind: str, key: str, since: datetime) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(
                        signup_attempts.c.kind == kind,
                        signup_attempts.c.key == key,
                        signup_attempts.c.at > since,
                    )
                ).scalar_one()
            )

    def record_attempt(self, kind: str, key: str, at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(signup_attempts.insert().values(kind=kind, key=key, at=at))

    # -- sign-up and confirmation ----------------------------------------------------

    def start_pending(
        self,
        subscriber_id: int,
        lists: Sequence[str],
        consent: Consent,
        text: str,
        language: str,
        prepare: Callable[[list[str]], None] | None = None,
    ) -> list[str]:
        """Make the subscriber pending on each of ``lists`` it may join; return those lists.

        Lists it is confirmed, bounced or complained on are left as they are. ``prepare``
        is called with those lists before the commit (the sign-up renders its
        confirmation mail there): if it raises, nothing is stored, so a broken template
        cannot leave an address pending with no mail sent.
        """
        started: list[str] = []
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(subscriptions.c.list_slug, subscriptions.c.status, subscriptions.c.pending_from)
                .where(subscriptions.c.subscriber_id == subscriber_id)
                .with_for_update()
            ).all()
            current = {r.list_slug: SubscriptionStatus(r.status) for r in rows}
            before = {r.list_slug: r.pending_from for r in rows}
            for slug in lists:
                old = current.get(slug)
                if old not in JOINABLE:
                    continue
                pending_from = before[slug] if old is SubscriptionStatus.PENDING else old
                values = {
                    "status": SubscriptionStatus.PENDING.value,
                    "consent_at": consent.at,
                    "consent_method": consent.method,
                    "consent_source": consent.source,
                    "consent_text": text,
                    "consent_language": language,
                    "confirmed_at": None,
                    "confirmed_source": None,
                    "pending_from": pending_from.value
                    if isinstance(pending_from, SubscriptionStatus)
                    else pending_from,
                    "updated_at": consent.at,
                }
                if old is None:
                    conn.execute(
                        subscriptions.insert().values(subscriber_id=subscriber_id, list_slug=slug, **values)
                    )
                else:
                    conn.execute(
                        update(subscriptions)
                        .where(
                            subscriptions.c.subscriber_id == subscriber_id, subscriptions.c.list_slug == slug
                        )
                        .values(**values)
                    )
                conn.execute(
                    subscription_events.insert().values(
                        subscriber_id=subscriber_id,
                        list_slug=slug,
                        at=consent.at,
                        event=SubscriptionStatus.PENDING.value,
                        detail=consent.detail,
                    )
                )
                started.append(slug)
            if started and prepare is not None:
                prepare(started)
        return started

    def confirm(
        self, subscriber_id: int, lists: Sequence[str], requested: datetime, *, at: datetime, source: str
    ) -> list[str]:
        """Confirm the sign-up of ``requested`` on ``lists``; return the lists confirmed now.

        Only subscriptions still pending from that very sign-up (same ``consent_at``, to
        the second) change: a used link, or one of an older sign-up, confirms nothing.
        """
        confirmed: list[str] = []
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(subscriptions.c.list_slug, subscriptions.c.consent_at)
                .where(
                    subscriptions.c.subscriber_id == subscriber_id,
                    subscriptions.c.list_slug.in_(list(lists)),
                    subscriptions.c.status == SubscriptionStatus.PENDING.value,
                )
                .with_for_update()
            ).all()
            for slug, consent_at in rows:
                if consent_at is None or int(consent_at.timestamp()) != int(requested.timestamp()):
                    continue
                conn.execute(
                    update(subscriptions)
                    .where(subscriptions.c.subscriber_id == subscriber_id, subscriptions.c.list_slug == slug)
                    .values(
                        status=SubscriptionStatus.CONFIRMED.value,
                        confirmed_at=at,
                        confirmed_source=source,
                        pending_from=None,
                        updated_at=at,
                    )
                )
                conn.execute(
                    subscription_events.insert().values(
                        subscriber_id=subscriber_id,
                        list_slug=slug,
                        at=at,
                        event=SubscriptionStatus.CONFIRMED.value,
                        detail=f"web confirmation: {source}" if source else "web confirmation",
                    )
                )
                confirmed.append(slug)
        return sorted(confirmed)

    def pending(
        self, list_slug: str | None = None, *, subscriber_id: int | None = None
    ) -> list[PendingSignup]:
        """Pending subscriptions (of one list, one subscriber or all), oldest first; not forgotten ones."""
        q = (
            select(
                subscribers.c.email,
                subscriptions.c.list_slug,
                subscriptions.c.consent_at,
                subscriptions.c.updated_at,
                subscriptions.c.consent_method,
                subscriptions.c.consent_source,
                subscriptions.c.consent_language,
                subscriptions.c.consent_text,
                subscribers.c.language,
            )
            .join(subscriptions, subscriptions.c.subscriber_id == subscribers.c.id)
            .where(
                subscriptions.c.status == SubscriptionStatus.PENDING.value,
                subscribers.c.email.is_not(None),
            )
            .order_by(subscriptions.c.consent_at, subscribers.c.id, subscriptions.c.list_slug)
        )
        if list_slug is not None:
            q = q.where(subscriptions.c.list_slug == list_slug)
        if subscriber_id is not None:
            q = q.where(subscribers.c.id == subscriber_id)
        with self.engine.connect() as conn:
            return [
                PendingSignup(
                    email=r.email,
                    list_slug=r.list_slug,
                    since=r.consent_at or r.updated_at,
                    method=r.consent_method or "",
                    source=r.consent_source or "",
                    language=r.consent_language or r.language,
                    consent_text=r.consent_text or "",
                )
                for r in conn.execute(q)
            ]

    def purge(self, pending_before: datetime, attempts_before: datetime) -> int:
        """Drop sign-ups pending since before ``pending_before``; return how many.

        A sign-up that replaced an unsubscribe goes back to ``unsubscribed``; a new one
        is deleted, and so is its subscriber when that leaves it on no list at all.
        Confirmed and suppressed subscriptions are never touched. Abuse-limit rows older
        than ``attempts_before`` go too.
        """
        stale = and_(
            subscriptions.c.status == SubscriptionStatus.PENDING.value,
            subscriptions.c.consent_method == "web",
            subscriptions.c.consent_at < pending_before,
        )
        with self.engine.begin() as conn:
            restored = conn.execute(
                update(subscriptions)
                .where(stale, subscriptions.c.pending_from.is_not(None))
                .values(status=subscriptions.c.pending_from, pending_from=None, updated_at=pending_before)
            ).rowcount
            owners = select(subscriptions.c.subscriber_id).where(stale).scalar_subquery()
            candidates = [
                int(i)
                for i in conn.execute(select(subscribers.c.id).where(subscribers.c.id.in_(owners))).scalars()
            ]
            deleted = conn.execute(delete(subscriptions).where(stale)).rowcount
            if candidates:
                on_a_list = exists().where(subscriptions.c.subscriber_id == subscribers.c.id)
                conn.execute(
                    delete(subscription_events).where(
                        subscription_events.c.subscriber_id.in_(
                            select(subscribers.c.id).where(subscribers.c.id.in_(candidates), ~on_a_list)
                        )
                    )
                )
                conn.execute(delete(subscribers).where(subscribers.c.id.in_(candidates), ~on_a_list))
            conn.execute(delete(signup_attempts).where(signup_attempts.c.at < attempts_before))
        return int(restored or 0) + int(deleted or 0)
