"""The web app over a real HTTP server: feed serving and the subscriber pages.

uvicorn serves the Starlette app on a free loopback port in a thread, configured by
the same ``server_config`` as ``publisher serve`` and ``run``; requests go through
httpx or raw sockets (to play slow clients), and the unsubscribe flow is also clicked
through in real Chromium.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp

from publisher.app import Publisher
from publisher.config import Settings
from publisher.models import Item, SubscriptionStatus
from publisher.store import Store
from publisher.subscriptions import SubscriberRecord, add, forget, set_status
from publisher.tokens import MAX_SUBSCRIBER_ID, make_form_token, make_token
from publisher.web.app import create_app
from publisher.web.server import server_config
from publisher.web.subscribers import form_name
from tests.slow_clients import seconds_until_closed
from tests.smtp_server import free_port

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
LISTS = [
    {"slug": "weekly", "name": "Weekly digest", "sender": "News <news@example.org>"},
    {"slug": "press", "name": "Press releases", "sender": "Press <press@example.org>"},
]


class Server:
    """The web app under uvicorn on a free loopback port, with ``serve``'s settings.

    ``app`` defaults to :func:`create_app`; the admin tests pass ``ServedApp``.
    """

    def __init__(self, publisher: Publisher, app: ASGIApp | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = server_config(
            app or create_app(publisher), publisher.settings.web, host="127.0.0.1", port=self.port
        )
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


_FORM = re.compile(
    r'<form method="post" action="(?P<action>[^"]+)">\s*'
    r'<input type="hidden" name="csrf" value="(?P<csrf>[^"]*)">'
)


def csrf_of(url: str, action: str | None = None) -> str:
    """The CSRF token of the page at ``url``'s form posting to ``action`` (default: the page itself)."""
    target = action or httpx.URL(url).path
    tokens = {m["action"]: m["csrf"] for m in _FORM.finditer(httpx.get(url).text)}
    assert tokens.get(target), f"no form to {target} with a CSRF token on {url}: {tokens}"
    return tokens[target]


def submit(url: str, data: dict[str, str | list[str]], *, page: str | None = None) -> httpx.Response:
    """POST ``data`` to ``url`` as its form does: with the token of the page (``page``, default ``url``)."""
    token = csrf_of(page or url, httpx.URL(url).path)
    return httpx.post(url, data={**data, "csrf": token, "website": ""})


def test_feeds_are_served_with_media_types_and_conditional_get(publisher: Publisher, server: Server) -> None:
    publisher.store.items.save(
        [
            Item(
                id="urn:x:1",
                source="sample",
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


def test_a_multipart_one_click_post_is_recorded_as_one_click(publisher: Publisher, server: Server) -> None:
    """RFC 8058 allows the one-click body as multipart/form-data too."""
    add(publisher.settings, publisher.store, "weekly", "bo@example.org", "Bo", "en", now=publisher.clock())
    url = f"{server.base}/unsubscribe/{token_for(publisher, 'bo@example.org', 'weekly')}"
    r = httpx.post(url, files={"List-Unsubscribe": (None, "One-Click")})
    assert (
        r.status_code == 200
        and status_of(publisher, "bo@example.org", "weekly") == SubscriptionStatus.UNSUBSCRIBED
    )
    record = publisher.store.subscribers.record(publisher.store.subscribers.find_id("bo@example.org") or 0)
    assert record is not None and record.events[-1].detail == "one-click: 127.0.0.1"


def test_unsubscribe_get_changes_nothing_post_unsubscribes(publisher: Publisher, server: Server) -> None:
    add(publisher.settings, publisher.store, "weekly", "ann@example.org", "Ann", "en", now=publisher.clock())
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
    add(publisher.settings, publisher.store, "weekly", "ann@example.org", "Ann", "fr", now=publisher.clock())
    good = token_for(publisher, "ann@example.org", "weekly")
    tampered = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    other_purpose = token_for(publisher, "ann@example.org", "weekly", "preferences")
    for bad in (tampered, "garbage", other_purpose, good[:10]):
        r = httpx.post(f"{server.base}/unsubscribe/{bad}", content=b"List-Unsubscribe=One-Click")
        assert r.status_code == 400, bad
        assert "This link is not valid" in r.text
    assert status_of(publisher, "ann@example.org", "weekly") == SubscriptionStatus.CONFIRMED


def test_pages_speak_the_subscriber_language(publisher: Publisher, server: Server) -> None:
    add(
        publisher.settings,
        publisher.store,
        "weekly",
        "carlos@example.org",
        "Carlos",
        "es",
        now=publisher.clock(),
    )
    url = f"{server.base}/unsubscribe/{token_for(publisher, 'carlos@example.org', 'weekly')}"
    page = httpx.get(url).text
    assert "¿Darse de baja de Weekly digest?" in page
    assert '<html lang="es">' in page  # screen readers and translators read the page as Spanish


def test_preferences_page_switches_lists(publisher: Publisher, server: Server) -> None:
    add(publisher.settings, publisher.store, "weekly", "ann@example.org", "Ann", "en", now=publisher.clock())
    add(publisher.settings, publisher.store, "press", "ann@example.org", "Ann", "en", now=publisher.clock())
    url = f"{server.base}/preferences/{token_for(publisher, 'ann@example.org', 'weekly', 'preferences')}"
    page = httpx.get(url)
    assert page.status_code == 200 and "Weekly digest" in page.text and "Press releases" in page.text
    r = submit(url, {"list": ["press"]})
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

    add(publisher.settings, publisher.store, "weekly", "ann@example.org", "Ann", "en", now=publisher.clock())
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


LONG_WORD = "Sozialversicherungs" * 6 + "x"  # 115 letters and no break opportunity
LONG_URL = "https://www.example.org/news/" + "a" * 120
LONG_ADDRESS = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + ".example.org"  # valid, 204 characters


def test_long_unbroken_words_and_addresses_do_not_scroll_sideways_at_375_px_in_chromium(
    publisher: Publisher, server: Server
) -> None:
    """An item with a 120-character word or URL on the index, a long (valid) address on the
    confirmation, unsubscribe and preferences pages: each page wraps, never wider than 375 px."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} missing: `make test` installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} missing")
    import email
    import email.policy

    from playwright.sync_api import sync_playwright

    publisher.store.items.save(
        [
            Item(
                id="urn:x:long",
                source="sample",
                title=f"Title {LONG_WORD}",
                summary=f"<p>{LONG_WORD} and {LONG_URL}</p>",
                link=LONG_URL,
                published=NOW,
                updated=NOW,
                language="en",
                category="news",
                label="News",
                content_hash="long",
            )
        ],
        [],
        NOW,
    )
    publisher.build()
    signup = publisher.sign_up(email=LONG_ADDRESS, name="", language="en", lists=["weekly"], client="test")
    assert signup.mail is not None
    mail = email.message_from_bytes(signup.mail.data, policy=email.policy.default)
    body = mail.get_body(("plain",))  # type: ignore[attr-defined]
    confirm = re.search(r"(/confirm/\S+)", body.get_content())
    assert confirm
    add(publisher.settings, publisher.store, "press", LONG_ADDRESS, "", "en", now=NOW)
    pages = {
        "index": "/",
        "confirm": confirm.group(1),
        "unsubscribe": f"/unsubscribe/{token_for(publisher, LONG_ADDRESS, 'press')}",
        "preferences": f"/preferences/{token_for(publisher, LONG_ADDRESS, 'press', 'preferences')}",
    }
    widths: dict[str, int] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 375, "height": 800})
        for name, path in pages.items():
            page.goto(server.base + path)
            assert LONG_ADDRESS in page.content() or name == "index"
            widths[name] = page.evaluate("document.documentElement.scrollWidth")
        browser.close()
    assert widths == dict.fromkeys(pages, 375)


# -- issue 7: hostile requests change nothing ---------------------------------------------


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base) as c:
        yield c


def statuses_of(pub: Publisher, email: str) -> dict[str, SubscriptionStatus]:
    sid = pub.store.subscribers.find_id(email)
    assert sid is not None
    return pub.store.subscribers.statuses(sid)


def test_after_unsubscribing_the_page_offers_to_subscribe_again_and_a_used_link_says_so(
    publisher: Publisher, server: Server
) -> None:
    add(publisher.settings, publisher.store, "weekly", "ann@example.org", "Ann", "en", now=publisher.clock())
    url = f"{server.base}/unsubscribe/{token_for(publisher, 'ann@example.org', 'weekly')}"
    preferences = f"/preferences/{token_for(publisher, 'ann@example.org', 'weekly', 'preferences')}"

    done = submit(url, {"confirm": "yes"})
    assert done.status_code == 200 and "You will no longer receive Weekly digest." in done.text
    assert 'name="action" value="resubscribe"' in done.text and preferences in done.text
    assert status_of(publisher, "ann@example.org", "weekly") == SubscriptionStatus.UNSUBSCRIBED

    again = httpx.get(url)  # the same link reopened: not the same button again
    assert "You are not subscribed to Weekly digest" in again.text and "Subscribe again" in again.text
    assert httpx.head(url).status_code == 200
    assert status_of(publisher, "ann@example.org", "weekly") == SubscriptionStatus.UNSUBSCRIBED

    back = submit(url, {"action": "resubscribe"})  # proven by its own link: no second mail
    assert back.status_code == 200 and "You are subscribed to Weekly digest again" in back.text
    assert status_of(publisher, "ann@example.org", "weekly") == SubscriptionStatus.CONFIRMED
    assert "Unsubscribe from Weekly digest?" in httpx.get(url).text


def test_head_on_unsubscribe_and_preferences_links_changes_nothing(
    publisher: Publisher, server: Server
) -> None:
    add(publisher.settings, publisher.store, "weekly", "ann@example.org", "Ann", "en", now=publisher.clock())
    add(publisher.settings, publisher.store, "press", "ann@example.org", "Ann", "en", now=publisher.clock())
    urls = [
        f"{server.base}/{purpose}/{token_for(publisher, 'ann@example.org', 'weekly', purpose)}"
        for purpose in ("unsubscribe", "preferences")
    ]
    heads = [httpx.head(url) for url in urls]
    assert statuses_of(publisher, "ann@example.org") == {
        "press": SubscriptionStatus.CONFIRMED,
        "weekly": SubscriptionStatus.CONFIRMED,
    }
    for url, head in zip(urls, heads, strict=True):
        get = httpx.get(url)  # the page a HEAD describes: same status and headers, no body
        assert head.status_code == get.status_code == 200, url
        assert head.content == b"", url
        assert head.headers["content-length"] == get.headers["content-length"] == str(len(get.content))
        assert head.headers["content-type"] == get.headers["content-type"]


def test_override_page_template_cannot_run_commands(
    make_settings: Callable[..., Settings], store_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "payload-ran"
    overrides = tmp_path / "my-templates"
    (overrides / "web").mkdir(parents=True)
    (overrides / "web" / "subscription.html.j2").write_text(
        "{{ cycler.__init__.__globals__.os.popen('touch " + str(marker) + "; id').read() }}", encoding="utf-8"
    )
    settings = make_settings(storage={"url": store_url}, lists=LISTS, templates={"path": str(overrides)})
    pub = Publisher(settings, Store(store_url), clock=lambda: NOW)
    try:
        add(pub.settings, pub.store, "weekly", "ann@example.org", "Ann", "en", now=pub.clock())
        with Server(pub) as server, httpx.Client(base_url=server.base) as c:
            r = c.get(f"/unsubscribe/{token_for(pub, 'ann@example.org', 'weekly')}")
            invalid = c.get("/unsubscribe/garbage")
    finally:
        pub.close()
    assert not marker.exists(), "the template ran a shell command"
    for response in (r, invalid):
        assert response.status_code == 500
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert "template has an error" in response.text
        assert "uid=" not in response.text and "Traceback" not in response.text
    assert "subscription.html.j2, line 1: not allowed in a template" in caplog.text


def _raw_token(ident: str, list_slug: str, purpose: str, secret: str) -> str:
    """A token spelled like tokens.make_token does, for ids make_token refuses."""
    payload = f"{ident}.{list_slug}.{purpose}".encode("ascii")
    mac = hmac.digest(secret.encode(), b"publisher-token-v1\x00" + payload, hashlib.sha256)[:16]
    return base64.urlsafe_b64encode(payload + mac).rstrip(b"=").decode("ascii")


def test_tokens_that_are_malformed_or_out_of_range_get_the_invalid_link_page(
    publisher: Publisher, client: httpx.Client
) -> None:
    add(publisher.settings, publisher.store, "weekly", "ann@example.org", "Ann", "en", now=publisher.clock())
    secret = publisher.store.subscribers.secret(publisher.store.subscribers.find_id("ann@example.org") or 0)
    assert secret
    huge = [str(10**30), str(2**31), str(2**63), str(2**64 + 1), "9" * 250]
    tokens = [_raw_token(ident, "weekly", purpose, key) for ident in huge for key in (secret, "x")
              for purpose in ("unsubscribe", "preferences")]  # fmt: skip
    tokens += [_raw_token(str(MAX_SUBSCRIBER_ID), "weekly", "unsubscribe", secret)]  # in range, nobody
    tokens += ["garbage", "A" * 500, "%C3%A9t%C3%A9", "a.b.c", "-", "MQ", "MTIzLndlZWtseS51bnN1YnNjcmliZQ"]
    for token in tokens:
        for method in ("GET", "HEAD", "POST"):
            for page in ("unsubscribe", "preferences"):
                r = client.request(method, f"/{page}/{token}", data={"list": "weekly"})
                assert r.status_code == 400, (method, page, token)
                if method != "HEAD":
                    assert "This link is not valid" in r.text, (method, page, token)
    assert status_of(publisher, "ann@example.org", "weekly") == SubscriptionStatus.CONFIRMED


def test_forgotten_subscribers_links_are_invalid_and_change_nothing(
    publisher: Publisher, client: httpx.Client
) -> None:
    add(publisher.settings, publisher.store, "weekly", "ann@example.org", "Ann", "en", now=publisher.clock())
    add(publisher.settings, publisher.store, "press", "ann@example.org", "Ann", "en", now=publisher.clock())
    prefs = f"/preferences/{token_for(publisher, 'ann@example.org', 'weekly', 'preferences')}"
    unsubscribe = f"/unsubscribe/{token_for(publisher, 'ann@example.org', 'press')}"
    assert forget(publisher.store, "ann@example.org", now=publisher.clock())
    before = statuses_of(publisher, "ann@example.org")
    record = publisher.store.subscribers.record(publisher.store.subscribers.find_id("ann@example.org") or 0)
    for method, url, data in [
        ("POST", prefs, {"list": ["weekly", "press"]}),
        ("POST", prefs, {}),
        ("GET", prefs, None),
        ("POST", unsubscribe, {}),
        ("GET", unsubscribe, None),
    ]:
        r = client.request(method, url, data=data)
        assert r.status_code == 400, (method, url)
        assert "This link is not valid" in r.text
    assert statuses_of(publisher, "ann@example.org") == before
    assert (
        publisher.store.subscribers.record(publisher.store.subscribers.find_id("ann@example.org") or 0)
        == record
    )


def test_huge_form_bodies_are_refused_unread(publisher: Publisher, client: httpx.Client) -> None:
    add(publisher.settings, publisher.store, "weekly", "ann@example.org", "Ann", "en", now=publisher.clock())
    unsubscribe = f"/unsubscribe/{token_for(publisher, 'ann@example.org', 'weekly')}"
    prefs = f"/preferences/{token_for(publisher, 'ann@example.org', 'weekly', 'preferences')}"
    huge = b"List-Unsubscribe=One-Click&" + b"x" * 200_000
    for url in (unsubscribe, prefs):
        r = client.post(url, content=huge, headers={"content-type": "application/x-www-form-urlencoded"})
        assert r.status_code == 413, url
        chunked = client.post(url, content=iter([huge[:5000], huge[5000:]]))  # no content-length
        assert chunked.status_code == 413, url
    assert status_of(publisher, "ann@example.org", "weekly") == SubscriptionStatus.CONFIRMED
    ok = client.post(unsubscribe, content=b"List-Unsubscribe=One-Click")  # a normal form still works
    assert (
        ok.status_code == 200
        and status_of(publisher, "ann@example.org", "weekly") == SubscriptionStatus.UNSUBSCRIBED
    )


@pytest.fixture
def quick_server(make_settings: Callable[..., Settings]) -> Iterator[Server]:
    settings = make_settings(web={"keep_alive_timeout": 1, "header_timeout": 1})  # SQLite is enough
    pub = Publisher(settings, clock=lambda: NOW)
    try:
        with Server(pub) as s:
            yield s
    finally:
        pub.close()


def test_idle_and_trickling_connections_are_closed(quick_server: Server) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    trickle = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40
    cases = {
        "idle after connecting": {},
        "header bytes trickling": {"trickle": trickle},
        "idle after a response (keep-alive)": {"first": request},
        "trickling after a response": {"first": request, "trickle": trickle},
    }
    with ThreadPoolExecutor(len(cases)) as pool:
        futures = {
            name: pool.submit(seconds_until_closed, quick_server.port, **kw) for name, kw in cases.items()
        }
        held = {name: f.result() for name, f in futures.items()}
    assert all(seconds < 3 for seconds in held.values()), f"seconds held with 1 s timeouts: {held}"
    # A client that sends its request in time is served as before.
    assert httpx.get(f"{quick_server.base}/healthz").text == "ok\n"


def test_publisher_serve_applies_the_web_timeouts(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[site]\nbase_url = "http://127.0.0.1:{port}"\n[storage]\nurl = "sqlite:///{tmp_path / "p.db"}"\n'
        f'[feeds]\noutput_dir = "public"\n[outbox]\npath = "outbox"\n'
        f'[web]\nhost = "127.0.0.1"\nport = {port}\nkeep_alive_timeout = 1\nheader_timeout = 1\n',
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "publisher.cli", "serve", "--config", str(config)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "publisher serve did not start"
            time.sleep(0.1)
        assert seconds_until_closed(port, trickle=b"GET / HTTP/1.1\r\n" + b"X" * 40) < 3
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_form_body_that_does_not_arrive_in_time_is_refused(quick_server: Server) -> None:
    with socket.create_connection(("127.0.0.1", quick_server.port), timeout=6) as sock:
        sock.sendall(b"POST /unsubscribe/MQ HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nList-")
        start = time.monotonic()
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert time.monotonic() - start < 3


# -- issue 9: the preferences page -----------------------------------------------------------

PREF_LISTS = [
    *LISTS,
    {"slug": "staff", "name": "Staff only", "sender": "HR <hr@example.org>", "public": False},
    {"slug": "board", "name": "Board papers", "sender": "Board <board@example.org>", "public": False},
]


@pytest.fixture
def prefs(make_settings: Callable[..., Settings], store_url: str) -> Iterator[tuple[Publisher, Server]]:
    settings = make_settings(storage={"url": store_url}, lists=PREF_LISTS)
    pub = Publisher(settings, Store(store_url), clock=lambda: NOW)
    with Server(pub) as server:
        yield pub, server
    pub.close()


def _subscribe(pub: Publisher, email: str, *slugs: str, language: str = "en") -> str:
    """Subscribe ``email`` to ``slugs``; its preferences URL path."""
    for slug in slugs:
        add(pub.settings, pub.store, slug, email, "Ann", language, now=NOW)
    return f"/preferences/{token_for(pub, email, slugs[0], 'preferences')}"


def _checkbox(page: str, slug: str) -> str:
    found = re.search(rf'<input type="checkbox" id="list-{slug}"[^>]*>', page)
    assert found, f"no checkbox for {slug}"
    return found.group()


def test_preferences_show_public_lists_and_private_ones_the_subscriber_is_on(
    prefs: tuple[Publisher, Server],
) -> None:
    pub, server = prefs
    path = _subscribe(pub, "ann@example.org", "weekly", "staff")
    page = httpx.get(server.base + path).text
    assert " checked" in _checkbox(page, "weekly")  # confirmed
    assert " checked" not in _checkbox(page, "press")  # public, not on it: offered
    assert " checked" in _checkbox(page, "staff")  # private, on it: shown, can be left
    assert "list-board" not in page and "Board papers" not in page  # private, not on it: hidden
    assert '<select id="language" name="language">' in page and '<option value="fr">Français</option>' in page
    assert f'href="{path}/export"' in page and f'action="{path}/forget"' in page
    assert 'value="leave_all"' in page


def test_preferences_join_and_leave_public_lists_and_change_language(prefs: tuple[Publisher, Server]) -> None:
    pub, server = prefs
    path = _subscribe(pub, "ann@example.org", "weekly", "staff")
    r = submit(server.base + path, {"action": "save", "list": ["press", "staff"], "language": "fr"})
    assert r.status_code == 200 and "Vos préférences sont enregistrées." in r.text
    assert '<html lang="fr">' in r.text  # the page answers in the new language
    assert statuses_of(pub, "ann@example.org") == {
        "press": SubscriptionStatus.CONFIRMED,  # joined without a second confirmation
        "staff": SubscriptionStatus.CONFIRMED,
        "weekly": SubscriptionStatus.UNSUBSCRIBED,
    }
    record = pub.subscriber("ann@example.org")
    assert record.language == "fr"
    press = next(s for s in record.lists if s.list_slug == "press")
    assert (press.consent_method, press.consent_source) == ("preferences", "127.0.0.1")

    r = submit(server.base + path, {"action": "save", "list": ["weekly"], "language": "de"})
    assert r.status_code == 400 and "Cette langue n’est pas proposée" in r.text
    assert pub.subscriber("ann@example.org").language == "fr"  # an unoffered language is not stored
    assert statuses_of(pub, "ann@example.org")["staff"] == SubscriptionStatus.UNSUBSCRIBED  # left
    page = httpx.get(server.base + path).text
    assert "Staff only" not in page  # once left, a private list is no longer offered


def test_a_forged_post_cannot_join_a_private_list(prefs: tuple[Publisher, Server]) -> None:
    pub, server = prefs
    path = _subscribe(pub, "ann@example.org", "weekly")
    sid = pub.store.subscribers.find_id("ann@example.org")
    assert sid is not None
    add(pub.settings, pub.store, "staff", "ann@example.org", "Ann", "en", now=NOW)
    pub.remove_subscriber("staff", "ann@example.org")
    r = submit(server.base + path, {"list": ["weekly", "staff", "board", "nope"]})
    assert r.status_code == 200
    assert statuses_of(pub, "ann@example.org") == {
        "staff": SubscriptionStatus.UNSUBSCRIBED,  # was on it once: still cannot rejoin from the web
        "weekly": SubscriptionStatus.CONFIRMED,
    }


def test_an_unsubscribe_can_be_undone_but_a_bounce_or_complaint_stops_every_join(
    prefs: tuple[Publisher, Server],
) -> None:
    pub, server = prefs
    path = _subscribe(pub, "ann@example.org", "weekly", "press")
    sid = pub.store.subscribers.find_id("ann@example.org")
    assert sid is not None
    set_status(pub.store, sid, "press", SubscriptionStatus.UNSUBSCRIBED, "web", now=NOW)
    submit(server.base + path, {"list": ["weekly", "press"]})
    assert statuses_of(pub, "ann@example.org")["press"] == SubscriptionStatus.CONFIRMED
    set_status(pub.store, sid, "press", SubscriptionStatus.UNSUBSCRIBED, "web", now=NOW)

    # A bounce on one list stops the address: the list it had left cannot be joined either
    # (the sign-up form refuses such an address on every list too).
    set_status(pub.store, sid, "weekly", SubscriptionStatus.BOUNCED, "550 no such user", now=NOW)
    page = httpx.get(server.base + path).text
    assert " disabled" in _checkbox(page, "weekly") and "stopped after failed deliveries" in page
    assert " disabled" in _checkbox(page, "press")
    submit(server.base + path, {"list": ["weekly", "press"]})
    assert statuses_of(pub, "ann@example.org") == {
        "press": SubscriptionStatus.UNSUBSCRIBED,
        "weekly": SubscriptionStatus.BOUNCED,
    }
    set_status(pub.store, sid, "press", SubscriptionStatus.COMPLAINED, "abuse report", now=NOW)
    submit(server.base + path, {"list": ["weekly", "press"]})
    assert statuses_of(pub, "ann@example.org")["press"] == SubscriptionStatus.COMPLAINED


def test_the_unsubscribe_page_never_joins_a_private_list_again(prefs: tuple[Publisher, Server]) -> None:
    """Private lists "can be left, never joined from the web": no "Subscribe again" button,
    and a POST of it with the page's own token changes nothing."""
    pub, server = prefs
    _subscribe(pub, "ann@example.org", "staff")
    url = f"{server.base}/unsubscribe/{token_for(pub, 'ann@example.org', 'staff')}"
    left = submit(url, {"confirm": "yes"})
    assert left.status_code == 200 and "You will no longer receive Staff only." in left.text
    assert "Subscribe again" not in left.text and 'value="resubscribe"' not in left.text
    assert "This list cannot be joined from the website." in left.text
    page = httpx.get(url).text
    assert "You are not subscribed to Staff only" in page and "Subscribe again" not in page

    token = pub.form_token(form_name("unsubscribe", url.rsplit("/", 1)[1]))  # a valid token all the same
    forged = httpx.post(url, data={"csrf": token, "action": "resubscribe", "website": ""})
    assert forged.status_code == 200 and "again" not in forged.text
    assert statuses_of(pub, "ann@example.org") == {"staff": SubscriptionStatus.UNSUBSCRIBED}


def test_leave_all_unsubscribes_every_list(prefs: tuple[Publisher, Server]) -> None:
    pub, server = prefs
    path = _subscribe(pub, "ann@example.org", "weekly", "press", "staff")
    r = submit(server.base + path, {"action": "leave_all", "list": ["weekly"]})
    assert r.status_code == 200 and "You have left every list." in r.text
    assert set(statuses_of(pub, "ann@example.org").values()) == {SubscriptionStatus.UNSUBSCRIBED}


def test_export_downloads_only_the_subscribers_own_data(prefs: tuple[Publisher, Server]) -> None:
    pub, server = prefs
    path = _subscribe(pub, "ann@example.org", "weekly", "staff")
    _subscribe(pub, "bob@example.org", "weekly")
    for period, when in (("2026-W47", NOW), ("2025-W40", NOW - timedelta(days=400))):
        created = pub.store.issues.create(
            list_slug="weekly",
            period_key=period,
            period_start=when,
            schedule=None,
            subject=f"Weekly {period}",
            item_ids=[],
            now=when,
        )
        assert created is not None and created[1] == 2
    url = f"{server.base}{path}/export"
    head = httpx.head(url)
    r = httpx.get(url)
    assert head.status_code == r.status_code == 200 and head.content == b""
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["content-disposition"].startswith("attachment;")
    data = r.json()
    assert (data["email"], data["name"], data["language"]) == ("ann@example.org", "Ann", "en")
    assert [(s["list"], s["status"], s["consent"]["method"]) for s in data["subscriptions"]] == [
        ("staff", "confirmed", "cli"),
        ("weekly", "confirmed", "cli"),
    ]
    for sub in data["subscriptions"]:  # each with its history, from subscription_events
        assert [(e["list"], e["event"], e["detail"]) for e in sub["events"]] == [
            (sub["list"], "confirmed", "cli")
        ]
        assert sub["events"][0]["at"] == NOW.isoformat()
        assert set(sub["consent"]) == {
            "at", "method", "source", "text", "language", "confirmed_at", "confirmed_source"
        }  # fmt: skip
    assert [(d["list"], d["period"], d["status"]) for d in data["deliveries"]] == [
        ("weekly", "2026-W47", "pending")
    ]  # last year only
    assert "bob@example.org" not in r.text

    # Joining from the page, then leaving a list: both are in that subscription's history.
    assert (
        submit(server.base + path, {"action": "save", "list": ["weekly", "staff", "press"]}).status_code
        == 200
    )
    assert submit(server.base + path, {"action": "save", "list": ["weekly", "press"]}).status_code == 200
    later = {s["list"]: s for s in httpx.get(url).json()["subscriptions"]}
    assert later["press"]["consent"] | {"at": None} == {
        "at": None, "method": "preferences", "source": "127.0.0.1", "text": None, "language": None,
        "confirmed_at": None, "confirmed_source": None,
    }  # fmt: skip
    assert [(e["event"], e["detail"]) for e in later["press"]["events"]] == [
        ("confirmed", "preferences: 127.0.0.1")
    ]
    assert [e["event"] for e in later["staff"]["events"]] == ["confirmed", "unsubscribed"]
    assert later["staff"]["status"] == "unsubscribed"


def test_forget_asks_first_then_erases_and_the_link_is_invalid_after(prefs: tuple[Publisher, Server]) -> None:
    pub, server = prefs
    path = _subscribe(pub, "ann@example.org", "weekly")
    forget_url = f"{server.base}{path}/forget"
    asked = submit(forget_url, {}, page=server.base + path)  # the preferences page's button
    for ask in (httpx.get(forget_url), httpx.head(forget_url), asked):
        assert ask.status_code == 200
    assert "Erase all your data?" in asked.text and 'name="confirm" value="yes"' in asked.text
    assert pub.subscriber("ann@example.org").email == "ann@example.org"  # nothing erased yet
    done = submit(forget_url, {"confirm": "yes"})
    assert done.status_code == 200 and "Your data is erased" in done.text
    record = pub.subscriber("ann@example.org")
    assert record.email is None and record.forgotten_at is not None  # as `subscribers forget` does
    for url in (server.base + path, f"{server.base}{path}/export", forget_url):
        assert httpx.get(url).status_code == 400, url


def test_get_and_head_on_preferences_pages_change_nothing(prefs: tuple[Publisher, Server]) -> None:
    pub, server = prefs
    path = _subscribe(pub, "ann@example.org", "weekly", "staff")
    before = pub.subscriber("ann@example.org")
    for suffix in ("", "/export", "/forget"):
        for query in ("", "?action=leave_all&list=press&language=fr&confirm=yes"):
            url = f"{server.base}{path}{suffix}{query}"
            assert httpx.get(url).status_code == 200 and httpx.head(url).status_code == 200, url
    assert pub.subscriber("ann@example.org") == before


# -- issue 9: every form of these pages carries a CSRF token and a honeypot --------------------


class Forms:
    """Ann (weekly confirmed, press unsubscribed) and Bob (weekly), with the URLs of their pages."""

    def __init__(self, pub: Publisher, server: Server) -> None:
        self.pub = pub
        self.base = server.base
        _subscribe(pub, "ann@example.org", "weekly", "press")
        sid = pub.store.subscribers.find_id("ann@example.org")
        assert sid is not None
        set_status(pub.store, sid, "press", SubscriptionStatus.UNSUBSCRIBED, "web", now=NOW)
        _subscribe(pub, "bob@example.org", "weekly", "press")

    def url(self, who: str, route: str) -> str:
        """The URL a form of ``route`` posts to, on ``who``'s pages."""
        email = f"{who}@example.org"
        if route == "unsubscribe":
            return f"{self.base}/unsubscribe/{token_for(self.pub, email, 'weekly')}"
        if route == "resubscribe":
            return f"{self.base}/unsubscribe/{token_for(self.pub, email, 'press')}"
        prefs = f"{self.base}/preferences/{token_for(self.pub, email, 'weekly', 'preferences')}"
        return f"{prefs}/forget" if route in ("forget", "erase") else prefs

    def page(self, who: str, route: str) -> str:
        """The page showing that form (the forget button is on the preferences page)."""
        url = self.url(who, route)
        return url.removesuffix("/forget") if route == "forget" else url

    def token(self, who: str, route: str) -> str:
        return csrf_of(self.page(who, route), httpx.URL(self.url(who, route)).path)

    def state(self) -> SubscriberRecord:
        return self.pub.subscriber("ann@example.org")


#: Each POST form of the unsubscribe and preferences pages: its fields, and what it does.
FORMS: dict[str, dict[str, str | list[str]]] = {
    "unsubscribe": {"confirm": "yes"},
    "resubscribe": {"action": "resubscribe"},
    "save": {"action": "save", "list": ["press"], "language": "fr"},
    "leave_all": {"action": "leave_all"},
    "forget": {},  # the preferences page's button: asks, changes nothing
    "erase": {"confirm": "yes"},  # the question's button: erases
}


def _did_act(forms: Forms, name: str, response: httpx.Response) -> bool:
    """Whether form ``name``'s POST did what the form is for."""
    record = forms.pub.subscriber("ann@example.org")
    statuses = {s.list_slug: s.status for s in record.lists}
    return {
        "unsubscribe": statuses["weekly"] == SubscriptionStatus.UNSUBSCRIBED,
        "resubscribe": statuses["press"] == SubscriptionStatus.CONFIRMED,
        "save": record.language == "fr" and statuses["weekly"] == SubscriptionStatus.UNSUBSCRIBED,
        "leave_all": statuses["weekly"] == SubscriptionStatus.UNSUBSCRIBED,
        "forget": "Erase all your data?" in response.text,
        "erase": record.email is None,
    }[name]


def _route(name: str) -> str:
    return "save" if name == "leave_all" else name


@pytest.fixture
def forms(prefs: tuple[Publisher, Server]) -> Forms:
    return Forms(*prefs)


def _post_forms(forms: Forms) -> dict[str, str]:
    """Every ``<form method="post">`` of the subscriber pages, by the name of the action."""
    found: dict[str, str] = {}
    page = httpx.get(forms.page("ann", "unsubscribe")).text
    found["unsubscribe"] = re.findall(r'<form method="post".*?</form>', page, re.S)[0]
    page = httpx.get(forms.page("ann", "resubscribe")).text  # a used link offers to come back
    found["resubscribe"] = re.findall(r'<form method="post".*?</form>', page, re.S)[0]
    page = httpx.get(forms.page("ann", "save")).text
    found["save"], found["leave_all"], found["forget"] = re.findall(
        r'<form method="post".*?</form>', page, re.S
    )
    page = httpx.get(forms.url("ann", "erase")).text
    (found["erase"],) = re.findall(r'<form method="post".*?</form>', page, re.S)
    return found


def test_every_form_of_the_subscriber_pages_carries_a_csrf_token_and_an_empty_honeypot(forms: Forms) -> None:
    found = _post_forms(forms)
    assert set(found) == set(FORMS)
    for name, form in found.items():
        assert re.search(r'<input type="hidden" name="csrf" value="[A-Za-z0-9_-]{20,}">', form), name
        honeypot = re.search(r'<input type="text" id="([^"]+)" name="website" value="" tabindex="-1"', form)
        assert honeypot and f'<label for="{honeypot[1]}">Leave this field empty</label>' in form, name
        assert '<div class="hp" aria-hidden="true">' in form, name
    done = submit(forms.url("ann", "unsubscribe"), {"confirm": "yes"})  # the page after unsubscribing
    (again,) = re.findall(r'<form method="post".*?</form>', done.text, re.S)
    assert 'value="resubscribe"' in again and 'name="website" value=""' in again
    assert csrf_of(forms.url("ann", "unsubscribe"))  # and its token is the page's


def _altered(token: str) -> str:
    """The token with its last two characters changed, never to what they were."""
    return token[:-2] + ("BB" if token.endswith("AA") else "AA")


@pytest.mark.parametrize("name", list(FORMS))
def test_a_form_without_its_own_pages_token_is_refused_and_changes_nothing(forms: Forms, name: str) -> None:
    route = _route(name)
    url, data = forms.url("ann", route), FORMS[name]
    path = httpx.URL(url).path
    link_token = path.split("/")[2]
    secret = forms.pub.store.signups.site_secret("csrf")
    day_old = int((NOW - timedelta(hours=25)).timestamp())
    # Another list's link, another kind of link, or the same link's other route.
    other_route = {"unsubscribe": "save", "resubscribe": "unsubscribe", "save": "forget"}.get(route, "save")
    bad_tokens = {
        "missing": None,
        "empty": "",
        "garbage": "not-a-token",
        "altered": _altered(forms.token("ann", route)),
        "another subscriber's page": forms.token("bob", route),
        "another form of the same subscriber": forms.token("ann", other_route),
        "the sign-up form's": forms.pub.form_token("subscribe"),
        "a day old": make_form_token(form_name(_form_route(path), link_token), day_old, secret),
    }
    before = forms.state()
    for why, token in bad_tokens.items():
        body = {**data, "website": ""} if token is None else {**data, "csrf": token, "website": ""}
        r = httpx.post(url, data=body)
        assert r.status_code == 403, (name, why)
        assert "This form has expired" in r.text and "Open the form again" in r.text, (name, why)
        assert forms.state() == before, (name, why)
    good = submit(url, data, page=forms.page("ann", route))  # the page's own token: it acts
    assert good.status_code == 200 and _did_act(forms, name, good), name


def _form_route(path: str) -> str:
    """The route part of a form's name (see ``publisher.web.subscribers.form_name``)."""
    if path.endswith("/forget"):
        return "forget"
    return path.split("/")[1]


@pytest.mark.parametrize("name", list(FORMS))
def test_a_filled_honeypot_gets_the_page_as_it_is_and_changes_nothing(forms: Forms, name: str) -> None:
    route = _route(name)
    url = forms.url("ann", route)
    page = forms.page("ann", route)
    shown = httpx.get(url)  # what a GET of the form's target shows
    before = forms.state()
    token = csrf_of(page, httpx.URL(url).path)
    r = httpx.post(url, data={**FORMS[name], "csrf": token, "website": "https://spam.example/"})
    assert r.status_code == 200, name
    assert forms.state() == before, name
    # The bot is not told it was caught, and nobody is told a false "done": the page as it was.
    heading = re.search(r"<h1>(.*?)</h1>", shown.text)
    assert heading and f"<h1>{heading[1]}</h1>" in r.text, name
    assert "saved" not in r.text and "You are unsubscribed" not in r.text, name


def test_the_one_click_post_needs_no_token_but_cannot_carry_another_action(forms: Forms) -> None:
    """RFC 8058's body unsubscribes with the mailed token alone, and does nothing else."""
    one_click = {"List-Unsubscribe": "One-Click"}
    resubscribe = forms.url("ann", "resubscribe")  # Ann left press: a forged body tries to come back
    before = forms.state()
    for body in (
        {**one_click, "action": "resubscribe"},
        {"action": "resubscribe", **one_click},
    ):
        r = httpx.post(resubscribe, data=body)
        assert r.status_code == 200 and "You are unsubscribed" in r.text
        r = httpx.post(resubscribe, files={k: (None, v) for k, v in body.items()})
        assert r.status_code == 200 and "You are unsubscribed" in r.text
    assert status_of(forms.pub, "ann@example.org", "press") == SubscriptionStatus.UNSUBSCRIBED
    for url, extra in (
        (forms.url("ann", "save"), {"action": "save", "list": ["press"], "language": "fr"}),
        (forms.url("ann", "save"), {"action": "leave_all"}),
        (forms.url("ann", "erase"), {"confirm": "yes"}),
    ):
        for r in (
            httpx.post(url, data={**one_click, **extra}),
            httpx.post(url, content=b"List-Unsubscribe=One-Click"),
            httpx.post(url, files={"List-Unsubscribe": (None, "One-Click"), **{
                k: (None, v) for k, v in extra.items() if isinstance(v, str)}}),
        ):  # fmt: skip
            assert r.status_code == 403, (url, extra)
    assert [(e.event, e.detail) for e in forms.state().events] == [(e.event, e.detail) for e in before.events]
    assert forms.state() == before

    weekly = forms.url("ann", "unsubscribe")
    sends: list[Callable[[], httpx.Response]] = [
        lambda: httpx.post(weekly, data=one_click),  # urlencoded
        lambda: httpx.post(weekly, files={"List-Unsubscribe": (None, "One-Click")}),  # multipart
        lambda: httpx.post(weekly, content=b"List-Unsubscribe=One-Click"),  # no content type
    ]
    for send in sends:
        if status_of(forms.pub, "ann@example.org", "weekly") != SubscriptionStatus.CONFIRMED:
            assert submit(weekly, {"action": "resubscribe"}).status_code == 200  # with the page's token
        assert status_of(forms.pub, "ann@example.org", "weekly") == SubscriptionStatus.CONFIRMED
        r = send()
        assert r.status_code == 200 and "You are unsubscribed" in r.text
        assert status_of(forms.pub, "ann@example.org", "weekly") == SubscriptionStatus.UNSUBSCRIBED
        assert forms.state().events[-1].detail == "one-click: 127.0.0.1"


def test_get_and_head_with_every_field_and_a_valid_token_in_the_query_change_nothing(forms: Forms) -> None:
    before = forms.state()
    for name, data in FORMS.items():
        route = _route(name)
        url = forms.url("ann", route)
        token = csrf_of(forms.page("ann", route), httpx.URL(url).path)
        query = {**data, "csrf": token, "List-Unsubscribe": "One-Click"}
        for method in ("GET", "HEAD"):
            r = httpx.request(method, url, params=query)
            assert r.status_code == 200, (name, method)
    assert forms.state() == before
