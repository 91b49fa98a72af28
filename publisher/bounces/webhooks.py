"""Bounces and complaints that providers post: ``POST /webhooks/bounces/{provider}``.

A provider that relays our mail (Amazon SES, or any service that can post JSON) learns
of bounces and complaints before, or instead of, a report arriving by mail. A webhook is
as dangerous as it is useful: whoever can post one can take any address we mailed off
every list. So nothing is applied before the post is authenticated, and everything
else is refused with the change set empty:

``ses``
    Amazon SES notifications delivered by Amazon SNS. The SNS message signature is
    verified (SignatureVersion 1, SHA1withRSA, and 2, SHA256withRSA, over the
    string-to-sign AWS documents for each message type) with the certificate at
    ``SigningCertURL``, which must be an ``https://sns.<region>.amazonaws.com/...pem``
    URL; it is fetched with a deadline and a size cap (``sources/http.fetch``) and kept
    (a few, by URL). A valid signature only proves that *some* SNS topic sent it, and
    anyone can subscribe our URL to a topic of their own, so the message's ``TopicArn``
    must also be one of ``[bounces] ses_topic_arns`` (empty: every post is refused).
    A ``SubscriptionConfirmation`` of such a topic is confirmed by fetching its
    ``SubscribeURL`` (same host rule) after the signature checked out.
``generic``
    ``{"email", "type": "bounce"|"complaint", "permanent": true|false, "reason", "id"}``
    with ``Authorization: Bearer SECRET``, where SECRET is the value of the environment
    variable ``[bounces] webhook_secret_env`` names, compared in constant time. No
    variable configured, or an empty one: every post is refused.

Each finding becomes a :class:`FeedbackEvent` with ``address`` set (the post is
authenticated, so the address is trusted) and goes through
:func:`publisher.bounces.apply.apply_feedback`, like a report read from the mailbox:
an address we never mailed changes nothing (``unmatched``), and the event's
``report_id`` makes a repeated notification change nothing (``duplicate``). The id is
SES's ``feedbackId`` (or the SNS ``MessageId``) with the recipient, or the generic
post's ``id``; a generic post without one is identified by its bytes, so an identical
post is one notification.

Answers (see :attr:`WebhookResult.status`): 200 when the post was authenticated and
understood, whatever it changed (a provider retries anything else); 400 malformed;
401 unauthenticated (bad or missing signature or secret, unknown topic); 404 unknown
provider; 503 when the signing certificate could not be fetched (SNS retries later).
The web front answers 413 itself for a body over its cap, unread.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from publisher.bounces.apply import apply_feedback
from publisher.config import Settings
from publisher.errors import ReportError, SourceError, SubscriberError
from publisher.models import Clock, FeedbackEvent, FeedbackKind, FeedbackOutcome, SourceState
from publisher.sources.http import Limits, fetch
from publisher.store import Store
from publisher.subscriptions import normalise_address

if TYPE_CHECKING:  # loaded when a certificate is read: SES sites only, not every start-up
    from cryptography import x509

log = logging.getLogger("publisher.bounces")

#: Where SNS certificates and confirmation URLs may be fetched from (AWS SDKs use the same rule).
SNS_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
#: One fetch from SNS: a certificate is about 2 KB, a confirmation answer under 1 KB.
SNS_FETCH_LIMITS = Limits(timeout=10.0, max_bytes=64 * 1024)
#: Certificates kept by URL (SNS signs with one certificate per region for months).
CERTIFICATE_CACHE_SIZE = 16
#: The longest generic ``id`` accepted (it becomes part of the stored report id).
MAX_ID_LENGTH = 200

Fetch = Callable[[str], bytes]


class Refusal(StrEnum):
    """Why a post changed nothing; each has its HTTP status (:data:`REFUSAL_STATUS`)."""

    MALFORMED = "malformed"
    UNAUTHENTICATED = "unauthenticated"
    UNKNOWN_PROVIDER = "unknown-provider"
    UNAVAILABLE = "unavailable"


REFUSAL_STATUS = {
    Refusal.MALFORMED: 400,
    Refusal.UNAUTHENTICATED: 401,
    Refusal.UNKNOWN_PROVIDER: 404,
    Refusal.UNAVAILABLE: 503,
}


class WebhookRefused(ReportError):
    """A post that must change nothing; ``detail`` is logged, never shown when unauthenticated."""

    def __init__(self, refusal: Refusal, detail: str) -> None:
        self.refusal = refusal
        self.detail = detail
        super().__init__(detail)


@dataclass(frozen=True, slots=True)
class WebhookResult:
    """What one post did: refused (and why), or the outcome of each finding it carried."""

    provider: str
    refusal: Refusal | None = None
    detail: str = ""
    outcomes: tuple[FeedbackOutcome, ...] = ()
    subscription_confirmed: bool = False

    @property
    def status(self) -> int:
        return 200 if self.refusal is None else REFUSAL_STATUS[self.refusal]

    def as_json(self) -> dict[str, object]:
        """The answer's body. An unauthenticated poster learns nothing but that."""
        if self.refusal is Refusal.UNAUTHENTICATED:
            return {"ok": False, "error": "unauthenticated"}
        if self.refusal is not None:
            return {"ok": False, "error": self.refusal.value, "detail": self.detail}
        return {
            "ok": True,
            "outcomes": [o.value for o in self.outcomes],
            "subscription_confirmed": self.subscription_confirmed,
        }


def handle_webhook(
    settings: Settings,
    store: Store,
    clock: Clock,
    provider: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    sns: SnsVerifier,
) -> WebhookResult:
    """Authenticate and apply one post of ``provider``; refusals change nothing."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        if provider == "ses":
            message = _verified_sns(settings, clock, sns, body)
            if message.type == "SubscriptionConfirmation":
                sns.confirm(message)
                log.info("bounces: confirmed the SNS subscription to %s", message.topic_arn)
                return WebhookResult(provider, subscription_confirmed=True)
            if message.type != "Notification":  # UnsubscribeConfirmation: nothing to do
                return WebhookResult(provider)
            events = ses_events(message)
        elif provider == "generic":
            events = [generic_event(_generic_secret(settings), lowered, body)]
        else:
            raise WebhookRefused(Refusal.UNKNOWN_PROVIDER, "unknown provider; use 'ses' or 'generic'")
    except WebhookRefused as e:
        log.warning("bounces: webhook %r refused (%s): %s", provider[:40], e.refusal.value, e.detail)
        return WebhookResult(provider, e.refusal, e.detail)
    outcomes = tuple(apply_feedback(settings, store, clock, event) for event in events)
    return WebhookResult(provider, outcomes=outcomes)


# -- generic JSON --------------------------------------------------------------------


def _generic_secret(settings: Settings) -> str:
    env = settings.bounces.webhook_secret_env if settings.bounces else None
    secret = os.environ.get(env) if env else None
    if not secret:
        where = f"the environment variable {env} is empty or not set" if env else "it is not configured"
        raise WebhookRefused(
            Refusal.UNAUTHENTICATED,
            f"no webhook secret: {where}; set [bounces] webhook_secret_env and that variable",
        )
    return secret


def generic_event(secret: str, headers: Mapping[str, str], body: bytes) -> FeedbackEvent:
    """The finding of an authenticated generic post (``headers`` with lower-case names)."""
    scheme, _, token = headers.get("authorization", "").strip().partition(" ")
    # Digests of equal length: the comparison takes the same time whatever the token.
    given = hashlib.sha256(token.strip().encode("utf-8", "surrogateescape")).digest()
    if scheme.lower() != "bearer" or not hmac.compare_digest(given, hashlib.sha256(secret.encode()).digest()):
        raise WebhookRefused(Refusal.UNAUTHENTICATED, "missing or wrong 'Authorization: Bearer' secret")
    data = _json_object(body, "the body")
    address = _address(_field(data, "email", str, "the recipient's address"))
    kind_name = _field(data, "type", str, '"bounce" or "complaint"')
    reason = data.get("reason", "")
    if not isinstance(reason, str):
        raise WebhookRefused(Refusal.MALFORMED, "'reason' must be a string")
    if kind_name == "complaint":
        kind = FeedbackKind.COMPLAINT
    elif kind_name == "bounce":
        permanent = _field(data, "permanent", bool, "true (a hard bounce) or false (a soft one)")
        kind = FeedbackKind.HARD_BOUNCE if permanent else FeedbackKind.SOFT_BOUNCE
    else:
        raise WebhookRefused(Refusal.MALFORMED, '\'type\' must be "bounce" or "complaint"')
    ident = data.get("id")
    if ident is None:
        ident = "sha256-" + hashlib.sha256(body).hexdigest()
    elif not isinstance(ident, str) or not 0 < len(ident) <= MAX_ID_LENGTH or not ident.isprintable():
        raise WebhookRefused(
            Refusal.MALFORMED, f"'id' must be a printable string of 1 to {MAX_ID_LENGTH} characters"
        )
    return FeedbackEvent(
        kind=kind,
        report_id=f"generic:{ident}",
        source="webhook:generic",
        address=address,
        diagnostic=" ".join(reason.split())[:1000],
    )


# -- Amazon SES through SNS ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SnsMessage:
    """The fields of an SNS HTTP(S) message that we use or that its signature covers."""

    type: str
    message_id: str
    topic_arn: str
    message: str
    timestamp: str
    signature_version: str
    signature: str
    signing_cert_url: str
    subject: str | None = None
    subscribe_url: str | None = None
    token: str | None = None

    def string_to_sign(self) -> bytes:
        """What SNS signed: ``Name\\nvalue\\n`` for each field of the type, in this order."""
        if self.type == "Notification":
            pairs = [("Message", self.message), ("MessageId", self.message_id)]
            if self.subject is not None:
                pairs.append(("Subject", self.subject))
            pairs += [("Timestamp", self.timestamp), ("TopicArn", self.topic_arn), ("Type", self.type)]
        else:  # SubscriptionConfirmation, UnsubscribeConfirmation
            pairs = [
                ("Message", self.message),
                ("MessageId", self.message_id),
                ("SubscribeURL", self.subscribe_url or ""),
                ("Timestamp", self.timestamp),
                ("Token", self.token or ""),
                ("TopicArn", self.topic_arn),
                ("Type", self.type),
            ]
        return "".join(f"{name}\n{value}\n" for name, value in pairs).encode("utf-8")


_SNS_TYPES = ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation")


def parse_sns(body: bytes) -> SnsMessage:
    """The SNS message in a POST body; :class:`WebhookRefused` (malformed) otherwise."""
    data = _json_object(body, "the SNS message")
    kind = _field(data, "Type", str, "the SNS message type")
    if kind not in _SNS_TYPES:
        raise WebhookRefused(Refusal.MALFORMED, f"SNS message type {kind[:40]!r} is not one of {_SNS_TYPES}")
    confirmation = kind != "Notification"
    subject = data.get("Subject")
    return SnsMessage(
        type=kind,
        message_id=_field(data, "MessageId", str, "the SNS message id"),
        topic_arn=_field(data, "TopicArn", str, "the SNS topic"),
        message=_field(data, "Message", str, "the notification"),
        timestamp=_field(data, "Timestamp", str, "the time SNS sent it"),
        signature_version=_field(data, "SignatureVersion", str, '"1" or "2"'),
        signature=_field(data, "Signature", str, "the base64 signature"),
        signing_cert_url=_field(data, "SigningCertURL", str, "the certificate's URL"),
        subject=subject if isinstance(subject, str) else None,
        subscribe_url=_field(data, "SubscribeURL", str, "the URL to confirm at") if confirmation else None,
        token=_field(data, "Token", str, "the subscription token") if confirmation else None,
    )


def is_sns_url(url: str) -> bool:
    """``https://sns.<region>.amazonaws.com[.cn]/...``: no user, no port, no other host."""
    if not url.isprintable() or any(c.isspace() or c == "\\" for c in url):
        return False
    parts = urlsplit(url)
    host = parts.hostname or ""
    return parts.scheme == "https" and parts.netloc.lower() == host and bool(SNS_HOST.match(host))


def fetch_from_sns(url: str) -> bytes:
    """GET ``url`` (checked by the caller) within :data:`SNS_FETCH_LIMITS`."""
    try:
        fetched = fetch("sns", url, SourceState(name="sns"), SNS_FETCH_LIMITS)
    except SourceError as e:
        raise WebhookRefused(Refusal.UNAVAILABLE, f"cannot fetch {url}: {e.cause}") from e
    return fetched.body or b""


class SnsVerifier:
    """Checks SNS signatures; keeps the certificates it fetched, by URL.

    ``fetch`` reads a URL that :func:`is_sns_url` accepted (a certificate or a
    SubscribeURL); tests give one that serves a throw-away certificate from loopback.
    The host rule is applied before ``fetch`` is called, whatever ``fetch`` is.
    """

    def __init__(self, fetch: Fetch | None = None) -> None:
        self._fetch = fetch or fetch_from_sns
        self._certificates: OrderedDict[str, x509.Certificate] = OrderedDict()
        self._lock = threading.Lock()

    def verify(self, message: SnsMessage, now: datetime) -> None:
        """Return if SNS signed ``message``; :class:`WebhookRefused` otherwise."""
        algorithms: dict[str, hashes.HashAlgorithm] = {"1": hashes.SHA1(), "2": hashes.SHA256()}
        algorithm = algorithms.get(message.signature_version)
        if algorithm is None:
            raise WebhookRefused(
                Refusal.UNAUTHENTICATED, f"SignatureVersion {message.signature_version[:10]!r} is not 1 or 2"
            )
        try:
            signature = base64.b64decode(message.signature, validate=True)
        except (binascii.Error, ValueError) as e:
            raise WebhookRefused(Refusal.UNAUTHENTICATED, "the Signature is not base64") from e
        certificate = self._certificate(message.signing_cert_url)
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise WebhookRefused(
                Refusal.UNAUTHENTICATED, f"the certificate at {message.signing_cert_url} has expired"
            )
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise WebhookRefused(Refusal.UNAUTHENTICATED, "the signing certificate's key is not RSA")
        try:
            key.verify(signature, message.string_to_sign(), padding.PKCS1v15(), algorithm)
        except InvalidSignature as e:
            raise WebhookRefused(
                Refusal.UNAUTHENTICATED, "the SNS signature does not match the message"
            ) from e

    def _certificate(self, url: str) -> x509.Certificate:
        if not is_sns_url(url) or not urlsplit(url).path.endswith(".pem"):
            raise WebhookRefused(
                Refusal.UNAUTHENTICATED,
                f"SigningCertURL {url[:200]!r} is not an https://sns.<region>.amazonaws.com/....pem URL",
            )
        with self._lock:
            if url in self._certificates:
                self._certificates.move_to_end(url)
                return self._certificates[url]
        pem = self._fetch(url)
        from cryptography.x509 import load_pem_x509_certificate

        try:
            certificate = load_pem_x509_certificate(pem)
        except ValueError as e:
            raise WebhookRefused(Refusal.UNAVAILABLE, f"{url} is not a PEM certificate") from e
        with self._lock:
            self._certificates[url] = certificate
            while len(self._certificates) > CERTIFICATE_CACHE_SIZE:
                self._certificates.popitem(last=False)
        return certificate

    def confirm(self, message: SnsMessage) -> None:
        """Confirm a verified SubscriptionConfirmation by fetching its SubscribeURL."""
        url = message.subscribe_url or ""
        query = parse_qs(urlsplit(url).query)
        if not is_sns_url(url) or query.get("Action") != ["ConfirmSubscription"]:
            raise WebhookRefused(
                Refusal.MALFORMED,
                f"SubscribeURL {url[:200]!r} is not an "
                "https://sns.<region>.amazonaws.com/?Action=ConfirmSubscription URL",
            )
        self._fetch(url)


def _verified_sns(settings: Settings, clock: Clock, sns: SnsVerifier, body: bytes) -> SnsMessage:
    topics = settings.bounces.ses_topic_arns if settings.bounces else []
    if not topics:
        raise WebhookRefused(
            Refusal.UNAUTHENTICATED,
            "no SNS topic is trusted; list yours in [bounces] ses_topic_arns",
        )
    message = parse_sns(body)
    if message.topic_arn not in topics:
        raise WebhookRefused(
            Refusal.UNAUTHENTICATED,
            f"topic {message.topic_arn[:200]!r} is not in [bounces] ses_topic_arns",
        )
    sns.verify(message, clock())
    return message


def ses_events(message: SnsMessage) -> list[FeedbackEvent]:
    """The findings of a verified SES notification: one per bounced or complaining recipient.

    Other notification types (Delivery, Send, Open, ...) carry nothing to act on.
    """
    data = _json_object(message.message.encode("utf-8"), "the SES notification (Message)")
    kind = data.get("notificationType", data.get("eventType"))
    if kind == "Bounce":
        detail = _dict(data, "bounce")
        bounce_type = detail.get("bounceType")
        if bounce_type not in ("Permanent", "Transient", "Undetermined"):
            raise WebhookRefused(
                Refusal.MALFORMED, "bounce.bounceType is not Permanent, Transient or Undetermined"
            )
        feedback = FeedbackKind.HARD_BOUNCE if bounce_type == "Permanent" else FeedbackKind.SOFT_BOUNCE
        recipients = _list(detail, "bouncedRecipients")
        fallback = f"{bounce_type}/{detail.get('bounceSubType', '')}"
    elif kind == "Complaint":
        detail = _dict(data, "complaint")
        feedback = FeedbackKind.COMPLAINT
        recipients = _list(detail, "complainedRecipients")
        fallback = str(detail.get("complaintFeedbackType") or "complaint")
    else:
        return []
    feedback_id = detail.get("feedbackId")
    ident = feedback_id if isinstance(feedback_id, str) and feedback_id else message.message_id
    events = []
    for recipient in recipients:
        raw = recipient.get("emailAddress") if isinstance(recipient, dict) else None
        if not isinstance(raw, str):
            raise WebhookRefused(Refusal.MALFORMED, "a recipient has no emailAddress")
        address = _address(parseaddr(raw)[1] or raw)
        status = recipient.get("status")
        diagnostic = recipient.get("diagnosticCode") or fallback
        events.append(
            FeedbackEvent(
                kind=feedback,
                report_id=f"ses:{ident[:MAX_ID_LENGTH]}:{address.lower()}",
                source="webhook:ses",
                address=address,
                status_code=status if isinstance(status, str) and _STATUS.match(status) else None,
                diagnostic=" ".join(str(diagnostic).split())[:1000],
            )
        )
    return events


_STATUS = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")


# -- shared checks -------------------------------------------------------------------


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    try:  # RFC 8259: JSON between systems is UTF-8 (json.loads would guess UTF-16 or -32 too)
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise WebhookRefused(Refusal.MALFORMED, f"{what} is not JSON: {e}") from e
    except RecursionError as e:  # json recurses once per nesting level: "[[[[..." from anyone
        raise WebhookRefused(Refusal.MALFORMED, f"{what} is nested too deeply to be a notification") from e
    if not isinstance(data, dict):
        raise WebhookRefused(Refusal.MALFORMED, f"{what} is not a JSON object")
    return data


def _field(data: Mapping[str, Any], name: str, kind: type[Any], meaning: str) -> Any:
    value = data.get(name)
    if not isinstance(value, kind) or (kind is str and not value):
        raise WebhookRefused(Refusal.MALFORMED, f"{name!r} is missing or not a {kind.__name__} ({meaning})")
    return value


def _dict(data: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name)
    if not isinstance(value, dict):
        raise WebhookRefused(Refusal.MALFORMED, f"{name!r} is missing or not an object")
    return value


def _list(data: Mapping[str, Any], name: str) -> list[Any]:
    value = data.get(name)
    if not isinstance(value, list) or not value:
        raise WebhookRefused(Refusal.MALFORMED, f"{name!r} is missing or empty")
    return value


def _address(raw: str) -> str:
    try:
        return normalise_address(raw)
    except SubscriberError as e:
        raise WebhookRefused(Refusal.MALFORMED, e.reason) from e
