"""The web app's error answers (publisher.web.errors) over a real HTTP server.

A 404, 405, 413, 400 or 500 of a page is a small HTML page of the site: its stylesheet
and layout, its title, a link home, its language, the right status and
``text/html; charset=utf-8``, nothing of the request's path in it. A 405 names in
``Allow`` the methods the path really takes. The bounce webhooks keep their plain-text
errors, a HEAD gets headers only, and the admin console's errors use the console's
layout (or, while it is off, the site's 404, as if there were no console). uvicorn runs
the app on a free loopback port (tests/test_web.py's Server); raw sockets send what
httpx would encode; Chromium opens the pages at 375 px with JavaScript off.
Screenshots go to var/screenshots/error-*.png.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import httpx
import lxml.html
import pytest

from publisher.app import Publisher
from publisher.config import Settings
from publisher.models import SubscriptionStatus
from publisher.store import Store
from publisher.subscriptions import add
from tests.admin_client import HASH_ENV, admin_hash, require_chromium, sign_in
from tests.test_feed_page import CHROMIUM, SCREENSHOTS
from tests.test_web import Server, status_of, token_for

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
LISTS = [{"slug": "weekly", "name": "Weekly digest", "sender": "News <news@example.org>"}]
TITLE = "Social Protection Department"
HTML = "text/html; charset=utf-8"
_STYLE = re.compile(r"<style>.*?</style>", re.DOTALL)


@pytest.fixture
def make_publisher(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Publisher]]:
    """A Publisher on SQLite with public/ built; ``overrides`` go to make_settings."""
    made: list[Publisher] = []

    def make(**overrides: object) -> Publisher:
        settings = make_settings(lists=LISTS, **overrides)
        pub = Publisher(settings, Store(settings.storage.url), clock=lambda: NOW)
        pub.build()
        made.append(pub)
        return pub

    yield make
    for pub in made:
        pub.close()


@pytest.fixture
def publisher(make_publisher: Callable[..., Publisher]) -> Publisher:
    return make_publisher()


@pytest.fixture
def server(publisher: Publisher) -> Iterator[Server]:
    with Server(publisher) as s:
        yield s


def raw(server: Server, method: str, target: str, body: bytes = b"", **headers: str) -> tuple[str, bytes]:
    """Send a request with ``target`` exactly as given (httpx would percent-encode it).

    Returns the status line and headers as text, and every byte after them (the body):
    with ``Connection: close`` the server ends the connection after its answer.
    """
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head.decode("latin-1"), rest


def check_site_page(response: httpx.Response, status: int, heading: str, *, language: str = "en") -> None:
    """``response`` is the site's error page for ``status``, in ``language``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == HTML
    page = lxml.html.fromstring(response.text)
    assert page.get("lang") == language
    assert page.findtext(".//title") == f"{heading} · {TITLE}"
    assert page.findtext(".//h1") == heading
    assert page.xpath("//header//a/text()") == [TITLE]  # the site's name, linking home
    assert page.xpath("//main//a/@href") == ["http://127.0.0.1:8080/"]
    assert page.xpath("//meta[@name='viewport']/@content") == ["width=device-width, initial-scale=1"]
    assert f"{status}" in page.xpath("string(//main)")
    assert not page.xpath("//script")


def test_a_missing_page_is_a_page_of_the_site(publisher: Publisher, server: Server) -> None:
    with httpx.Client(base_url=server.base) as client:
        missing = client.get("/no/such/page")
        missing_feed = client.get("/feeds/nope.atom.xml")
        signup = client.get("/subscribe")
    check_site_page(missing, 404, "Page not found")
    check_site_page(missing_feed, 404, "Page not found")
    assert "There is no page at this address." in missing.text
    # The same stylesheet and layout as the site's other pages (web/base.html.j2).
    style = _STYLE.search(missing.text)
    assert style is not None and style.group(0) in signup.text
    assert missing.headers["cache-control"] == "no-store"


def test_error_pages_speak_the_site_language(make_publisher: Callable[..., Publisher]) -> None:
    publisher = make_publisher(site={"language": "fr"})
    with Server(publisher) as server, httpx.Client(base_url=server.base) as client:
        missing = client.get("/nulle-part")
        refused = client.put("/subscribe")
    check_site_page(missing, 404, "Page introuvable", language="fr")
    assert "Aller à la page d’accueil" in missing.text and "Erreur 404" in missing.text
    check_site_page(refused, 405, "Requête non acceptée", language="fr")


def test_a_hostile_path_is_not_reflected(server: Server) -> None:
    encoded = httpx.get(f"{server.base}/<script>alert(1)</script>")  # sent as %3Cscript%3E...
    assert encoded.url.path == "/<script>alert(1)</script>"
    check_site_page(encoded, 404, "Page not found")
    for target in ("/<script>alert(1)</script>", '/"><img/src=x/onerror=alert(1)>', "/%3Cscript%3Ealert(1)"):
        head, body = raw(server, "GET", target)  # the raw bytes, as a hostile link would send them
        assert head.startswith("HTTP/1.1 404 ") and "content-type: text/html; charset=utf-8" in head
        assert b"<script" not in body.lower() and b"alert(" not in body and b"onerror" not in body
        assert lxml.html.fromstring(body).findtext(".//h1") == "Page not found"


def test_405_names_the_methods_the_path_takes(server: Server) -> None:
    cases = [
        ("POST", "/feeds/all.atom.xml", "GET, HEAD"),  # a file of public/
        ("PUT", "/feeds.opml", "GET, HEAD"),
        ("DELETE", "/", "GET, HEAD"),  # the index page
        ("PUT", "/subscribe", "GET, HEAD, POST"),  # was public/'s "GET, HEAD"
        ("DELETE", "/confirm/some-token", "GET, HEAD, POST"),
        ("PATCH", "/unsubscribe/some-token", "GET, HEAD, POST"),
        ("PUT", "/preferences/some-token/forget", "GET, HEAD, POST"),
        ("POST", "/preferences/some-token/export", "GET, HEAD"),
    ]
    with httpx.Client(base_url=server.base) as client:
        for method, path, allowed in cases:
            answer = client.request(method, path)
            check_site_page(answer, 405, "Request not accepted")
            assert answer.headers["allow"] == allowed, (method, path)
        # Nothing at the path: not found, whatever the method.
        check_site_page(client.post("/no/such/file.xml"), 404, "Page not found")
        check_site_page(client.delete("/feeds/nope.rss.xml"), 404, "Page not found")


def test_the_bounce_webhooks_keep_plain_text_errors(server: Server) -> None:
    with httpx.Client(base_url=server.base) as client:
        for method in ("GET", "PUT", "DELETE"):
            answer = client.request(method, "/webhooks/bounces/ses")
            assert answer.status_code == 405 and answer.headers["allow"] == "POST", method
            assert answer.headers["content-type"] == "text/plain; charset=utf-8"
        huge = client.post("/webhooks/bounces/generic", content=b"x" * (600 * 1024))
        assert huge.status_code == 413 and huge.headers["content-type"] == "text/plain; charset=utf-8"
        assert "larger than" in huge.text
    head, body = raw(server, "HEAD", "/webhooks/bounces/ses")
    assert head.startswith("HTTP/1.1 405 ") and "\r\nallow: POST\r\n" in head and body == b""


def test_head_gets_the_error_headers_and_no_body(server: Server) -> None:
    for target, status in (("/no/such/page", 404), ("/admin/logout", 404), ("/feeds.opml", 200)):
        head, body = raw(server, "HEAD", target)
        assert head.startswith(f"HTTP/1.1 {status} "), head
        assert body == b"", target
    get = httpx.get(f"{server.base}/no/such/page")
    head, _ = raw(server, "HEAD", "/no/such/page")
    assert "content-type: text/html; charset=utf-8" in head
    assert f"content-length: {len(get.content)}" in head


def test_no_method_but_post_changes_a_subscription(publisher: Publisher, server: Server) -> None:
    add(publisher.settings, publisher.store, "weekly", "ann@example.org", "Ann", "en", now=publisher.clock())
    token = token_for(publisher, "ann@example.org", "weekly")
    with httpx.Client(base_url=server.base) as client:
        for method in ("GET", "HEAD", "PUT", "DELETE", "PATCH"):
            answer = client.request(method, f"/unsubscribe/{token}", data={"confirm": "yes"})
            assert answer.status_code == (200 if method in ("GET", "HEAD") else 405), method
    assert status_of(publisher, "ann@example.org", "weekly") == SubscriptionStatus.CONFIRMED


def test_a_too_big_or_malformed_form_gets_an_html_page(server: Server) -> None:
    with httpx.Client(base_url=server.base) as client:
        huge = client.post(
            "/subscribe", content=b"x" * 20_000, headers={"content-type": "application/x-www-form-urlencoded"}
        )
        malformed = client.post(
            "/subscribe", content=b"--x\r\n", headers={"content-type": "multipart/form-data"}
        )  # no boundary
    check_site_page(huge, 413, "Too much data sent")
    assert huge.headers["connection"] == "close"
    check_site_page(malformed, 400, "The request could not be read")


def test_an_unexpected_error_is_a_500_page_without_details(
    publisher: Publisher, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(token: str) -> None:
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr(publisher, "confirm_link", broken)
    answer = httpx.get(f"{server.base}/confirm/some-token")
    check_site_page(answer, 500, "Something went wrong")
    assert "hunter2" not in answer.text and "Traceback" not in answer.text


def test_a_disabled_console_answers_like_no_console(publisher: Publisher, server: Server) -> None:
    with httpx.Client(base_url=server.base) as client:
        nothing = client.get("/no/such/page")
        for method, path in [("GET", "/admin/"), ("GET", "/admin/logout"), ("PUT", "/admin/login")]:
            answer = client.request(method, path)
            check_site_page(answer, 404, "Page not found")
            assert answer.content == nothing.content and "allow" not in answer.headers, (method, path)


def test_console_errors_use_the_console_layout(
    make_publisher: Callable[..., Publisher], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HASH_ENV, admin_hash())
    publisher = make_publisher(admin={"users": ["alice"]})
    with Server(publisher) as server, httpx.Client(base_url=server.base, follow_redirects=False) as client:
        sign_in(client)
        missing = client.get("/admin/schedules/nope/edit")
        refused = client.put("/admin/")
        forged = client.post("/admin/logout", data={"csrf_token": "forged"})
    for answer, status in ((missing, 404), (refused, 405), (forged, 403)):
        assert answer.status_code == status
        assert answer.headers["content-type"] == HTML
        assert "default-src 'none'" in answer.headers["content-security-policy"]  # the console's headers
        page = lxml.html.fromstring(answer.text)
        assert page.xpath("//link[@rel='stylesheet']/@href") == ["/admin/admin.css"]
        assert page.xpath("//a[text()='Back to the dashboard']/@href") == ["/admin/"]
        assert page.findtext(".//title").endswith(f"· Admin · {TITLE}")
    assert refused.headers["allow"] == "GET, HEAD"
    assert "csrf_token is missing or wrong" in forged.text


@pytest.mark.browser
def test_error_pages_fit_375_px_without_javascript(server: Server) -> None:
    require_chromium()
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            quiet = browser.new_context(viewport={"width": 375, "height": 800}, java_script_enabled=False)
            page = quiet.new_page()
            answer = page.goto(f"{server.base}/no/such/page")
            assert answer is not None and answer.status == 404
            page.screenshot(path=str(SCREENSHOTS / "error-404-375.png"), full_page=True)
            assert page.locator("h1").inner_text() == "Page not found"
            assert page.evaluate("document.documentElement.scrollWidth") <= 375
            page.set_content(
                f'<form method="post" action="{server.base}/feeds/all.atom.xml"><button>Go</button></form>'
            )
            with page.expect_navigation():
                page.click("button")
            page.screenshot(path=str(SCREENSHOTS / "error-405-375.png"), full_page=True)
            assert page.locator("h1").inner_text() == "Request not accepted"
            assert page.evaluate("document.documentElement.scrollWidth") <= 375
            assert page.locator("main a").get_attribute("href") == "http://127.0.0.1:8080/"  # base_url

            # With JavaScript on, the hostile path opens a page where nothing runs.
            dialogs: list[str] = []
            live = browser.new_page(viewport={"width": 375, "height": 800})
            live.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            live.goto(f"{server.base}/<script>alert(1)</script>")
            live.screenshot(path=str(SCREENSHOTS / "error-404-hostile-375.png"), full_page=True)
            assert live.locator("h1").inner_text() == "Page not found"
            assert live.locator("script").count() == 0 and dialogs == []
            assert live.evaluate("document.documentElement.scrollWidth") <= 375
        finally:
            browser.close()
