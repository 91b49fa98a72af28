"""Requirements of issues 9 and 10 that no other test checked (see /work/notes/REQ-COVERAGE.md).

- Issue 9: "every page is a Jinja2 template an admin can override, sandboxed". Only the
  older unsubscribe page (``web/subscription.html.j2``) had an override test; these check
  the sign-up page, the confirmation mail and the archive pages the issue added: an
  override is used, and a hostile one runs nothing.
- Issue 10: "Without ``[bounces]``, the envelope sender is the list's sender as today".
  The VERP tests only ever ran with ``[bounces]`` set.

Real peers: the ASGI app in-process (Starlette's TestClient, as tests/test_signup.py),
the Maildir outbox, aiosmtpd on loopback, SQLite and PostgreSQL stores.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from email.utils import parseaddr
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from publisher.app import Publisher
from publisher.config import Settings
from publisher.errors import TemplateError
from publisher.models import SubscriptionStatus
from publisher.store import Store
from publisher.subscriptions import add
from publisher.web.app import create_app
from tests import test_archive, test_digests, test_signup
from tests.smtp_server import SmtpSink

#: A Jinja2 sandbox escape: in an unsandboxed environment it runs a shell command.
ESCAPE = "{{{{ cycler.__init__.__globals__.os.popen('touch {marker}; id').read() }}}}"


def _overrides(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "my-templates"
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


def _signup_site(make_settings: Callable[..., Settings], store_url: str, templates: Path) -> test_signup.Site:
    settings = make_settings(
        storage={"url": store_url}, lists=test_signup.LISTS, templates={"path": str(templates)}
    )
    clock = test_signup.Clock()
    publisher = Publisher(settings, Store(store_url), clock=clock)
    return test_signup.Site(publisher, clock, settings.outbox.path)


# -- issue 9: the new pages and mails are overridable and sandboxed --------------------------------


def test_an_override_of_the_signup_page_is_shown(
    make_settings: Callable[..., Settings], store_url: str, tmp_path: Path
) -> None:
    templates = _overrides(
        tmp_path,
        {
            "web/signup.html.j2": (
                '{% extends "default:web/signup.html.j2" %}'
                "{% block body %}<p>Our own sign-up words</p>{{ super() }}{% endblock %}"
            )
        },
    )
    site = _signup_site(make_settings, store_url, templates)
    try:
        page = site.client.get("/subscribe?lang=fr")
        assert page.status_code == 200
        assert "<p>Our own sign-up words</p>" in page.text
        assert 'name="csrf"' in page.text and 'value="weekly"' in page.text  # the built-in form still there
        assert site.sign_up("ann@example.org").status_code == 200  # and still works
        assert [str(m["To"]) for m in site.mails()] == ["ann@example.org"]
    finally:
        site.publisher.close()


def test_a_hostile_override_of_the_signup_page_runs_nothing(
    make_settings: Callable[..., Settings], store_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "payload-ran"
    templates = _overrides(tmp_path, {"web/signup.html.j2": ESCAPE.format(marker=marker)})
    site = _signup_site(make_settings, store_url, templates)
    try:
        page = site.client.get("/subscribe")
    finally:
        site.publisher.close()
    assert not marker.exists(), "the template ran a shell command"
    assert page.status_code == 500 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert "template has an error" in page.text
    assert "uid=" not in page.text and "Traceback" not in page.text
    assert "signup.html.j2, line 1: not allowed in a template" in caplog.text


def test_an_override_of_the_confirmation_mail_is_sent(
    make_settings: Callable[..., Settings], store_url: str, tmp_path: Path
) -> None:
    templates = _overrides(
        tmp_path, {"email/confirm.txt.j2": "Please confirm here, {{ name }}: {{ confirm_url }}\n"}
    )
    site = _signup_site(make_settings, store_url, templates)
    try:
        assert site.sign_up("bo@example.org", name="Bo").status_code == 200
        (mail,) = site.mails()
        text = mail.get_body(("plain",))
        assert text is not None
        assert str(text.get_content()).startswith("Please confirm here, Bo: http://127.0.0.1:8080/confirm/")
        path = test_signup.confirm_path(mail)  # the overridden link still confirms
        confirmed = site.client.post(path, data={"csrf": site.csrf(path)})
        assert confirmed.status_code == 200
        assert site.status("bo@example.org") is SubscriptionStatus.CONFIRMED
    finally:
        site.publisher.close()


def test_a_hostile_override_of_the_confirmation_mail_runs_nothing(
    make_settings: Callable[..., Settings], store_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "payload-ran"
    templates = _overrides(tmp_path, {"email/confirm.txt.j2": ESCAPE.format(marker=marker)})
    site = _signup_site(make_settings, store_url, templates)
    site.client = TestClient(create_app(site.publisher), raise_server_exceptions=False)  # as a server answers
    try:
        answer = site.client.post(
            "/subscribe",
            data={
                "csrf": site.csrf(),
                "email": "cy@example.org",
                "name": "",
                "language": "en",
                "list": ["weekly"],
            },
        )
    finally:
        site.publisher.close()
    assert not marker.exists(), "the template ran a shell command"
    # The answer goes out before the sign-up's work (the same page for every address), so
    # the broken template shows only in the log; nothing is stored and nothing is sent.
    assert answer.status_code == 200
    assert "uid=" not in answer.text and "Traceback" not in answer.text
    assert site.mails() == []  # nothing half-rendered went out
    assert site.status("cy@example.org") is None  # not left pending with no mail


def test_overrides_of_the_archive_pages_are_written_and_sandboxed(
    make_settings: Callable[..., Settings], store_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "payload-ran"
    good = _overrides(
        tmp_path,
        {
            "web/archive_list.html.j2": (
                '{% extends "default:web/archive_list.html.j2" %}'
                "{% block body %}<p>Past issues, kept by us</p>{{ super() }}{% endblock %}"
            ),
        },
    )
    settings = make_settings(
        storage={"url": store_url},
        lists=test_archive.LISTS,
        schedules=test_archive.SCHEDULES,
        delivery={"journal_dir": str(tmp_path / "journal")},
        templates={"path": str(good)},
    )
    pub = Publisher(settings, Store(store_url), clock=test_archive.Clock(test_archive.NOW))
    try:
        pub.store.items.save(
            [test_archive.item(1, test_archive.NOW - timedelta(days=1))], [], test_archive.NOW
        )
        test_archive.subscribe(pub, "weekly")
        test_archive.send(pub)
        (listing,) = test_archive.get(pub, ("GET", "/archive/weekly/", {}))
        assert listing.status_code == 200
        assert "<p>Past issues, kept by us</p>" in listing.text
        (issue,) = pub.store.issues.sent_issues("weekly")
        assert test_archive.page_path(issue.period_key) in listing.text  # the built-in list is still there

        (good / "web" / "archive_list.html.j2").write_text(ESCAPE.format(marker=marker), encoding="utf-8")
        with pytest.raises(TemplateError, match=r"archive_list\.html\.j2, line 1: not allowed in a template"):
            pub.build()
        assert not marker.exists(), "the template ran a shell command"
    finally:
        pub.close()


# -- issue 10: without [bounces], the envelope sender is the list's sender -------------------------


def test_without_bounces_the_envelope_sender_is_the_lists_sender(
    make_settings: Callable[..., Settings], tmp_path: Path, store_url: str, smtp_server: SmtpSink
) -> None:
    settings = make_settings(
        storage={"url": store_url},
        lists=test_digests.LISTS,
        schedules=test_digests.SCHEDULES,
        delivery={"journal_dir": str(tmp_path / "journal")},
        smtp=smtp_server.config(),
    )
    assert settings.bounces is None
    now = test_archive.NOW
    pub = Publisher(settings, Store(store_url), clock=test_archive.Clock(now + timedelta(minutes=5)))
    readers = ["reader0@example.org", "reader1@example.org"]
    try:
        fresh = now - timedelta(hours=1)
        pub.store.items.save(
            [test_digests.item(1, fresh), test_digests.item(2, fresh, "press-releases")], [], now
        )
        for address in readers:
            add(pub.settings, pub.store, "weekly", address, "Reader", "en", now=pub.clock())
        add(pub.settings, pub.store, "press", readers[0], "Reader", "en", now=pub.clock())
        assert asyncio.run(pub.send_digest("weekly")).sent == 2
        assert asyncio.run(pub.send_digest("press")).sent == 1
    finally:
        pub.close()
    senders = {slug: parseaddr(settings.list_config(slug).sender)[1] for slug in ("weekly", "press")}
    received = smtp_server.accepted()
    assert received, "nothing reached the SMTP server"
    for message in received:
        assert message.mail_from in senders.values(), message.mail_from
        assert "+" not in message.mail_from  # no VERP token without [bounces]
    assert sorted(m.mail_from for m in smtp_server.accepted_for(readers[0])) == sorted(senders.values())
    assert [m.mail_from for m in smtp_server.accepted_for(readers[1])] == [senders["weekly"]]
