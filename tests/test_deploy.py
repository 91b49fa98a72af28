"""deploy/nginx-publisher.conf run by a real nginx in front of a real publisher.

The site file is the one the README tells admins to install; only its listen port, root
and upstream port are rewritten for the test. Through it, feeds must keep their media
types and conditional GETs, dot files stay hidden, the pages that act reach the
publisher, and the publisher must count the real client address (the one nginx saw),
never one a client wrote into X-Forwarded-For. What nginx cannot serve (a missing file,
a dot file) shows the publisher's own error page, with nginx's status, and stays a 404
when the publisher is down.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import lxml.html
import pytest

from publisher.app import Publisher
from publisher.config import Settings
from publisher.models import Item
from publisher.store import Store
from tests.conftest import IN_CI
from tests.smtp_server import free_port
from tests.test_web import LISTS, Server

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "deploy" / "nginx-publisher.conf"
NGINX = Path("/usr/sbin/nginx")
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def _need_nginx() -> None:
    if not NGINX.exists():
        message = f"{NGINX} missing (make test's system-deps installs Debian's nginx-light)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


class Nginx:
    """nginx in the foreground with a throw-away prefix, serving the deploy site."""

    def __init__(self, folder: Path, public: Path, upstream_port: int) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        site = SITE.read_text(encoding="utf-8")
        site = site.replace("listen 80;", f"listen 127.0.0.1:{self.port};").replace("listen [::]:80;", "")
        site = site.replace("root /opt/publisher/public;", f"root {public};")
        site = site.replace("alias /opt/publisher/public/;", f"alias {public}/;")
        site = site.replace("http://127.0.0.1:8080", f"http://127.0.0.1:{upstream_port}")
        assert str(public) in site and str(upstream_port) in site, "the deploy site changed shape"
        (folder / "site.conf").write_text(site, encoding="utf-8")
        kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        temp = "\n".join(f"  {kind}_temp_path {folder / kind};" for kind in kinds)
        (folder / "nginx.conf").write_text(
            f"user root;\nworker_processes 1;\npid {folder / 'nginx.pid'};\n"
            f"error_log {folder / 'error.log'} warn;\nevents {{ worker_connections 64; }}\n"
            f"http {{\n  include /etc/nginx/mime.types;\n  access_log off;\n{temp}\n"
            f"  include {folder / 'site.conf'};\n}}\n",
            encoding="utf-8",
        )
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Nginx:
        conf = str(self.folder / "nginx.conf")
        checked = subprocess.run([str(NGINX), "-t", "-p", str(self.folder), "-c", conf], capture_output=True)
        assert checked.returncode == 0, checked.stderr.decode()
        self.proc = subprocess.Popen(
            [str(NGINX), "-p", str(self.folder), "-c", conf, "-g", "daemon off;"], stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(self.base + "/", timeout=1)
                return self
            except httpx.TransportError:
                assert self.proc.poll() is None, (self.folder / "error.log").read_text()
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def site(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[tuple[Publisher, Server]]:
    _need_nginx()
    url = f"sqlite:///{tmp_path / 'deploy.db'}"
    settings = make_settings(storage={"url": url}, lists=LISTS)
    publisher = Publisher(settings, Store(url), clock=lambda: NOW)
    publisher.store.items.save(
        [
            Item(
                id="press-1",
                source="sample",
                title="Social protection for all",
                link="https://www.example.org/news/1",
                published=NOW,
                updated=NOW,
                language="en",
                summary="<p>A floor for everyone.</p>",
                label="Press release",
                category="press-releases",
                content_hash="a" * 64,
            )
        ],
        [],
        NOW,
    )
    publisher.build()
    with Server(publisher) as server:
        yield publisher, server
    publisher.close()


@pytest.fixture
def nginx(site: tuple[Publisher, Server], tmp_path: Path) -> Iterator[Nginx]:
    publisher, server = site
    folder = tmp_path / "nginx"
    folder.mkdir()
    with Nginx(folder, Path(publisher.settings.feeds.output_dir).resolve(), server.port) as running:
        yield running


def test_nginx_serves_the_feeds_with_their_media_types_and_304s(nginx: Nginx) -> None:
    expected = {
        "/feeds/all.atom.xml": "application/atom+xml; charset=utf-8",
        "/feeds/press-releases.rss.xml": "application/rss+xml; charset=utf-8",
        "/feeds/all.json": "application/feed+json; charset=utf-8",
        "/feeds.opml": "text/x-opml; charset=utf-8",
        "/index.html": "text/html; charset=utf-8",
        "/": "text/html; charset=utf-8",
    }
    for path, media_type in expected.items():
        first = httpx.get(nginx.base + path)
        assert first.status_code == 200, path
        assert first.headers["content-type"] == media_type, path
        assert first.headers["cache-control"] == "public, max-age=300", path
        again = httpx.get(nginx.base + path, headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304, path
        since = httpx.get(nginx.base + path, headers={"If-Modified-Since": first.headers["last-modified"]})
        assert since.status_code == 304, path
    assert "Social protection for all" in httpx.get(nginx.base + "/feeds/all.atom.xml").text
    assert httpx.get(nginx.base + "/.as-xml/feeds/all.atom.xml").status_code == 404  # internal only
    assert httpx.get(nginx.base + "/.feed-pages/feeds/all.atom.xml.html").status_code == 404  # internal only
    hidden_paths = ("/.feeds-state.json", "/.build.lock", "/feeds/.x", "/.as-xml/.feeds-state.json")
    for hidden in (*hidden_paths, "/.feed-pages/.feeds-state.json", "/.feed-pages/../.feeds-state.json"):
        assert httpx.get(nginx.base + hidden).status_code == 404, hidden


BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
READER = {"Accept": "application/atom+xml, application/rss+xml;q=0.9, */*;q=0.1"}
XML_FEEDS = {
    "/feeds/all.atom.xml": "application/atom+xml; charset=utf-8",
    "/feeds/news.rss.xml": "application/rss+xml; charset=utf-8",
    "/archive/weekly/feed.atom.xml": "application/atom+xml; charset=utf-8",
}


def test_a_browser_gets_a_feed_s_html_page_through_nginx_and_a_reader_the_feed(
    nginx: Nginx, site: tuple[Publisher, Server]
) -> None:
    """A browser's navigation of a feed gets the page the build wrote for it
    (.feed-pages/, publisher.feed_pages) as text/html, with its own validators; a reader
    gets the feed's bytes and type. Both carry Vary: Accept."""
    public = Path(site[0].settings.feeds.output_dir)
    for path, feed_type in XML_FEEDS.items():
        page = public / f".feed-pages{path}.html"
        shown = httpx.get(nginx.base + path, headers=BROWSER)
        assert shown.status_code == 200, path
        assert shown.headers["content-type"] == "text/html; charset=utf-8", path
        assert shown.headers["vary"] == "Accept", path
        assert shown.headers["cache-control"] == "public, max-age=300", path
        assert shown.content == page.read_bytes(), path
        assert b'<textarea id="address"' in shown.content
        for headers in (READER, {"Accept": "*/*"}, {}):
            read = httpx.get(nginx.base + path, headers=headers)
            assert read.headers["content-type"] == feed_type, (path, headers)
            assert read.headers["vary"] == "Accept", (path, headers)
            assert read.content == (public / path.lstrip("/")).read_bytes(), (path, headers)
        assert shown.headers["etag"] != read.headers["etag"]
        again = httpx.get(nginx.base + path, headers={**BROWSER, "If-None-Match": shown.headers["etag"]})
        assert again.status_code == 304 and again.headers["vary"] == "Accept", path
        head = httpx.head(nginx.base + path, headers=BROWSER)
        assert head.status_code == 200 and head.content == b"", path
        assert head.headers["content-type"] == "text/html; charset=utf-8", path
        assert int(head.headers["content-length"]) == len(shown.content), path
        # the same answers as `publisher run`
        direct = httpx.get(site[1].base + path, headers=BROWSER)
        assert (
            direct.headers["content-type"] == shown.headers["content-type"]
            and direct.content == shown.content
        )


def test_without_its_page_a_browser_gets_the_feed_as_xml_through_nginx(
    nginx: Nginx, site: tuple[Publisher, Server]
) -> None:
    """A public/ built before the pages existed: the browser gets the feed as XML, so a
    browser that still has XSLT applies feed.xsl (as before the pages)."""
    public = Path(site[0].settings.feeds.output_dir)
    for path in XML_FEEDS:
        (public / f".feed-pages{path}.html").unlink()
        shown = httpx.get(nginx.base + path, headers=BROWSER)
        assert shown.status_code == 200, path
        assert shown.headers["content-type"] == "application/xml; charset=utf-8", path
        assert shown.headers["vary"] == "Accept", path
        assert shown.headers["cache-control"] == "public, max-age=300", path
        assert shown.content == (public / path.lstrip("/")).read_bytes(), path
        assert shown.content.split(b"\n")[1] == b'<?xml-stylesheet type="text/xsl" href="/feed.xsl"?>'


def test_nginx_hides_every_dot_file_even_one_named_like_a_feed(
    nginx: Nginx, site: tuple[Publisher, Server]
) -> None:
    """The dot-file rule wins over the feed locations: a dot file that exists and ends
    like a feed (a build's temporary or state file) is not served either."""
    public = Path(site[0].settings.feeds.output_dir)
    for name in ("feeds/.draft.atom.xml", "feeds/.draft.rss.xml", "feeds/.state.json", ".archive-state.json"):
        (public / name).write_text("<secret/>", encoding="utf-8")
        answer = httpx.get(f"{nginx.base}/{name}")
        assert answer.status_code == 404 and "secret" not in answer.text, name
    assert httpx.get(nginx.base + "/feeds/all.json").status_code == 200  # the real feeds still are


SECRET = "state-file-secret-4711"


def _error_page(answer: httpx.Response, publisher: Publisher, status: int, kind: str) -> None:
    """``answer`` is the publisher's site error page for ``status`` (not nginx's own page)."""
    t = publisher.translator(publisher.page_language())
    heading, title = t(f"error_{kind}_title"), publisher.settings.site.title
    assert answer.status_code == status, answer.request.url
    assert answer.headers["content-type"] == "text/html; charset=utf-8", answer.request.url
    page = lxml.html.fromstring(answer.text)
    assert page.findtext(".//title") == f"{heading} · {title}", answer.request.url
    assert page.findtext(".//h1") == heading and page.xpath("//header//a/text()") == [title]
    assert t("error_code", status=status) in page.xpath("string(//main)")
    assert "<center>nginx</center>" not in answer.text  # nginx's bare page
    assert SECRET not in answer.text


def test_what_nginx_cannot_serve_gets_the_publisher_s_error_page(
    nginx: Nginx, site: tuple[Publisher, Server]
) -> None:
    """A missing page, feed or folder, a dot file and the internal /.as-xml/ show the
    page `publisher run` shows for the same URL, byte for byte, with status 404 (a POST
    to a file: 405); a dot file's content never reaches the page through the fallback."""
    publisher, server = site
    public = Path(publisher.settings.feeds.output_dir)
    for name in (".build-state.json", "feeds/.x.atom.xml", "archive/.draft.json"):
        (public / name).write_text(f'{{"{SECRET}": 1}}', encoding="utf-8")
    paths = (
        "/archive/nothing-here/",
        "/feeds/none.atom.xml",
        "/feeds/none.json",
        "/no-such-page.html",
        "/.build-state.json",
        "/feeds/.x.atom.xml",
        "/archive/.draft.json",
        "/%2ebuild-state.json",
        "/.as-xml/feeds/all.atom.xml",
        "/.feed-pages/feeds/all.atom.xml.html",
        "/feeds/",  # a folder without index.html: nginx's 403, the publisher's 404
    )
    for path in paths:
        answer = httpx.get(nginx.base + path, headers={"Accept-Language": "fr"})
        _error_page(answer, publisher, 404, "404")
        assert answer.headers["cache-control"] == "no-store", path
        direct = httpx.get(server.base + path, headers={"Accept-Language": "fr"})
        assert direct.status_code == 404 and answer.content == direct.content, path
    # a browser opening a missing feed (rewritten to /.feed-pages/, then /.as-xml/, inside nginx)
    browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    _error_page(httpx.get(nginx.base + "/feeds/none.atom.xml", headers=browser), publisher, 404, "404")
    # HEAD: the status and headers, no body
    for path in ("/no-such-page.html", "/.build-state.json", "/archive/nothing-here/"):
        head = httpx.head(nginx.base + path)
        assert head.status_code == 404 and head.content == b"", path
        assert head.headers["content-type"] == "text/html; charset=utf-8", path
    # another method than GET or HEAD: 405 with Allow on a file, 404 where there is none
    for method, path in (("POST", "/index.html"), ("DELETE", "/feeds/all.atom.xml"), ("POST", "/archive/")):
        refused = httpx.request(method, nginx.base + path, data={"email": "someone@example.org"})
        _error_page(refused, publisher, 405, "405")
        assert refused.headers["allow"] == "GET, HEAD", path
    _error_page(httpx.post(nginx.base + "/nothing.html", data={"a": "b"}), publisher, 404, "404")
    # what exists is still served by nginx itself
    assert httpx.get(nginx.base + "/feeds/all.json").status_code == 200


def test_a_missing_file_stays_a_404_when_the_publisher_is_down(
    site: tuple[Publisher, Server], tmp_path: Path
) -> None:
    """nginx before a port nobody listens on: its errors stay 404 (405) with a plain
    body, not a 502; the files are still served; the pages that act do say 502."""
    publisher, _server = site
    public = Path(publisher.settings.feeds.output_dir)
    (public / ".build-state.json").write_text(f'{{"{SECRET}": 1}}', encoding="utf-8")
    folder = tmp_path / "nginx-down"
    folder.mkdir()
    with Nginx(folder, public.resolve(), free_port()) as down:
        for path in (
            "/no-such-page.html",
            "/archive/nothing-here/",
            "/feeds/none.atom.xml",
            "/.build-state.json",
        ):
            answer = httpx.get(down.base + path)
            assert answer.status_code == 404, path
            assert answer.headers["content-type"] == "text/plain; charset=utf-8", path
            assert answer.text == "Not found\n" and SECRET not in answer.text, path
            head = httpx.head(down.base + path)
            assert head.status_code == 404 and head.content == b"", path
        refused = httpx.post(down.base + "/index.html", data={"a": "b"})
        assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD"
        assert httpx.get(down.base + "/feeds/all.atom.xml").status_code == 200
        assert httpx.get(down.base + "/subscribe").status_code == 502
    assert "connect() failed" in (folder / "error.log").read_text()


def _lang(page: str) -> str:
    found = re.search(r'<html lang="([^"]+)"', page)
    assert found, page[:200]
    return found.group(1)


def test_nginx_answers_archive_folders_in_the_visitor_s_language(nginx: Nginx) -> None:
    """The site's map does what the publisher's FeedFiles does (tests/test_archive.py),
    but takes the first language listed rather than sorting by q=."""
    for folder in ("/archive/", "/archive/weekly/"):
        cases = {
            "fr-CH, fr;q=0.9, en;q=0.8": "fr",
            "de-DE, es;q=0.7, en;q=0.3": "es",  # German is not offered: the next one is
            "EN-gb": "en",
            "de, ja": "en",  # nothing offered: the site language
            "": "en",
            "fr;q=0, es;q=0.1": "es",  # q=0 means "not this one"
            "fr;q=0.0,es": "es",
            "french, es": "es",  # not a language tag we offer
        }
        for header, language in cases.items():
            answer = httpx.get(nginx.base + folder, headers={"Accept-Language": header} if header else {})
            assert answer.status_code == 200, (folder, header)
            assert _lang(answer.text) == language, (folder, header)
            assert answer.headers["vary"] == "Accept-Language", (folder, header)
            assert answer.headers["content-type"] == "text/html; charset=utf-8"
            assert answer.headers["cache-control"] == "public, max-age=300"
        french = httpx.get(nginx.base + folder, headers={"Accept-Language": "fr"})
        again = httpx.get(
            nginx.base + folder, headers={"Accept-Language": "fr", "If-None-Match": french.headers["etag"]}
        )
        assert again.status_code == 304 and again.headers["vary"] == "Accept-Language"
        # the explicit file wins over the header, and is not negotiated
        chosen = httpx.get(nginx.base + folder + "index.html", headers={"Accept-Language": "fr"})
        assert _lang(chosen.text) == "en" and "vary" not in chosen.headers
        assert _lang(httpx.get(nginx.base + folder + "index.es.html").text) == "es"
    assert (
        httpx.get(nginx.base + "/archive/nothing-here/", headers={"Accept-Language": "fr"}).status_code == 404
    )
    feed = httpx.get(nginx.base + "/archive/weekly/feed.atom.xml")
    assert feed.headers["content-type"] == "application/atom+xml; charset=utf-8"


def test_pages_that_act_reach_the_publisher_through_nginx(nginx: Nginx) -> None:
    assert httpx.get(nginx.base + "/healthz").status_code == 200
    form = httpx.get(nginx.base + "/subscribe")
    assert form.status_code == 200 and 'name="website"' in form.text
    assert httpx.get(nginx.base + "/unsubscribe/AAAA").status_code in (400, 404)
    # HEAD through the proxy changes nothing and answers like GET
    assert httpx.head(nginx.base + "/subscribe").status_code == 200


def _sign_up(base: str, address: str, source: str, forwarded: str) -> None:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=base, transport=transport) as client:
        page = client.get("/subscribe")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token, "no CSRF token in the form"
        answer = client.post(
            "/subscribe",
            data={"csrf": token.group(1), "email": address, "name": "", "language": "en", "list": ["weekly"]},
            headers={"X-Forwarded-For": forwarded},
        )
        assert answer.status_code == 200, answer.text


def test_the_client_address_is_the_one_nginx_saw_not_one_the_client_wrote(
    site: tuple[Publisher, Server], nginx: Nginx
) -> None:
    publisher, server = site
    _sign_up(nginx.base, "via-proxy@example.org", "127.0.0.2", "203.0.113.9")
    # Straight to the publisher from an address that is not a trusted proxy: the header is ignored.
    _sign_up(server.base, "direct@example.org", "127.0.0.3", "203.0.113.9")
    # The page answers before the sign-up is stored (so its timing tells nothing about
    # the address): wait for both to be stored.
    deadline = time.monotonic() + 30
    while len(publisher.pending_signups("weekly")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    sources = {p.email: p.source for p in publisher.pending_signups("weekly")}
    assert sources == {"via-proxy@example.org": "127.0.0.2", "direct@example.org": "127.0.0.3"}


def test_trusting_no_proxy_counts_the_proxy_itself(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    _need_nginx()
    url = f"sqlite:///{tmp_path / 'none.db'}"
    settings = make_settings(storage={"url": url}, lists=LISTS, web={"forwarded_allow_ips": []})
    publisher = Publisher(settings, Store(url), clock=lambda: NOW)
    publisher.build()
    folder = tmp_path / "nginx"
    folder.mkdir()
    try:
        public = Path(settings.feeds.output_dir).resolve()
        with Server(publisher) as server, Nginx(folder, public, server.port) as ng:
            _sign_up(ng.base, "someone@example.org", "127.0.0.2", "203.0.113.9")
        [pending] = publisher.pending_signups("weekly")
        assert pending.source == "127.0.0.1"
    finally:
        publisher.close()


def test_the_units_and_site_name_the_commands_that_exist() -> None:
    """The deploy files start commands the CLI has, with the config the README names."""
    from click.testing import CliRunner

    from publisher.cli import cli

    for unit, command in (("publisher.service", "run"), ("publisher-worker@.service", "worker")):
        text = (ROOT / "deploy" / unit).read_text(encoding="utf-8")
        exec_start = re.search(r"^ExecStart=(.+)$", text, re.M)
        assert exec_start, unit
        args = exec_start.group(1).split()
        assert args[0] == "/opt/publisher/.venv/bin/publisher" and command in args, unit
        help_args = [a for a in args[1:] if a not in ("--config", "/opt/publisher/config.toml")]
        assert CliRunner().invoke(cli, [*help_args, "--help"]).exit_code == 0, unit
