"""The web sign-up with double opt-in, over HTTP against the real app and a real store.

Starlette's TestClient drives the ASGI app in-process (the client address is
``testclient``); mails land in the Maildir outbox, or in aiosmtpd where ``[smtp]`` is
set. The store runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from publisher.app import Publisher
from publisher.cli import cli, record_text
from publisher.config import Settings
from publisher.models import SubscriptionStatus
from publisher.store import Store
from publisher.store.tables import subscriptions
from publisher.subscriptions import add, set_status
from publisher.web.app import create_app
from tests.smtp_server import SmtpSink
from tests.test_web import Server

START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
LISTS = [
    {"slug": "weekly", "name": "Weekly digest", "sender": "News <news@example.org>"},
    {"slug": "press", "name": "Press releases", "sender": "Press <press@example.org>"},
    {"slug": "staff", "name": "Staff only", "sender": "HR <hr@example.org>", "public": False},
]


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


class Site:
    def __init__(self, publisher: Publisher, clock: Clock, outbox: Path) -> None:
        self.publisher = publisher
        self.clock = clock
        self.outbox = outbox
        self.client = TestClient(create_app(publisher))

    def csrf(self, url: str = "/subscribe") -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', self.client.get(url).text)
        assert found, "no CSRF token in the form"
        return found.group(1)

    def sign_up(self, email_: str, *lists: str, **fields: str) -> Any:
        data: dict[str, Any] = {"csrf": self.csrf(), "email": email_, "name": "", "language": "en"}
        data.update(fields)
        data["list"] = list(lists or ("weekly",))
        return self.client.post("/subscribe", data=data)

    def mails(self) -> list[email.message.EmailMessage]:
        folder = self.outbox / "new"
        if not folder.is_dir():
            return []
        return [
            email.message_from_bytes(p.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
            for p in sorted(folder.iterdir())
        ]

    def status(self, address: str, list_slug: str = "weekly") -> SubscriptionStatus | None:
        sid = self.publisher.store.subscribers.find_id(address)
        return None if sid is None else self.publisher.store.subscribers.statuses(sid).get(list_slug)


def confirm_path(message: email.message.EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    found = re.search(r"http://127\.0\.0\.1:8080(/confirm/\S+)", body.get_content())
    assert found, "no confirmation link in the mail"
    return found.group(1)


@pytest.fixture
def site(make_settings: Callable[..., Settings], store_url: str, tmp_path: Path) -> Iterator[Site]:
    settings = make_settings(storage={"url": store_url}, lists=LISTS)
    clock = Clock()
    publisher = Publisher(settings, Store(store_url), clock=clock)
    yield Site(publisher, clock, tmp_path / "outbox")
    publisher.close()


def test_form_offers_public_lists_only_with_labels_token_and_honeypot(site: Site) -> None:
    page = site.client.get("/subscribe?list=press&lang=fr")
    assert page.status_code == 200
    html = page.text
    assert 'value="weekly"' in html and 'value="press" checked' in html
    assert "staff" not in html and "Staff only" not in html
    assert '<html lang="fr"' in html and "S’abonner" in html
    for field in ("email", "name", "language", "website"):
        assert f'<label for="{field}">' in html
    assert 'aria-hidden="true"' in html and 'tabindex="-1"' in html
    assert "<script" not in html
    assert site.client.head("/subscribe").status_code == 200
    german_first = site.client.get("/subscribe", headers={"accept-language": "de, es;q=0.8, fr;q=0.5"})
    assert '<html lang="es"' in german_first.text


def test_same_answer_for_every_kind_of_address(site: Site) -> None:
    store = site.publisher.store
    add(site.publisher.settings, store, "weekly", "confirmed@example.org", now=START)
    add(site.publisher.settings, store, "weekly", "left@example.org", now=START)
    site.publisher.remove_subscriber("weekly", "left@example.org")
    bounced = add(site.publisher.settings, store, "weekly", "bounced@example.org", now=START)
    set_status(store, bounced.id, None, SubscriptionStatus.BOUNCED, "550 5.1.1", now=START)
    complained = add(site.publisher.settings, store, "weekly", "complained@example.org", now=START)
    set_status(store, complained.id, None, SubscriptionStatus.COMPLAINED, "fbl", now=START)
    site.sign_up("pending@example.org")
    site.clock.advance(timedelta(hours=1))
    answers = [
        site.sign_up(a)
        for a in (
            "new@example.org",
            "pending@example.org",
            "confirmed@example.org",
            "left@example.org",
            "bounced@example.org",
            "complained@example.org",
        )
    ]
    assert {(r.status_code, r.text) for r in answers} == {(200, answers[0].text)}
    assert "Check your inbox" in answers[0].text
    recipients = sorted(str(m["To"]) for m in site.mails())
    # pending@ twice (the first sign-up, then the resend an hour later); none for confirmed or suppressed.
    assert recipients == ["left@example.org", "new@example.org", "pending@example.org", "pending@example.org"]
    assert site.status("left@example.org") is SubscriptionStatus.PENDING
    assert site.status("bounced@example.org") is SubscriptionStatus.BOUNCED
    assert site.status("complained@example.org") is SubscriptionStatus.COMPLAINED
    assert site.status("confirmed@example.org") is SubscriptionStatus.CONFIRMED


def test_the_answer_goes_out_before_any_work_that_depends_on_the_address(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over a real server: the "check your inbox" page does not wait for the store's
    look-ups of the address or its mail, so its timing cannot tell who subscribes."""
    release = threading.Event()
    real = site.publisher.sign_up

    def held(**fields: Any) -> Any:
        assert release.wait(10), "the test never released the sign-up"
        return real(**fields)

    monkeypatch.setattr(site.publisher, "sign_up", held)
    with Server(site.publisher) as server, httpx.Client(base_url=server.base, timeout=5) as client:
        form = client.get("/subscribe").text
        token = re.search(r'name="csrf" value="([^"]+)"', form)
        assert token
        data = {"csrf": token.group(1), "email": "new@example.org", "language": "en", "list": "weekly"}
        try:
            answer = client.post("/subscribe", data=data)  # times out if it waits for sign_up
        finally:
            release.set()
        assert answer.status_code == 200 and "Check your inbox" in answer.text
        deadline = time.monotonic() + 10
        while not site.mails():
            assert time.monotonic() < deadline, "the confirmation mail was never sent"
            time.sleep(0.05)
    assert [str(m["To"]) for m in site.mails()] == ["new@example.org"]
    assert site.status("new@example.org") is SubscriptionStatus.PENDING


def test_signup_records_consent_and_sends_one_confirmation_mail(site: Site) -> None:
    answer = site.sign_up("Ana@Example.org", "press", "weekly", name="Ana", language="fr")
    assert answer.status_code == 200
    [mail] = site.mails()
    assert mail["From"] == "News <news@example.org>"  # the first chosen list's, in config order
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["List-Unsubscribe"] is None
    assert "Confirmez" in str(mail["Subject"])
    assert mail.get_body(("html",)) is not None
    record = site.publisher.subscriber("Ana@example.org")
    assert {(s.list_slug, s.status) for s in record.lists} == {
        ("weekly", SubscriptionStatus.PENDING),
        ("press", SubscriptionStatus.PENDING),
    }
    [pending] = site.publisher.pending_signups("weekly")
    assert (pending.method, pending.source, pending.language) == ("web", "testclient", "fr")
    assert pending.since == START
    assert pending.consent_text == site.publisher.consent_text("fr")
    assert pending.consent_text in site.client.get("/subscribe?lang=fr").text


def test_confirm_get_changes_nothing_and_post_confirms(site: Site) -> None:
    site.sign_up("bo@example.org", "weekly", "press")
    path = confirm_path(site.mails()[0])
    for method in ("get", "head"):
        shown = getattr(site.client, method)(path)
        assert shown.status_code == 200
    assert site.status("bo@example.org") is SubscriptionStatus.PENDING
    page = site.client.get(path).text
    assert "<button" in page and "bo@example.org" in page
    assert site.client.post(path, data={}).status_code == 403  # no CSRF token
    assert site.client.post(path, data={"csrf": site.csrf()}).status_code == 403  # another form's token
    assert site.status("bo@example.org") is SubscriptionStatus.PENDING
    site.clock.advance(timedelta(minutes=3))
    done = site.client.post(path, data={"csrf": site.csrf(path)})
    assert done.status_code == 200 and "/preferences/" in done.text
    prefs = re.search(r'href="(/preferences/[^"]+)"', done.text)
    assert prefs and site.client.get(prefs.group(1)).status_code == 200
    assert site.status("bo@example.org") is SubscriptionStatus.CONFIRMED
    assert site.status("bo@example.org", "press") is SubscriptionStatus.CONFIRMED
    weekly = next(s for s in site.publisher.subscriber("bo@example.org").lists if s.list_slug == "weekly")
    assert weekly.consent_method == "web" and weekly.consent_source == "testclient"
    with site.publisher.store.engine.connect() as conn:
        row = conn.execute(subscriptions.select().where(subscriptions.c.list_slug == "weekly")).one()
    assert row.confirmed_at == START + timedelta(minutes=3) and row.confirmed_source == "testclient"
    again = site.client.get(path)
    assert again.status_code == 410 and "already used" in again.text and 'href="/subscribe"' in again.text


def test_expired_and_forged_confirmation_links(site: Site) -> None:
    site.sign_up("cy@example.org")
    path = confirm_path(site.mails()[0])
    forged = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    assert site.client.get(forged).status_code == 400
    assert site.client.get("/confirm/not-a-token").status_code == 400
    site.clock.advance(timedelta(days=7, seconds=1))
    expired = site.client.get(path)
    assert expired.status_code == 410 and "expired" in expired.text
    token = path.removeprefix("/confirm/")
    late = site.client.post(path, data={"csrf": site.publisher.form_token(f"confirm:{token}")})
    assert late.status_code == 410 and 'href="/subscribe"' in late.text
    assert site.status("cy@example.org") is SubscriptionStatus.PENDING


def test_resend_after_and_per_ip_limit(
    make_settings: Callable[..., Settings], store_url: str, tmp_path: Path
) -> None:
    settings = make_settings(
        storage={"url": store_url}, lists=LISTS, subscriptions={"resend_after": "10m", "per_ip_per_hour": 3}
    )
    clock = Clock()
    publisher = Publisher(settings, Store(store_url), clock=clock)
    try:
        s = Site(publisher, clock, tmp_path / "outbox")
        assert s.sign_up("dee@example.org").status_code == 200
        clock.advance(timedelta(minutes=5))
        assert s.sign_up("dee@example.org").status_code == 200
        assert len(s.mails()) == 1  # within resend_after: same page, no mail
        clock.advance(timedelta(minutes=6))
        assert s.sign_up("dee@example.org").status_code == 200
        assert len(s.mails()) == 2
        limited = s.sign_up("eve@example.org")
        assert limited.status_code == 429 and "Too many" in limited.text
        assert s.status("eve@example.org") is None and len(s.mails()) == 2
        clock.advance(timedelta(hours=1))
        assert s.sign_up("eve@example.org").status_code == 200
    finally:
        publisher.close()


def test_csrf_missing_or_wrong_stores_nothing(site: Site) -> None:
    base = {"email": "fay@example.org", "list": ["weekly"], "language": "en"}
    assert site.client.post("/subscribe", data=base).status_code == 403
    assert (
        site.client.post("/subscribe", data={**base, "csrf": "AAAAAAAAAAAAAAAAAAAAAAAAAAAA"}).status_code
        == 403
    )
    token = site.csrf()
    site.clock.advance(timedelta(days=2))  # a day-old form is refused too
    assert site.client.post("/subscribe", data={**base, "csrf": token}).status_code == 403
    assert site.status("fay@example.org") is None and site.mails() == []


def test_honeypot_answers_the_same_and_does_nothing(site: Site) -> None:
    trapped = site.sign_up("bot@example.org", website="http://spam.example")
    normal = site.sign_up("human@example.org")
    assert (trapped.status_code, trapped.text) == (normal.status_code, normal.text)
    assert site.status("bot@example.org") is None
    assert [str(m["To"]) for m in site.mails()] == ["human@example.org"]


def test_confirmation_page_has_a_honeypot_and_a_filled_one_confirms_nothing(site: Site) -> None:
    site.sign_up("hal@example.org")
    path = confirm_path(site.mails()[0])
    page = site.client.get(path).text
    form = re.search(r'<form method="post".*?</form>', page, re.S)
    assert form and 'name="website" value=""' in form.group() and 'aria-hidden="true"' in form.group()
    trapped = site.client.post(path, data={"csrf": site.csrf(path), "website": "http://spam.example"})
    assert trapped.status_code == 200 and trapped.text == page  # the same page, its button again
    assert site.status("hal@example.org") is SubscriptionStatus.PENDING
    done = site.client.post(path, data={"csrf": site.csrf(path), "website": ""})
    assert done.status_code == 200 and site.status("hal@example.org") is SubscriptionStatus.CONFIRMED


def test_export_holds_the_whole_consent_record_and_history_of_a_web_signup(site: Site) -> None:
    site.sign_up("ida@example.org", "weekly", language="fr")
    path = confirm_path(site.mails()[0])
    site.clock.advance(timedelta(minutes=2))
    done = site.client.post(path, data={"csrf": site.csrf(path)})
    prefs = re.search(r'href="(/preferences/[^"]+)"', done.text)
    assert prefs
    exported = site.client.get(f"{prefs.group(1)}/export")
    assert exported.status_code == 200
    [weekly] = exported.json()["subscriptions"]
    confirmed = (START + timedelta(minutes=2)).isoformat()
    assert weekly["consent"] == {
        "at": START.isoformat(),
        "method": "web",
        "source": "testclient",
        "text": site.publisher.consent_text("fr"),
        "language": "fr",
        "confirmed_at": confirmed,
        "confirmed_source": "testclient",
    }
    assert weekly["events"] == [
        {"at": START.isoformat(), "list": "weekly", "event": "pending", "detail": "web: testclient"},
        {"at": confirmed, "list": "weekly", "event": "confirmed", "detail": "web confirmation: testclient"},
    ]
    # `subscribers show` prints the same record.
    shown = record_text(site.publisher.subscriber("ida@example.org"), site.publisher.settings)
    assert f"  consent text (fr): {site.publisher.consent_text('fr')}" in shown
    assert "  confirmed: 2026-11-25T10:02:00+01:00 testclient" in shown


def test_malformed_address_shows_the_form_again_with_the_fields(site: Site) -> None:
    answer = site.sign_up("not an address", "press", name="Gil", language="es")
    assert answer.status_code == 422
    assert 'value="not an address"' in answer.text and 'value="Gil"' in answer.text
    assert 'value="press" checked' in answer.text and '<option value="es" selected>' in answer.text
    assert 'role="alert"' in answer.text and 'aria-invalid="true"' in answer.text
    assert site.mails() == []


def test_private_list_cannot_be_joined_by_a_forged_post(site: Site) -> None:
    answer = site.sign_up("hal@example.org", "staff")
    assert answer.status_code == 422
    site.sign_up("hal@example.org", "staff", "weekly")
    assert site.status("hal@example.org", "staff") is None
    assert site.status("hal@example.org", "weekly") is SubscriptionStatus.PENDING


def test_stale_pending_signups_are_purged_by_ingest(site: Site) -> None:
    store = site.publisher.store
    add(site.publisher.settings, store, "press", "kept@example.org", now=START)
    site.publisher.remove_subscriber("press", "kept@example.org")
    add(site.publisher.settings, store, "weekly", "confirmed@example.org", now=START)
    site.sign_up("kept@example.org", "press", "weekly")
    site.sign_up("gone@example.org")
    site.sign_up("confirmed@example.org", "weekly")
    site.clock.advance(timedelta(days=6))
    site.publisher.ingest()
    assert site.status("gone@example.org") is SubscriptionStatus.PENDING
    site.clock.advance(timedelta(days=1, seconds=1))
    site.publisher.ingest()
    assert store.subscribers.find_id("gone@example.org") is None
    assert site.status("kept@example.org", "press") is SubscriptionStatus.UNSUBSCRIBED
    assert site.status("kept@example.org", "weekly") is None
    assert site.status("confirmed@example.org") is SubscriptionStatus.CONFIRMED
    assert site.publisher.pending_signups() == []


def test_index_has_a_signup_box_for_public_lists(site: Site) -> None:
    site.publisher.build()
    index = (site.publisher.settings.feeds.output_dir / "index.html").read_text()
    assert 'action="http://127.0.0.1:8080/subscribe"' in index and 'method="get"' in index
    assert 'value="weekly"' in index and "staff" not in index


def test_cli_pending_and_confirm(site: Site, tmp_path: Path) -> None:
    site.sign_up("ida@example.org", "weekly", "press", language="es")
    config = tmp_path / "config.toml"
    _write_config(config, site.publisher.settings)
    runner = CliRunner()
    listed = runner.invoke(cli, ["--config", str(config), "subscribers", "pending", "--json"])
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.output)
    assert (row["email"], sorted(row["lists"])) == ("ida@example.org", ["press", "weekly"])
    assert row["consent"]["method"] == "web" and row["consent"]["language"] == "es"
    assert row["since"] == START.isoformat()
    one = runner.invoke(cli, ["--config", str(config), "subscribers", "pending", "press"])
    assert one.exit_code == 0 and "ida@example.org" in one.output and "weekly" not in one.output
    done = runner.invoke(
        cli, ["--config", str(config), "subscribers", "confirm", "ida@example.org", "weekly"]
    )
    assert done.exit_code == 0, done.output
    assert site.status("ida@example.org") is SubscriptionStatus.CONFIRMED
    weekly = next(s for s in site.publisher.subscriber("ida@example.org").lists if s.list_slug == "weekly")
    assert weekly.consent_method == "admin"
    unknown = runner.invoke(
        cli, ["--config", str(config), "subscribers", "confirm", "nobody@example.org", "weekly"]
    )
    assert unknown.exit_code == 1 and "not pending" in unknown.output


def test_confirmation_goes_through_smtp_when_configured(
    make_settings: Callable[..., Settings], store_url: str, smtp_server: SmtpSink
) -> None:
    settings = make_settings(
        storage={"url": store_url},
        lists=LISTS,
        smtp={"host": smtp_server.host, "port": smtp_server.port},
    )
    clock = Clock()
    publisher = Publisher(settings, Store(store_url), clock=clock)
    try:
        s = Site(publisher, clock, Path("/nonexistent"))
        assert s.sign_up("jo@example.org", "press").status_code == 200
        [received] = smtp_server.accepted()
        assert received.mail_from == "press@example.org" and received.rcpt_tos == ["jo@example.org"]
        assert "/confirm/" in received.data.decode()
    finally:
        publisher.close()


def _write_config(path: Path, settings: Settings) -> None:
    """The test's store, outbox and lists as a config file the CLI can load."""
    lists = "".join(
        f'[[lists]]\nslug = "{lst.slug}"\nname = "{lst.name}"\nsender = "{lst.sender}"\n'
        f"public = {str(lst.public).lower()}\n"
        for lst in settings.lists
    )
    path.write_text(
        f'[site]\npostal_address = "{settings.site.postal_address}"\n'
        f'[storage]\nurl = "{settings.storage.url}"\n[outbox]\npath = "{settings.outbox.path}"\n'
        f'[feeds]\noutput_dir = "{settings.feeds.output_dir}"\n{lists}'
    )


def _form_csrf(page: str, action: str) -> str | None:
    """The CSRF token of the page's form offering ``action`` (None: no such form)."""
    for form in re.findall(r"<form .*?</form>", page, re.S):
        if f'value="{action}"' in form:
            found = re.search(r'name="csrf" value="([^"]+)"', form)
            return found.group(1) if found else None
    return None


def test_a_bounce_recorded_while_unsubscribed_stops_every_web_join_until_unsuppressed(site: Site) -> None:
    """The reviewer's path: left weekly, then suppressed by hand as bounced. Neither the
    mailed unsubscribe page, nor the preferences page, nor the sign-up form joins it back
    or mails it; ``unsuppress`` returns weekly to unsubscribed, which can be undone again."""
    from tests.test_web import token_for

    pub, client = site.publisher, site.client
    add(pub.settings, pub.store, "weekly", "evil@example.org", now=START)
    unsubscribe = f"/unsubscribe/{token_for(pub, 'evil@example.org', 'weekly')}"
    preferences = f"/preferences/{token_for(pub, 'evil@example.org', 'weekly', 'preferences')}"
    left = client.post(unsubscribe, data={"csrf": site.csrf(unsubscribe), "confirm": "yes", "website": ""})
    stale = _form_csrf(left.text, "resubscribe")  # the page's "Subscribe again" form, kept open
    assert stale and site.status("evil@example.org") is SubscriptionStatus.UNSUBSCRIBED

    assert pub.suppress_subscriber("evil@example.org", SubscriptionStatus.BOUNCED, "dead") == ("weekly",)
    assert site.status("evil@example.org") is SubscriptionStatus.BOUNCED

    page = client.get(unsubscribe).text
    assert "Subscribe again" not in page and _form_csrf(page, "resubscribe") is None
    assert "Mail to this address was stopped after failed deliveries or a complaint" in page
    again = client.post(unsubscribe, data={"csrf": stale, "action": "resubscribe", "website": ""})
    assert again.status_code == 200 and "You are subscribed to Weekly digest again" not in again.text
    assert "You are not subscribed to Weekly digest" in again.text
    assert site.status("evil@example.org") is SubscriptionStatus.BOUNCED

    form = client.get(preferences).text
    assert re.search(r'id="list-press"[^>]* disabled', form)
    assert re.search(r'id="list-weekly"[^>]* disabled', form)
    data = {"csrf": site.csrf(preferences), "list": ["press", "weekly"], "website": ""}
    assert client.post(preferences, data=data).status_code == 200
    assert site.status("evil@example.org", "press") is None
    assert site.status("evil@example.org") is SubscriptionStatus.BOUNCED

    assert site.sign_up("evil@example.org", "weekly", "press").status_code == 200  # the same answer
    assert site.mails() == []  # nothing sent
    assert site.status("evil@example.org", "press") is None  # nothing stored

    restored = pub.unsuppress_subscriber("evil@example.org", "asked")
    assert restored == {"weekly": SubscriptionStatus.UNSUBSCRIBED}
    page = client.get(unsubscribe).text
    token = _form_csrf(page, "resubscribe")
    assert token and "Mail to this address was stopped" not in page
    back = client.post(unsubscribe, data={"csrf": token, "action": "resubscribe", "website": ""})
    assert "You are subscribed to Weekly digest again" in back.text
    assert site.status("evil@example.org") is SubscriptionStatus.CONFIRMED


def test_a_bounce_report_marks_lists_the_address_had_left_and_lifting_restores_them(site: Site) -> None:
    """The delivery ledger's bounce (``set_status`` for every list) follows the same rule."""
    pub = site.publisher
    ann = add(pub.settings, pub.store, "weekly", "ann@example.org", now=START)
    add(pub.settings, pub.store, "press", "ann@example.org", now=START)
    pub.remove_subscriber("press", "ann@example.org")
    set_status(pub.store, ann.id, None, SubscriptionStatus.BOUNCED, "550 5.1.1", now=START)
    assert site.status("ann@example.org", "press") is SubscriptionStatus.BOUNCED
    assert pub.unsuppress_subscriber("ann@example.org") == {
        "press": SubscriptionStatus.UNSUBSCRIBED,
        "weekly": SubscriptionStatus.CONFIRMED,
    }
