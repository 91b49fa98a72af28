"""Web sign-up with double opt-in: the form's rules, the confirmation mail and link, the purge.

The flow: ``GET /subscribe`` shows a form carrying a CSRF token; ``POST /subscribe``
(:func:`sign_up`) makes the address ``pending`` on the chosen public lists, with a
consent record, and mails one confirmation link; ``POST /confirm/{token}``
(:func:`confirm`) makes it ``confirmed``. Whatever the address's state, the POST
answers the same page, so the form cannot be used to learn who subscribes:

- new, or unsubscribed from a list: pending there, one confirmation mail;
- already pending: a new mail only once ``resend_after`` has passed since the last;
- already confirmed on every chosen list: nothing is sent. A "you are already
  subscribed" mail would let anyone make us mail any subscriber at will; the
  subscriber already has the preferences link in every digest;
- bounced, complained or erased ("forget me"): nothing is stored or sent; only an
  admin lifts such a suppression (``subscribers add --force``).

CSRF tokens are stateless HMACs over the form's name and issue time, keyed with a
server secret the store keeps (``site_secrets``): nothing is stored per visitor, no
cookie is set, and every process serving the same store accepts the others' tokens.
The confirmation token is signed with the subscriber's own secret like the digest
links (:mod:`publisher.tokens`), bound to the address, the lists and the sign-up's
time, and expires after ``[subscriptions] confirm_within``.

Unconfirmed sign-ups are purged by :func:`purge_stale`, which every ingest run calls.
"""

from __future__ import annotations

import dataclasses
import email.policy
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from enum import StrEnum

from publisher.config import ListConfig, Settings
from publisher.errors import SubscriberError, TokenError
from publisher.i18n import format_day, normalise_language, translate
from publisher.mailer import OutgoingMessage, SendResult, make_transport
from publisher.messages import check_address, clean_header_text, display_name
from publisher.models import SUPPRESSED, Consent, SubscriptionStatus
from publisher.signing import DkimSigner
from publisher.store import Store
from publisher.store.signups import PendingSignup, attempt_key
from publisher.subscriptions import check_name, normalise_address
from publisher.templating import make_environment, render_template, translator
from publisher.tokens import (
    make_confirm_token,
    make_form_token,
    make_token,
    read_confirm_token,
    verify_confirm_token,
    verify_form_token,
)

__all__ = ["ConfirmLink", "PendingSignup", "SignupOutcome", "SignupResult"]

#: How long a shown form can be sent back: a visitor may leave it open for a while.
FORM_MAX_AGE = timedelta(hours=24)
CONFIRM_TEXT_TEMPLATE = "email/confirm.txt.j2"
CONFIRM_HTML_TEMPLATE = "email/confirm.html.j2"
_HOUR = timedelta(hours=1)


class SignupOutcome(StrEnum):
    """What a sign-up POST did; the visitor sees the same page for every one but ``limited``."""

    MAILED = "mailed"  # pending, confirmation mail sent
    QUIET = "quiet"  # nothing new to confirm, or a mail was sent within resend_after
    SUPPRESSED = "suppressed"  # bounced, complained or erased: nothing stored or sent
    LIMITED = "limited"  # over per_ip_per_hour: nothing stored or sent (429)


@dataclass(frozen=True, slots=True)
class SignupResult:
    """What a sign-up did; ``mail`` is the confirmation to send (:func:`send_mail`), if any.

    The mail is returned, not sent, so the web front can answer first and send right
    after: a reply that waited for the relay would take longer for a new address than
    for a subscribed one, and the timing would tell who subscribes.
    """

    outcome: SignupOutcome
    lists: tuple[str, ...] = ()  # lists made pending
    mail: OutgoingMessage | None = None


class LinkState(StrEnum):
    READY = "ready"
    USED = "used"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class ConfirmLink:
    """What a well-signed confirmation link is for, and whether it can still be used."""

    subscriber_id: int
    email: str
    lists: tuple[str, ...]
    language: str
    state: LinkState
    preferences_token: str


def public_lists(settings: Settings) -> list[ListConfig]:
    """The lists the web offers and archives; private ones are never shown, archived or joinable."""
    return [lst for lst in settings.lists if lst.public]


def consent_text(settings: Settings, language: str) -> str:
    """The exact consent sentence the form shows in ``language``; it is stored with the sign-up."""
    return translate("signup_consent", language, site=settings.site.title)


# -- CSRF --------------------------------------------------------------------------------


def form_token(store: Store, form: str, now: datetime) -> str:
    return make_form_token(form, int(now.timestamp()), store.signups.site_secret("csrf"))


def check_form_token(store: Store, form: str, token: str, now: datetime) -> None:
    """Raise TokenError unless ``token`` is this store's for ``form``, issued within a day."""
    verify_form_token(
        token,
        form,
        store.signups.site_secret("csrf"),
        now=int(now.timestamp()),
        max_age=int(FORM_MAX_AGE.total_seconds()),
    )


# -- sign-up -------------------------------------------------------------------------------


def check_signup(settings: Settings, email: str, name: str, lists: list[str]) -> tuple[str, str, list[str]]:
    """The clean address, name and public lists of a form; SubscriberError names the field at fault."""
    address = normalise_address(email, where="email")
    clean_name = check_name(name, where="name")
    offered = [lst.slug for lst in public_lists(settings)]
    chosen = [slug for slug in offered if slug in set(lists)]  # config order, private ones dropped
    if not chosen:
        raise SubscriberError("list", "no public list chosen")
    return address, clean_name, chosen


def over_ip_limit(settings: Settings, store: Store, now: datetime, client: str) -> bool:
    """Whether ``client`` has had its ``[subscriptions] per_ip_per_hour`` sign-ups this hour."""
    used = store.signups.count_attempts("ip", attempt_key(client), now - _HOUR)
    return used >= settings.subscriptions.per_ip_per_hour


def sign_up(
    settings: Settings,
    store: Store,
    now: datetime,
    *,
    email: str,
    name: str,
    language: str,
    lists: list[str],
    client: str,
) -> SignupResult:
    """Apply one sign-up POST (the form already checked by :func:`check_signup`)."""
    address, clean_name, chosen = check_signup(settings, email, name, lists)
    language = normalise_language(language, settings.site.language)
    limits = settings.subscriptions
    if over_ip_limit(settings, store, now, client):
        return SignupResult(SignupOutcome.LIMITED)
    store.signups.record_attempt("ip", attempt_key(client), now)
    subscribers = store.subscribers
    subscriber_id = subscribers.find_id(address)
    if subscriber_id is None:
        subscriber_id = subscribers.create(address, clean_name, language, {}, now)
    elif subscribers.is_forgotten(subscriber_id) or any(
        status in SUPPRESSED - {SubscriptionStatus.UNSUBSCRIBED}
        for status in subscribers.statuses(subscriber_id).values()
    ):
        return SignupResult(SignupOutcome.SUPPRESSED)
    if all(subscribers.statuses(subscriber_id).get(slug) is SubscriptionStatus.CONFIRMED for slug in chosen):
        return SignupResult(SignupOutcome.QUIET)
    mail_key = attempt_key(address)
    if store.signups.count_attempts("mail", mail_key, now - limits.resend_after) > 0:
        return SignupResult(SignupOutcome.QUIET)  # the earlier link still works
    # Whole seconds: the link carries the sign-up's time and must match it exactly.
    consent = Consent(at=now.replace(microsecond=0), method="web", source=client)
    text = consent_text(settings, language)
    secret = subscribers.secret(subscriber_id) or ""
    mail: list[bytes] = []

    def render(started: list[str]) -> None:
        token = make_confirm_token(subscriber_id, started, int(consent.at.timestamp()), address, secret)
        mail.append(confirmation_mail(settings, started, address, clean_name, language, token, consent.at))

    # The mail is rendered before the pending rows commit: a broken template stores nothing.
    started = store.signups.start_pending(subscriber_id, chosen, consent, text, language, prepare=render)
    if not started:
        return SignupResult(SignupOutcome.QUIET)
    store.signups.record_attempt("mail", mail_key, now)
    data = mail[0]
    sender = settings.list_config(started[0]).sender_address
    return SignupResult(SignupOutcome.MAILED, tuple(started), OutgoingMessage(0, sender, address, data))


async def send_mail(settings: Settings, message: OutgoingMessage) -> SendResult | None:
    """Send one message at once through the configured transport, outside the digest queue."""
    results: list[SendResult] = []

    async def keep(result: SendResult) -> None:
        results.append(result)

    transport = make_transport(settings)
    try:
        await transport.send([message], keep)
    finally:
        await transport.close()
    return results[0] if results else None


def confirmation_mail(
    settings: Settings,
    lists: list[str],
    address: str,
    name: str,
    language: str,
    token: str,
    requested: datetime,
) -> bytes:
    """The confirmation message: the first list's sender, both parts from templates, DKIM-signed when set.

    ``Auto-Submitted: auto-generated`` keeps auto-responders quiet; there is no
    ``List-Unsubscribe``: the address is on no list until it confirms.
    """
    first = settings.list_config(lists[0])
    names = ", ".join(settings.list_config(slug).name for slug in lists)
    expires = requested + settings.subscriptions.confirm_within
    context = {
        "site": settings.site,
        "lists": [settings.list_config(slug) for slug in lists],
        "list_names": names,
        "confirm_url": f"{settings.site.base_url}/confirm/{token}",
        "expires": format_day(expires, language, tz=settings.site.tz),
        "language": language,
        "name": name,
        "t": translator(language),
    }
    env = make_environment(settings)
    text = render_template(env, CONFIRM_TEXT_TEMPLATE, context)
    html = render_template(env, CONFIRM_HTML_TEMPLATE, context)
    sender_name, sender_address = parseaddr(first.sender)
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = Address(display_name(sender_name), addr_spec=check_address(sender_address))
    message["To"] = Address(display_name(name), addr_spec=check_address(address))
    message["Subject"] = clean_header_text(translate("confirm_subject", language, lists=names))
    message["Date"] = format_datetime(requested)
    message["Message-ID"] = make_msgid("confirm", domain=first.sender_domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    data = message.as_bytes()
    return DkimSigner(settings.dkim).sign(data) if settings.dkim is not None else data


# -- confirmation -------------------------------------------------------------------------------


def confirm_link(settings: Settings, store: Store, token: str, now: datetime) -> ConfirmLink:
    """What ``token`` confirms; TokenError when it is forged, altered or of nobody we know."""
    subscriber_id, issued, lists = read_confirm_token(token)
    subscriber = store.subscribers.get(subscriber_id)
    if subscriber is None or not subscriber.email or store.subscribers.is_forgotten(subscriber_id):
        raise TokenError("no such subscriber")
    verify_confirm_token(token, subscriber.email, subscriber.secret)
    requested = datetime.fromtimestamp(issued, tz=now.tzinfo)
    pending = {p.list_slug: p for p in store.signups.pending(subscriber_id=subscriber_id)}
    waiting = [slug for slug in lists if slug in pending and int(pending[slug].since.timestamp()) == issued]
    if not waiting:
        state = LinkState.USED
    elif now > requested + settings.subscriptions.confirm_within:
        state = LinkState.EXPIRED
    else:
        state = LinkState.READY
    language = pending[waiting[0]].language if waiting else subscriber.language
    return ConfirmLink(
        subscriber_id,
        subscriber.email,
        tuple(lists),
        normalise_language(language, settings.site.language),
        state,
        make_token(subscriber_id, lists[0], "preferences", subscriber.secret),
    )


def confirm(settings: Settings, store: Store, token: str, now: datetime, *, source: str) -> ConfirmLink:
    """Confirm the sign-up of ``token`` if it is ready; the link as it was before (its state says)."""
    link = confirm_link(settings, store, token, now)
    if link.state is LinkState.READY:
        _, issued, _ = read_confirm_token(token)
        requested = datetime.fromtimestamp(issued, tz=now.tzinfo)
        if not store.signups.confirm(link.subscriber_id, list(link.lists), requested, at=now, source=source):
            return dataclasses.replace(link, state=LinkState.USED)  # a concurrent POST was first
        store.subscribers.update_details(link.subscriber_id, language=link.language)
    return link


def confirm_by_admin(settings: Settings, store: Store, now: datetime, address: str, list_slug: str) -> bool:
    """``subscribers confirm``: a pending sign-up confirmed by hand (consent "admin").

    False when the address is confirmed already; an address that is not pending (or
    confirmed) on the list is refused: ``subscribers add`` subscribes anew.
    """
    settings.list_config(list_slug)
    clean = normalise_address(address)
    subscriber_id = store.subscribers.find_id(clean)
    status = None if subscriber_id is None else store.subscribers.statuses(subscriber_id).get(list_slug)
    if subscriber_id is None or status not in (SubscriptionStatus.PENDING, SubscriptionStatus.CONFIRMED):
        state = "not on the list" if status is None else str(status)
        raise SubscriberError(clean, f"is {state} on {list_slug!r}, not pending; use 'subscribers add'")
    return store.subscribers.change_status(
        subscriber_id, list_slug, SubscriptionStatus.CONFIRMED, consent=Consent(at=now, method="admin")
    )


def purge_stale(settings: Settings, store: Store, now: datetime) -> int:
    """Delete sign-ups pending for longer than ``confirm_within``; return how many were dropped."""
    limits = settings.subscriptions
    return store.signups.purge(now - limits.confirm_within, now - max(_HOUR, limits.resend_after))
