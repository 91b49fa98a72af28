"""The web app over a real HTTP server: feed serving and the subscriber pages.

uvicorn serves the Starlette app on a free loopback port in a thread; requests go
through httpx, and the unsubscribe flow is also clicked through in real Chromium.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import httpx
import pytest
import uvicorn

from publisher.app import Publisher
from publisher.config import Settings
from publisher.models import Item, SubscriptionStatus
from publisher.store import Store
from publisher.subscriptions import add
from publisher.tokens import make_token
from publisher.web.app import create_app
from tests.smtp_server import free_port

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
LISTS = [
    {"slug": "weekly", "name": "Weekly digest", "sender": "News <news@example.org>"},
    {"slug": "press", "name": "Press releases", "sender": "Press <press@example.org>"},
]


class Server:
    def __init__(self, publisher: Publisher) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(publisher), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def publisher(make_settings: Callable[..., Settings], store_url: str) -> Iterator[Publisher]:
    settings = make_settings(storage={"url": store_url}, lists=LISTS)
    pub = Publisher(settings, Store(store_url), clock=lambda: NOW)
    yield pub
    pub.close()


@pytest.fixture
def server(publisher: Publisher) -> Iterator[Server]:
    with Server(publisher) as s:
        yield s


def token_for(pub: Publisher, email: str, list_slug: str, purpose: str = "unsubscribe") -> str:
    sid = pub.store.subscribers.find_id(email)
    assert sid is not None
    secret = pub.store.subscribers.secret(sid)
    assert secret
    return make_token(sid, list_slug, purpose, secret)


def status_of(pub: Publisher, email: str, list_slug: str) -> SubscriptionStatus:
    sid = pub.store.subscribers.find_id(email)
    assert sid is not None
    return pub.store.subscribers.statuses(sid)[list_slug]


def test_feeds_are_served_with_media_types_and_conditional_get(publisher: Publisher, server: Server) -> None:
    publisher.store.items.save(
        [
            Item(
                id="urn:x:1",
                source="t",
                title="One",
                link="https://example.org/1",
                published=NOW,
                updated=NOW,
                language="en",
                category="news",
                label="News",
                content_hash="a",
            )
        ],
        [],
        NOW,
    )
    publisher.build()
    with httpx.Client(base_url=server.base) as client:
        expected = {
            "/feeds/all.rss.xml": "application/rss+xml",
            "/feeds/news.atom.xml": "application/atom+xml",
            "/feeds/all.json": "application/feed+json",
            "/feeds.opml": "text/x-opml",
            "/": "text/html",
        }
        for path, media_type in expected.items():
            r = client.get(path)
            assert r.status_code == 200, path
            assert r.headers["content-type"].startswith(media_type), path
        r = client.get("/feeds/all.atom.xml")
        etag, modified = r.headers["etag"], r.headers["last-modified"]
        assert client.get("/feeds/all.atom.xml", headers={"if-none-match": etag}).status_code == 304
        assert client.get("/feeds/all.atom.xml", headers={"if-modified-since": modified}).status_code == 304
        publisher.build()  # nothing new: the file is not rewritten, validators still hold
        assert client.get("/feeds/all.atom.xml", headers={"if-none-match": etag}).status_code == 304
        assert client.get("/feeds/nope.rss.xml").status_code == 404
        assert client.get("/.feeds-state.json").status_code == 404  # build state stays private


def test_unsubscribe_get_changes_nothing_post_unsubscribes(publisher: Publisher, server: Server) -> None:
    add(publisher.store, publisher.settings, "weekly", "ann@example.org", "Ann", "en")
    url = f"{server.base}/unsubscribe/{token_for(publisher, 'ann@example.org', 'weekly')}"
    page = httpx.get(url)
    assert page.status_code == 200 and "Unsubscribe from Weekly digest?" in page.text
    assert "<form" in page.text and 'method="post"' in page.text
    assert status_of(publisher, "ann@example.org", "weekly") == SubscriptionStatus.CONFIRMED

    r = httpx.post(
        url,
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200 and "You are unsubscribed" in r.text
    assert status_of(publisher, "ann@example.org", "weekly") == SubscriptionStatus.UNSUBSCRIBED
    assert httpx.post(url, content=b"List-Unsubscribe=One-Click").status_code == 200  # idempotent
    events = publisher.store.subscribers.record(publisher.store.subscribers.find_id("ann@example.org") or 0)
    assert events is not None and "one-click" in str(events)


def test_forged_or_altered_token_changes_nothing(publisher: Publisher, server: Server) -> None:
    add(publisher.store, publisher.settings, "weekly", "ann@example.org", "Ann", "fr")
    good = token_for(publisher, "ann@example.org", "weekly")
    tampered = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    other_purpose = token_for(publisher, "ann@example.org", "weekly", "preferences")
    for bad in (tampered, "garbage", other_purpose, good[:10]):
        r = httpx.post(f"{server.base}/unsubscribe/{bad}", content=b"List-Unsubscribe=One-Click")
        assert r.status_code == 400, bad
        assert "This link is not valid" in r.text
    assert status_of(publisher, "ann@example.org", "weekly") == SubscriptionStatus.CONFIRMED


def test_pages_speak_the_subscriber_language(publisher: Publisher, server: Server) -> None:
    add(publisher.store, publisher.settings, "weekly", "carlos@example.org", "Carlos", "es")
    url = f"{server.base}/unsubscribe/{token_for(publisher, 'carlos@example.org', 'weekly')}"
    assert "¿Darse de baja de Weekly digest?" in httpx.get(url).text


def test_preferences_page_switches_lists(publisher: Publisher, server: Server) -> None:
    add(publisher.store, publisher.settings, "weekly", "ann@example.org", "Ann", "en")
    add(publisher.store, publisher.settings, "press", "ann@example.org", "Ann", "en")
    url = f"{server.base}/preferences/{token_for(publisher, 'ann@example.org', 'weekly', 'preferences')}"
    page = httpx.get(url)
    assert page.status_code == 200 and "Weekly digest" in page.text and "Press releases" in page.text
    r = httpx.post(url, data={"list": ["press"]})
    assert r.status_code == 200 and "Your preferences are saved." in r.text
    assert status_of(publisher, "ann@example.org", "weekly") == SubscriptionStatus.UNSUBSCRIBED
    assert status_of(publisher, "ann@example.org", "press") == SubscriptionStatus.CONFIRMED


CHROMIUM = "/usr/bin/chromium"


@pytest.mark.browser
def test_unsubscribe_by_clicking_in_chromium(publisher: Publisher, server: Server) -> None:
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} missing: `make test` installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} missing")
    from playwright.sync_api import sync_playwright

    add(publisher.store, publisher.settings, "weekly", "ann@example.org", "Ann", "en")
    url = f"{server.base}/unsubscribe/{token_for(publisher, 'ann@example.org', 'weekly')}"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        page = browser.new_page()
        page.goto(url)
        assert status_of(publisher, "ann@example.org", "weekly") == SubscriptionStatus.CONFIRMED
        page.get_by_role("button", name="Unsubscribe").click()
        page.wait_for_selector("text=You are unsubscribed")
        browser.close()
    assert status_of(publisher, "ann@example.org", "weekly") == SubscriptionStatus.UNSUBSCRIBED
