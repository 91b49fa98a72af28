"""POST /webhooks/bounces/{provider} through a real uvicorn server.

Amazon SES notifications come signed by SNS: the tests make a throw-away RSA key and
self-signed certificate with ``cryptography``, sign messages the way SNS documents it
(the string-to-sign is built here independently of the code under test), and serve the
certificate from ``tests/http_server.py``. The publisher is given a fetch that reads
``https://sns.eu-west-1.amazonaws.com/...`` from that loopback server instead: the SNS
host rule, the bounded fetch and the cache are the production ones.

What a user sees is asserted: who is still subscribed, what the answer says, which URLs
the publisher fetched.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

import publisher.bounces.webhooks as webhooks_module
from publisher.app import Publisher
from publisher.bounces.webhooks import fetch_from_sns
from publisher.config import Settings
from publisher.errors import ConfigError
from publisher.models import SubscriptionStatus
from publisher.sources.http import Limits
from publisher.store import Store
from publisher.subscriptions import add
from tests.http_server import Upstream, drip, page, zeros
from tests.test_digests import item
from tests.test_web import Server

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
LISTS = [
    {"slug": "weekly", "name": "Weekly digest", "sender": "News <news@example.org>"},
    {"slug": "press", "name": "Press releases", "sender": "Press <press@example.org>"},
]
TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-bounces"
SNS_ORIGIN = "https://sns.eu-west-1.amazonaws.com"
CERT_PATH = "/SimpleNotificationService-0123456789abcdef.pem"
CERT_URL = SNS_ORIGIN + CERT_PATH
SECRET_ENV = "PUBLISHER_TEST_WEBHOOK_SECRET"
SECRET = "a-long-random-webhook-secret"
ANN, BOB = "ann@example.org", "bob@example.org"


# -- a throw-away SNS signer -----------------------------------------------------------


@dataclass
class Signer:
    key: rsa.RSAPrivateKey
    pem: bytes


def make_signer(not_after: datetime = NOW + timedelta(days=365)) -> Signer:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return Signer(key, cert.public_bytes(serialization.Encoding.PEM))


@pytest.fixture(scope="module")
def signer() -> Signer:
    return make_signer()


def string_to_sign(message: dict[str, str]) -> bytes:
    """Per the SNS documentation: name and value lines of these fields, in this order."""
    if message["Type"] == "Notification":
        names = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        names = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    return "".join(f"{n}\n{message[n]}\n" for n in names if n in message).encode()


def signed(message: dict[str, str], signer: Signer, version: str = "1") -> dict[str, str]:
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = signer.key.sign(string_to_sign(message), padding.PKCS1v15(), algorithm)
    return message | {
        "SignatureVersion": version,
        "Signature": base64.b64encode(signature).decode(),
        "SigningCertURL": CERT_URL,
    }


def notification(ses: dict[str, Any], *, message_id: str | None = None, topic: str = TOPIC) -> dict[str, str]:
    return {
        "Type": "Notification",
        "MessageId": message_id or str(uuid.uuid4()),
        "TopicArn": topic,
        "Message": json.dumps(ses),
        "Timestamp": "2026-11-25T08:59:58.123Z",
        "UnsubscribeURL": f"{SNS_ORIGIN}/?Action=Unsubscribe&SubscriptionArn={TOPIC}:x",
    }


def ses_bounce(*addresses: str, kind: str = "Permanent", feedback_id: str | None = None) -> dict[str, Any]:
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": kind,
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": a,
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 no",
                }
                for a in addresses
            ],
            "timestamp": "2026-11-25T08:59:57.000Z",
            "feedbackId": feedback_id or str(uuid.uuid4()),
        },
        "mail": {"timestamp": "2026-11-25T08:59:50.000Z", "source": "news@example.org", "messageId": "x"},
    }


def ses_complaint(address: str) -> dict[str, Any]:
    return {
        "notificationType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": address}],
            "timestamp": "2026-11-25T08:59:57.000Z",
            "feedbackId": str(uuid.uuid4()),
            "complaintFeedbackType": "abuse",
        },
        "mail": {"timestamp": "2026-11-25T08:59:50.000Z", "source": "news@example.org", "messageId": "x"},
    }


# -- a publisher that has mailed ANN and BOB, behind uvicorn ------------------------


@dataclass
class Site:
    publisher: Publisher
    server: Server
    upstream: Upstream
    client: httpx.Client

    def post(self, provider: str, body: bytes | dict[str, Any], **headers: str) -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.client.post(f"/webhooks/bounces/{provider}", content=content, headers=headers)

    def status(self, email: str) -> dict[str, SubscriptionStatus]:
        sid = self.publisher.store.subscribers.find_id(email)
        assert sid is not None
        return self.publisher.store.subscribers.statuses(sid)

    def confirmed(self, email: str) -> bool:
        return set(self.status(email).values()) == {SubscriptionStatus.CONFIRMED}

    def fetched(self, path: str) -> int:
        return self.upstream.requests.count(path)


def make_site(settings: Settings, upstream: Upstream, signer: Signer) -> Iterator[Site]:
    upstream.routes[CERT_PATH] = page(signer.pem, "application/x-pem-file")

    def sns_fetch(url: str) -> bytes:  # the loopback server plays sns.eu-west-1.amazonaws.com
        assert url.startswith(SNS_ORIGIN + "/")
        return fetch_from_sns(upstream.origin + url.removeprefix(SNS_ORIGIN))

    pub = Publisher(settings, Store(settings.storage.url), clock=lambda: NOW, sns_fetch=sns_fetch)
    for email in (ANN, BOB):
        for slug in ("weekly", "press"):
            add(settings, pub.store, slug, email, "", "en", now=NOW)
    pub.store.items.save([item(1, NOW - timedelta(hours=2))], [], NOW)
    for slug in ("weekly", "press"):
        assert asyncio.run(pub.send_digest(slug)).ok
    with Server(pub) as server, httpx.Client(base_url=server.base, timeout=10) as client:
        yield Site(pub, server, upstream, client)
    pub.close()


BOUNCES = {"address": "bounces@example.org", "ses_topic_arns": [TOPIC], "webhook_secret_env": SECRET_ENV}


@pytest.fixture
def site(
    make_settings: Callable[..., Settings],
    store_url: str,
    upstream: Upstream,
    signer: Signer,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Site]:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    settings = make_settings(storage={"url": store_url}, lists=LISTS, bounces=BOUNCES | {"soft_limit": 2})
    yield from make_site(settings, upstream, signer)


@pytest.fixture
def sqlite_site(
    make_settings: Callable[..., Settings],
    upstream: Upstream,
    signer: Signer,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Site]:
    """The same on SQLite only, for refusals (nothing reaches the store)."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    settings = make_settings(lists=LISTS, bounces=BOUNCES | {"soft_limit": 2})
    yield from make_site(settings, upstream, signer)


# -- Amazon SES ------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_signed_permanent_bounce_suppresses_the_address_on_every_list(
    site: Site, signer: Signer, version: str
) -> None:
    answer = site.post("ses", signed(notification(ses_bounce(ANN)), signer, version))
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcomes"] == ["applied"]
    assert set(site.status(ANN).values()) == {SubscriptionStatus.BOUNCED}
    assert site.confirmed(BOB)


def test_a_signed_complaint_marks_the_address_complained(site: Site, signer: Signer) -> None:
    answer = site.post("ses", signed(notification(ses_complaint(BOB)), signer, "2"))
    assert answer.status_code == 200, answer.text
    assert set(site.status(BOB).values()) == {SubscriptionStatus.COMPLAINED}
    assert site.confirmed(ANN)


def test_a_replayed_notification_counts_once(site: Site, signer: Signer) -> None:
    """soft_limit is 2: the same transient bounce posted twice must not reach it."""
    same = signed(notification(ses_bounce(ANN, kind="Transient")), signer, "2")
    assert site.post("ses", same).json()["outcomes"] == ["applied"]
    replay = site.post("ses", same)
    assert replay.status_code == 200  # SNS retries anything else
    assert replay.json()["outcomes"] == ["duplicate"]
    assert site.confirmed(ANN)
    # A second, different transient bounce is counted: the limit is reached.
    site.post("ses", signed(notification(ses_bounce(ANN, kind="Transient")), signer, "2"))
    assert set(site.status(ANN).values()) == {SubscriptionStatus.BOUNCED}
    assert site.fetched(CERT_PATH) == 1  # the certificate was fetched once and kept


def test_one_notification_for_two_recipients_applies_to_both(sqlite_site: Site, signer: Signer) -> None:
    answer = sqlite_site.post("ses", signed(notification(ses_bounce(ANN, BOB)), signer))
    assert answer.json()["outcomes"] == ["applied", "applied"]
    assert not sqlite_site.confirmed(ANN) and not sqlite_site.confirmed(BOB)


def test_an_address_never_mailed_changes_nothing(sqlite_site: Site, signer: Signer) -> None:
    answer = sqlite_site.post("ses", signed(notification(ses_bounce("carol@example.org")), signer))
    assert answer.status_code == 200
    assert answer.json()["outcomes"] == ["unmatched"]


def _forgeries(signer: Signer) -> dict[str, dict[str, str]]:
    other = make_signer()
    good = signed(notification(ses_bounce(ANN)), signer)
    tampered = good | {"Message": json.dumps(ses_bounce(ANN, BOB))}
    return {
        "altered after signing": tampered,
        "signed by another key": signed(notification(ses_bounce(ANN)), other),
        "certificate on another host": good | {"SigningCertURL": "https://sns.evil.example" + CERT_PATH},
        "certificate over http": good | {"SigningCertURL": "http://sns.eu-west-1.amazonaws.com" + CERT_PATH},
        "certificate behind a user part": good
        | {"SigningCertURL": "https://sns.eu-west-1.amazonaws.com@evil.example" + CERT_PATH},
        "unknown signature version": good | {"SignatureVersion": "3"},
        "signature not base64": good | {"Signature": "not base64!"},
        "no signature": {k: v for k, v in good.items() if k != "Signature"},
        "topic not trusted": signed(notification(ses_bounce(ANN), topic=TOPIC + "-other"), signer),
        "subject added after signing": good | {"Subject": "Amazon SES bounce"},
    }


def test_forged_notifications_are_refused_and_change_nothing(sqlite_site: Site, signer: Signer) -> None:
    for what, forged in _forgeries(signer).items():
        answer = sqlite_site.post("ses", forged)
        expected = 400 if what == "no signature" else 401
        assert answer.status_code == expected, f"{what}: {answer.status_code} {answer.text}"
        assert "outcomes" not in answer.json()
        assert sqlite_site.confirmed(ANN) and sqlite_site.confirmed(BOB), what
    # Only the trusted host's certificate was ever fetched (for the two signature checks).
    assert sqlite_site.upstream.requests == [CERT_PATH]


def test_an_expired_certificate_is_refused(
    make_settings: Callable[..., Settings], upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = make_signer(not_after=NOW - timedelta(minutes=1))
    settings = make_settings(lists=LISTS, bounces=BOUNCES)
    for s in make_site(settings, upstream, old):
        assert s.post("ses", signed(notification(ses_bounce(ANN)), old)).status_code == 401
        assert s.confirmed(ANN)


def test_an_unreachable_certificate_is_a_temporary_refusal(sqlite_site: Site, signer: Signer) -> None:
    del sqlite_site.upstream.routes[CERT_PATH]  # 404 from "SNS"
    answer = sqlite_site.post("ses", signed(notification(ses_bounce(ANN)), signer))
    assert answer.status_code == 503  # SNS tries again later
    assert sqlite_site.confirmed(ANN)


def test_an_oversized_certificate_is_not_read_past_the_cap(sqlite_site: Site, signer: Signer) -> None:
    # 16 MiB announced by nobody: the fetch stops at SNS_FETCH_LIMITS.max_bytes (64 KiB).
    sqlite_site.upstream.routes[CERT_PATH] = zeros(16 * 1024 * 1024)
    answer = sqlite_site.post("ses", signed(notification(ses_bounce(ANN)), signer))
    assert answer.status_code == 503
    assert "larger than max_bytes = 65536" in answer.json()["detail"]
    assert sqlite_site.confirmed(ANN)


def test_a_certificate_server_that_drips_is_given_up_at_the_deadline(
    sqlite_site: Site, signer: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webhooks_module, "SNS_FETCH_LIMITS", Limits(timeout=1.0, max_bytes=64 * 1024))
    sqlite_site.upstream.routes[CERT_PATH] = drip(0.1)  # a byte every 0.1 s: no read ever times out
    started = time.monotonic()
    answer = sqlite_site.post("ses", signed(notification(ses_bounce(ANN)), signer))
    assert answer.status_code == 503
    assert "timed out after 1 s" in answer.json()["detail"]
    assert time.monotonic() - started < 5
    assert sqlite_site.confirmed(ANN)


CONFIRM_PATH = f"/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=2336412f37fb687f5d51e6e2"


def subscription_confirmation(subscribe_url: str = SNS_ORIGIN + CONFIRM_PATH) -> dict[str, str]:
    return {
        "Type": "SubscriptionConfirmation",
        "MessageId": str(uuid.uuid4()),
        "Token": "2336412f37fb687f5d51e6e2",
        "TopicArn": TOPIC,
        "Message": f"You have chosen to subscribe to the topic {TOPIC}.\nTo confirm, visit the SubscribeURL.",
        "SubscribeURL": subscribe_url,
        "Timestamp": "2026-11-25T08:59:58.123Z",
    }


def test_a_signed_subscription_confirmation_is_confirmed(sqlite_site: Site, signer: Signer) -> None:
    sqlite_site.upstream.routes[CONFIRM_PATH] = page(b"<ConfirmSubscriptionResponse/>", "text/xml")
    answer = sqlite_site.post("ses", signed(subscription_confirmation(), signer, "2"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["subscription_confirmed"] is True
    assert sqlite_site.fetched(CONFIRM_PATH) == 1


def test_an_oversized_subscribe_url_answer_is_not_read_past_its_cap(
    sqlite_site: Site, signer: Signer
) -> None:
    sqlite_site.upstream.routes[CONFIRM_PATH] = zeros(16 * 1024 * 1024)
    answer = sqlite_site.post("ses", signed(subscription_confirmation(), signer, "2"))
    assert answer.status_code == 503  # SNS sends the confirmation again later
    assert "larger than max_bytes = 65536" in answer.json()["detail"]


def test_a_forged_or_foreign_subscription_confirmation_fetches_nothing(
    sqlite_site: Site, signer: Signer
) -> None:
    sqlite_site.upstream.routes[CONFIRM_PATH] = page(b"<ConfirmSubscriptionResponse/>", "text/xml")
    forged = signed(subscription_confirmation(), make_signer(), "2")
    assert sqlite_site.post("ses", forged).status_code == 401
    elsewhere = signed(subscription_confirmation("https://evil.example" + CONFIRM_PATH), signer, "2")
    assert sqlite_site.post("ses", elsewhere).status_code == 400
    assert sqlite_site.fetched(CONFIRM_PATH) == 0


def test_ses_is_refused_when_no_topic_is_trusted(
    make_settings: Callable[..., Settings], upstream: Upstream, signer: Signer
) -> None:
    settings = make_settings(lists=LISTS, bounces={"address": "bounces@example.org"})
    for s in make_site(settings, upstream, signer):
        assert s.post("ses", signed(notification(ses_bounce(ANN)), signer)).status_code == 401
        assert s.confirmed(ANN)
        assert s.upstream.requests == []


# -- generic JSON ----------------------------------------------------------------------


def bearer(secret: str = SECRET) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_a_generic_permanent_bounce_with_the_secret_suppresses(site: Site) -> None:
    body = {"email": ANN, "type": "bounce", "permanent": True, "reason": "550 5.1.1 unknown user"}
    answer = site.post("generic", body, **bearer())
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcomes"] == ["applied"]
    assert set(site.status(ANN).values()) == {SubscriptionStatus.BOUNCED}
    complaint = site.post("generic", {"email": BOB, "type": "complaint", "id": "c-1"}, **bearer())
    assert complaint.json()["outcomes"] == ["applied"]
    assert set(site.status(BOB).values()) == {SubscriptionStatus.COMPLAINED}


def test_a_generic_notification_with_the_same_id_counts_once(sqlite_site: Site) -> None:
    """soft_limit is 2; the provider's retry carries the same id."""
    soft = {"email": ANN, "type": "bounce", "permanent": False, "reason": "mailbox full", "id": "n-1"}
    assert sqlite_site.post("generic", soft, **bearer()).json()["outcomes"] == ["applied"]
    retry = soft | {"reason": "mailbox full (retry)"}
    assert sqlite_site.post("generic", retry, **bearer()).json()["outcomes"] == ["duplicate"]
    assert sqlite_site.confirmed(ANN)
    sqlite_site.post("generic", soft | {"id": "n-2"}, **bearer())
    assert not sqlite_site.confirmed(ANN)


def test_generic_posts_without_the_right_secret_are_refused(sqlite_site: Site) -> None:
    body = {"email": ANN, "type": "bounce", "permanent": True}
    for headers in (
        {},
        bearer("wrong-secret"),
        bearer(SECRET + "x"),
        bearer(SECRET[:-1]),
        {"Authorization": f"Basic {SECRET}"},
        {"Authorization": SECRET},
        {"Authorization": "Bearer"},
    ):
        answer = sqlite_site.post("generic", body, **headers)
        assert answer.status_code == 401, headers
        assert answer.json() == {"ok": False, "error": "unauthenticated"}
        assert answer.headers["www-authenticate"].startswith("Bearer")
    assert sqlite_site.confirmed(ANN)


@pytest.mark.parametrize("secret_env", [None, "PUBLISHER_TEST_UNSET_SECRET"])
def test_generic_is_refused_when_no_secret_is_configured(
    make_settings: Callable[..., Settings],
    upstream: Upstream,
    signer: Signer,
    secret_env: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PUBLISHER_TEST_UNSET_SECRET", raising=False)
    bounces = {"address": "bounces@example.org"} | ({"webhook_secret_env": secret_env} if secret_env else {})
    settings = make_settings(lists=LISTS, bounces=bounces)
    for s in make_site(settings, upstream, signer):
        for headers in ({}, {"Authorization": "Bearer"}, bearer("None"), bearer(SECRET)):
            answer = s.post("generic", {"email": ANN, "type": "complaint"}, **headers)
            assert answer.status_code == 401
        assert s.confirmed(ANN)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"email": "ann@example.org", "type": "bounce"}',  # permanent missing
        b'{"email": "ann@example.org", "type": "bounce", "permanent": "yes"}',
        b'{"email": "ann@example.org", "type": "unsubscribe"}',
        b'{"email": "not an address", "type": "complaint"}',
        b'{"email": "ann@example.org\\r\\nBcc: x@example.org", "type": "complaint"}',
        b'{"type": "complaint"}',
        b'{"email": "ann@example.org", "type": "complaint", "id": 7}',
        b'{"email": "ann@example.org", "type": "complaint", "reason": ["x"]}',
        '{"email": "ann@example.org", "type": "complaint"}'.encode("utf-16"),
    ],
)
def test_malformed_generic_posts_are_400_and_change_nothing(sqlite_site: Site, body: bytes) -> None:
    answer = sqlite_site.post("generic", body, **bearer())
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "malformed" and answer.json()["detail"]
    assert sqlite_site.confirmed(ANN)


def test_malformed_ses_posts_are_400(sqlite_site: Site, signer: Signer) -> None:
    assert sqlite_site.post("ses", b"{").status_code == 400
    assert sqlite_site.post("ses", {"Type": "Surprise"}).status_code == 400
    not_ses = signed({**notification({}), "Message": "not json"}, signer)
    assert sqlite_site.post("ses", not_ses).status_code == 400
    assert sqlite_site.confirmed(ANN)


@pytest.mark.parametrize("opening", [b"[", b'{"a":'])
def test_json_nested_too_deeply_is_400_malformed_not_a_500(
    sqlite_site: Site, signer: Signer, opening: bytes
) -> None:
    deep = opening * (100_000 // len(opening))  # 100 KB, under the body cap; json recurses per level
    answer = sqlite_site.post("ses", deep)  # before any signature check: anyone can send it
    assert answer.status_code == 400, answer.text
    assert answer.json() == {"ok": False, "error": "malformed", "detail": answer.json()["detail"]}
    assert "nested too deeply" in answer.json()["detail"]
    answer = sqlite_site.post("generic", deep, **bearer())
    assert answer.status_code == 400 and "nested too deeply" in answer.json()["detail"]
    inner = signed({**notification({}), "Message": deep.decode()}, signer)
    answer = sqlite_site.post("ses", inner)  # a signed notification whose Message is that
    assert answer.status_code == 400 and "nested too deeply" in answer.json()["detail"]
    assert sqlite_site.confirmed(ANN)


def test_a_delivery_notification_is_accepted_and_ignored(sqlite_site: Site, signer: Signer) -> None:
    delivery = {"notificationType": "Delivery", "delivery": {"recipients": [ANN]}, "mail": {}}
    answer = sqlite_site.post("ses", signed(notification(delivery), signer))
    assert answer.status_code == 200 and answer.json()["outcomes"] == []
    assert sqlite_site.confirmed(ANN)


def test_oversized_unknown_and_get_requests_change_nothing(sqlite_site: Site) -> None:
    huge = b'{"email": "ann@example.org", "type": "complaint", "reason": "' + b"x" * 600_000 + b'"}'
    assert sqlite_site.post("generic", huge, **bearer()).status_code == 413
    assert sqlite_site.post("mailgun", {"email": ANN}, **bearer()).status_code == 404
    assert sqlite_site.client.get("/webhooks/bounces/generic").status_code == 405
    assert sqlite_site.client.head("/webhooks/bounces/ses").status_code == 405
    assert sqlite_site.confirmed(ANN)


def test_ses_topic_arns_must_be_topic_arns(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"bounces.ses_topic_arns.*not an SNS topic ARN"):
        make_settings(bounces={"ses_topic_arns": ["https://sns.eu-west-1.amazonaws.com/topic"]})
