"""What a person sees when a browser opens a feed: the HTML page the build wrote for it.

Browsers are removing XSLT (Chromium 156 shows a banner on a page made by feed.xsl), so
each RSS and Atom file has an HTML page (publisher.feed_pages) in the dot folder
``.feed-pages/``, which ``publisher run`` answers to a browser's navigation of the feed's
URL. The web app serves public/ on a free loopback port (uvicorn in a thread, as in
tests/test_web.py); Chromium (Playwright, Debian's /usr/bin/chromium) opens an Atom
feed, an RSS feed and an archive page and the test reads what the page shows, at 1280
and 375 px, without JavaScript. Screenshots go to var/screenshots/feed-page-*.png. An
item published at 00:30 in the site's zone shows that day, not the UTC day before.
feed.xsl and the feeds' xml-stylesheet instruction stay (the feed bytes do not change),
and a page that is missing falls back to the feed as application/xml.
"""

from __future__ import annotations

import calendar
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import feedparser
import httpx
import lxml.etree
import lxml.html
import pytest

from publisher.app import Publisher
from publisher.config import Settings
from publisher.feed_pages import read_feed
from publisher.models import Item
from publisher.store import Store
from publisher.text import strip_bidi
from tests.admin_client import require_chromium
from tests.test_web import Server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).parent.parent / "var" / "screenshots"
T0 = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
READER = {"Accept": "application/atom+xml, application/rss+xml;q=0.9, application/xml;q=0.8, */*;q=0.1"}


def make_item(n: int, title: str) -> Item:
    published = T0 + timedelta(days=n)
    return Item(
        id=f"sample:item-{n}",
        source="sample",
        title=title,
        link=f"https://www.example.org/news/{n}",
        published=published,
        updated=published,
        language="en",
        summary="<p>A summary.</p>",
        category="news",
        content_hash=f"hash-{n}",
    )


HOSTILE = [
    "<script>alert(1)</script> & friends",
    '"><img src=x onerror="document.title=\'pwned\'"> quoted',
    "\u202eevil\u202c reversed \u2067isolate\u2069",
]
TITLES = [f"Pension reform, part {n}" for n in range(12)] + HOSTILE
#: What the page shows of each title: bidi controls are taken out.
SHOWN = [strip_bidi(t) for t in TITLES]
ARCHIVED = len(TITLES) - 10  # max_items 10: the oldest ones are on archive page 1


@pytest.fixture
def publisher(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[Publisher]:
    settings = make_settings(feeds={"max_items": 10, "archive_page_size": 10})
    pub = Publisher(settings, Store(f"sqlite:///{tmp_path / 'publisher.db'}"))
    pub.store.items.save([make_item(n, t) for n, t in enumerate(TITLES)], [], T0)
    pub.build()
    yield pub
    pub.close()


def page_file(pub: Publisher, feed: str) -> Path:
    return pub.settings.feeds.output_dir / ".feed-pages" / f"{feed}.html"


# -- over HTTP ---------------------------------------------------------------------------

FEEDS = {
    "feeds/news.atom.xml": "application/atom+xml; charset=utf-8",
    "feeds/news.rss.xml": "application/rss+xml; charset=utf-8",
    "feeds/archive/news/1.atom.xml": "application/atom+xml; charset=utf-8",
    "feeds/archive/news/1.rss.xml": "application/rss+xml; charset=utf-8",
}


def test_browsers_get_the_feed_s_html_page_and_readers_the_feed_unchanged(publisher: Publisher) -> None:
    out = publisher.settings.feeds.output_dir
    with Server(publisher) as server:
        for name, feed_type in FEEDS.items():
            url = f"{server.base}/{name}"
            shown = httpx.get(url, headers=BROWSER)
            assert shown.status_code == 200, name
            assert shown.headers["content-type"] == "text/html; charset=utf-8", name
            assert shown.headers["vary"] == "Accept", name
            assert shown.headers["cache-control"] == "public, max-age=300", name
            assert shown.content == page_file(publisher, name).read_bytes(), name
            assert "content-location" not in shown.headers  # the dot folder is nobody's URL
            for headers in (READER, {"Accept": "*/*"}, {}):
                read = httpx.get(url, headers=headers)
                assert read.headers["content-type"] == feed_type, (name, headers)
                assert read.headers["vary"] == "Accept", (name, headers)
                assert read.content == (out / name).read_bytes(), (name, headers)
                assert read.content.split(b"\n")[1] == b'<?xml-stylesheet type="text/xsl" href="/feed.xsl"?>'
        # JSON Feed has no page: a browser gets it as it is
        json_feed = httpx.get(f"{server.base}/feeds/news.json", headers=BROWSER)
        assert json_feed.headers["content-type"] == "application/feed+json; charset=utf-8"
        # feed.xsl is still written and served, for browsers that fetch the XML otherwise
        xsl = httpx.get(f"{server.base}/feed.xsl")
        assert xsl.status_code == 200 and xsl.headers["content-type"].startswith("application/xml")
        # the pages have no URL of their own
        for hidden in ("/.feed-pages/feeds/news.atom.xml.html", "/%2efeed-pages/feeds/news.atom.xml.html"):
            assert httpx.get(server.base + hidden, headers=BROWSER).status_code == 404, hidden
        assert httpx.get(f"{server.base}/feeds/none.atom.xml", headers=BROWSER).status_code == 404


def test_the_page_has_its_own_validators_and_answers_head(publisher: Publisher) -> None:
    with Server(publisher) as server:
        url = f"{server.base}/feeds/news.atom.xml"
        page = httpx.get(url, headers=BROWSER)
        feed = httpx.get(url, headers=READER)
        assert page.headers["etag"] != feed.headers["etag"]
        again = httpx.get(url, headers={**BROWSER, "If-None-Match": page.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["vary"] == "Accept" and again.headers["etag"] == page.headers["etag"]
        since = httpx.get(url, headers={**BROWSER, "If-Modified-Since": page.headers["last-modified"]})
        assert since.status_code == 304
        # one representation's validator never revalidates the other
        mixed = httpx.get(url, headers={**BROWSER, "If-None-Match": feed.headers["etag"]})
        assert mixed.status_code == 200 and mixed.content == page.content
        mixed = httpx.get(url, headers={**READER, "If-None-Match": page.headers["etag"]})
        assert mixed.status_code == 200 and mixed.content == feed.content
        assert httpx.get(url, headers={**READER, "If-None-Match": feed.headers["etag"]}).status_code == 304
        # HEAD: the same headers, no body
        head = httpx.head(url, headers=BROWSER)
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-type"] == "text/html; charset=utf-8"
        assert head.headers["etag"] == page.headers["etag"]
        assert int(head.headers["content-length"]) == len(page.content)
        head = httpx.head(url, headers=READER)
        assert head.headers["content-type"] == "application/atom+xml; charset=utf-8"
        assert int(head.headers["content-length"]) == len(feed.content)


def test_without_its_page_a_browser_gets_the_feed_as_xml_as_before(publisher: Publisher) -> None:
    """An output folder written by an older version has no pages: the browser gets the
    feed as application/xml, so it applies feed.xsl while it still can."""
    for name in ("feeds/news.atom.xml", "feeds/news.rss.xml"):
        page_file(publisher, name).unlink()
    out = publisher.settings.feeds.output_dir
    with Server(publisher) as server:
        for name in ("feeds/news.atom.xml", "feeds/news.rss.xml"):
            shown = httpx.get(f"{server.base}/{name}", headers=BROWSER)
            assert shown.headers["content-type"] == "application/xml; charset=utf-8", name
            assert shown.headers["vary"] == "Accept"
            assert shown.content == (out / name).read_bytes()
        # the others still have theirs
        other = httpx.get(f"{server.base}/feeds/all.atom.xml", headers=BROWSER)
        assert other.headers["content-type"] == "text/html; charset=utf-8"


# -- the page's content ------------------------------------------------------------------


def parse_page(pub: Publisher, feed: str) -> lxml.html.HtmlElement:
    return lxml.html.fromstring(page_file(pub, feed).read_bytes())


def test_the_page_shows_what_the_xsl_page_shows(publisher: Publisher) -> None:
    base = publisher.settings.site.base_url
    newest_first = list(reversed(SHOWN))
    for name in ("feeds/news.atom.xml", "feeds/news.rss.xml"):
        page = parse_page(publisher, name)
        assert page.get("lang") == "en"
        assert page.findtext(".//title") == "Social Protection Department: News (Web feed)"
        assert page.xpath("string(//h1)") == "Social Protection Department: News"
        assert page.get_element_by_id("address").text == f"{base}/{name}"
        assert page.get_element_by_id("address").get("readonly") is not None
        assert [h.text_content() for h in page.xpath("//ul[@class='items']//h3")] == newest_first[:10]
        links = page.xpath("//ul[@class='items']//h3/a/@href")
        assert links == [f"https://www.example.org/news/{n}" for n in reversed(range(len(TITLES)))][:10]
        days = [(t.text, t.get("datetime")) for t in page.xpath("//ul[@class='items']//time")]
        assert days[-1] == ("2024-03-06", "2024-03-06")  # part 5: T0 + 5 days
        [older] = page.xpath("//a[@rel='prev-archive']")
        assert older.text == "Older items"
        assert older.get("href") == f"{base}/feeds/archive/news/1{name.removeprefix('feeds/news')}"
        assert page.xpath("//a[text()='Visit the website']/@href") == [f"{base}/"]
        assert "copy this address into your feed reader" in page.xpath("string(//section)")
        assert not page.xpath("//p[contains(., 'archive of older items')]")
    # an archive page: its items oldest first, the subscription document's address, no older page
    archive = parse_page(publisher, "feeds/archive/news/1.atom.xml")
    assert [h.text_content() for h in archive.xpath("//ul[@class='items']//h3")] == SHOWN[:ARCHIVED]
    assert archive.get_element_by_id("address").text == f"{base}/feeds/news.atom.xml"
    assert archive.xpath("//p[contains(., 'archive of older items')]")
    assert not archive.xpath("//a[@rel='prev-archive']")


def test_hostile_titles_are_inert_text(publisher: Publisher) -> None:
    for name in ("feeds/news.atom.xml", "feeds/news.rss.xml", "feeds/all.atom.xml"):
        raw = page_file(publisher, name).read_text(encoding="utf-8")
        page = lxml.html.fromstring(raw)
        assert not page.xpath("//script | //img | //*[@onerror]"), name
        assert "<script>alert" not in raw and "<img" not in raw, name
        assert not any(c in raw for c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"), name
        titles = [h.text_content() for h in page.xpath("//ul[@class='items']//h3")]
        assert titles[:3] == [strip_bidi(t) for t in reversed(HOSTILE)], name
        assert page.xpath("//ul[@class='items']//h3/a/bdi"), name  # each title isolated


def test_a_link_that_is_not_http_is_not_made_a_link() -> None:
    atom = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="fr">'
        b'<title>T</title><link rel="self" href="javascript:alert(1)"/>'
        b'<entry><title>E</title><link href="javascript:alert(2)"/>'
        b"<updated>2024-03-02T00:30:00+01:00</updated></entry></feed>"
    )
    feed = read_feed(atom)
    assert feed.url == "" and feed.address == "" and feed.entries[0].url == ""
    assert feed.entries[0].day == "2024-03-02" and feed.language == "fr"


def test_a_language_s_feed_gets_its_page_in_that_language(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(feeds={"languages": ["fr"]})
    pub = Publisher(settings, Store(f"sqlite:///{tmp_path / 'fr.db'}"))
    try:
        pub.store.items.save([replace(make_item(1, "Réforme"), language="fr")], [], T0)
        pub.build()
        page = parse_page(pub, "feeds/fr/all.atom.xml")
        assert page.get("lang") == "fr"
        assert page.xpath("string(//h2)") == "Articles de ce flux"
        assert [h.text_content() for h in page.xpath("//ul[@class='items']//h3")] == ["Réforme"]
        assert parse_page(pub, "feeds/all.atom.xml").get("lang") == "en"  # the site's
    finally:
        pub.close()


# -- the build: written once, deleted with their feeds, from an overridable template -------


def pages_on_disk(out: Path) -> dict[str, int]:
    root = out / ".feed-pages"
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_every_rss_and_atom_file_gets_a_page_written_once(publisher: Publisher) -> None:
    out = publisher.settings.feeds.output_dir
    feeds = sorted(
        p.relative_to(out).as_posix()
        for p in (out / "feeds").rglob("*")
        if p.name.endswith((".atom.xml", ".rss.xml"))
    )
    before = pages_on_disk(out)
    assert sorted(before) == [f"{name}.html" for name in feeds]
    assert "feeds/archive/news/1.atom.xml" in feeds and not any(n.endswith(".json.html") for n in before)
    manifest = json.loads((out / ".build-manifest.json").read_bytes())["files"]
    assert {f".feed-pages/{name}" for name in before} <= set(manifest)

    again = publisher.build()
    assert again.written == [] and pages_on_disk(out) == before

    # a page removed by hand comes back; one changed by hand is put right
    page_file(publisher, "feeds/news.atom.xml").unlink()
    page_file(publisher, "feeds/archive/news/1.rss.xml").write_text("tampered", encoding="utf-8")
    repaired = publisher.build()
    assert sorted(p.relative_to(out).as_posix() for p in repaired.written) == [
        ".feed-pages/feeds/archive/news/1.rss.xml.html",
        ".feed-pages/feeds/news.atom.xml.html",
    ]
    assert "tampered" not in page_file(publisher, "feeds/archive/news/1.rss.xml").read_text(encoding="utf-8")

    # a new item rewrites the pages of the feeds it is in, and only those
    publisher.store.items.save([make_item(30, "Newest")], [], T0)
    report = publisher.build()
    written = {p.relative_to(out).as_posix() for p in report.written if ".feed-pages" in p.parts}
    assert written == {
        f".feed-pages/feeds/{name}.html"
        for name in (
            "all.atom.xml",
            "all.rss.xml",
            "news.atom.xml",
            "news.rss.xml",
            "archive/all/1.atom.xml",
            "archive/all/1.rss.xml",
            "archive/news/1.atom.xml",
            "archive/news/1.rss.xml",
        )
    }
    assert "Newest" in page_file(publisher, "feeds/news.rss.xml").read_text(encoding="utf-8")


def test_a_removed_category_s_page_is_deleted_with_its_feed(
    make_settings: Callable[..., Settings], tmp_path: Path, publisher: Publisher
) -> None:
    out = publisher.settings.feeds.output_dir
    assert page_file(publisher, "feeds/events.atom.xml").exists()
    (out / ".feed-pages" / "mine.html").write_text("an admin's file", encoding="utf-8")
    categories = [c.model_dump() for c in publisher.settings.categories if c.slug != "events"]
    fewer = Publisher(
        make_settings(feeds={"max_items": 10, "archive_page_size": 10}, categories=categories),
        Store(f"sqlite:///{tmp_path / 'publisher.db'}"),
    )
    try:
        report = fewer.build()
    finally:
        fewer.close()
    deleted = {p.relative_to(out).as_posix() for p in report.deleted}
    assert {".feed-pages/feeds/events.atom.xml.html", ".feed-pages/feeds/events.rss.xml.html"} <= deleted
    assert not (out / "feeds/events.atom.xml").exists()
    assert not page_file(publisher, "feeds/events.atom.xml").exists()
    # the pages left are exactly those of the feeds left, and the admin's own file
    feeds = {p.relative_to(out).as_posix() for p in (out / "feeds").rglob("*.xml")}
    assert set(pages_on_disk(out)) == {f"{name}.html" for name in feeds} | {"mine.html"}


def test_an_override_of_the_page_template_is_used_and_editing_it_rebuilds(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    folder = tmp_path / "overrides"
    (folder / "web").mkdir(parents=True)
    override = folder / "web" / "feed.html.j2"
    override.write_text(
        '{% extends "default:web/feed.html.j2" %}\n'
        "{% block title %}Our feed: {{ feed.title }}{% endblock %}\n",
        encoding="utf-8",
    )
    settings = make_settings(templates={"path": str(folder)})
    pub = Publisher(settings, Store(f"sqlite:///{tmp_path / 'override.db'}"))
    try:
        pub.store.items.save([make_item(1, "One")], [], T0)
        pub.build()
        out = settings.feeds.output_dir
        feeds = {
            name: (out / name).stat().st_mtime_ns for name in ("feeds/news.atom.xml", "feeds/news.rss.xml")
        }
        assert (
            parse_page(pub, "feeds/news.atom.xml").findtext(".//title")
            == "Our feed: Social Protection Department: News"
        )
        assert not pub.needs_build()

        override.write_text(
            override.read_text(encoding="utf-8").replace("Our feed", "Edited"), encoding="utf-8"
        )
        assert pub.needs_build()  # the template is part of the build's fingerprint
        report = pub.build_if_reconfigured()
        assert report is not None
        assert (
            parse_page(pub, "feeds/news.rss.xml").findtext(".//title")
            == "Edited: Social Protection Department: News"
        )
        assert str(parse_page(pub, "feeds/all.atom.xml").findtext(".//title")).startswith("Edited: ")
        # the feeds themselves are not rewritten
        assert {name: (out / name).stat().st_mtime_ns for name in feeds} == feeds
        assert not any(p.name.endswith((".atom.xml", ".rss.xml", ".json")) for p in report.written)
        assert not pub.needs_build()
    finally:
        pub.close()


# -- in Chromium ---------------------------------------------------------------------------


def _launch(p: Playwright) -> Browser:
    return p.chromium.launch(
        executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    )


@pytest.mark.browser
def test_a_browser_shows_a_feed_as_a_readable_page(publisher: Publisher) -> None:
    require_chromium()
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    base = publisher.settings.site.base_url
    newest_first = list(reversed(SHOWN))
    with Server(publisher) as server, sync_playwright() as p:
        browser = _launch(p)
        # No JavaScript: the page needs none.
        page = browser.new_context(java_script_enabled=False).new_page()
        try:
            cases = [
                ("feeds/news.atom.xml", "atom", newest_first[:10], f"{base}/feeds/news.atom.xml", True),
                ("feeds/news.rss.xml", "rss", newest_first[:10], f"{base}/feeds/news.rss.xml", True),
                (
                    "feeds/archive/news/1.atom.xml",
                    "archive",
                    SHOWN[:ARCHIVED],
                    f"{base}/feeds/news.atom.xml",
                    False,
                ),
            ]
            for name, shot, titles, address, has_older in cases:
                page.set_viewport_size({"width": 1280, "height": 900})
                response = page.goto(f"{server.base}/{name}")
                assert response is not None and response.headers["content-type"] == "text/html; charset=utf-8"
                # the HTML page, not an XSLT result: no deprecation banner, no stylesheet applied
                assert page.locator("xslt-warning-banner").count() == 0, name
                assert page.evaluate("document.contentType") == "text/html"
                assert page.locator("p.kind").inner_text() == "Web feed"
                page.screenshot(path=str(SCREENSHOTS / f"feed-page-{shot}.png"), full_page=True)
                assert page.locator("h1").inner_text() == "Social Protection Department: News"
                assert page.locator("ul.items h3").all_inner_texts() == titles, name
                assert page.input_value("#address") == address, name
                assert "copy this address into your feed reader" in page.locator(".about").inner_text()
                assert page.locator("script, img").count() == 0  # the hostile titles stayed text
                assert page.title() == "Social Protection Department: News (Web feed)"  # no onerror ran
                older = page.locator("a[rel=prev-archive]")
                if has_older:
                    assert older.inner_text() == "Older items"
                    suffix = name.removeprefix("feeds/news")
                    assert older.get_attribute("href") == f"{base}/feeds/archive/news/1{suffix}"
                else:
                    assert older.count() == 0
                # keyboard: the address first (to copy it), then the links, in reading order
                page.keyboard.press("Tab")
                assert page.evaluate("document.activeElement.id") == "address"
                page.keyboard.press("Tab")
                assert page.evaluate("document.activeElement.textContent") == "Visit the website"
                page.keyboard.press("Tab")
                assert page.evaluate("document.activeElement.textContent") == titles[0]
                # a phone: no sideways scrolling
                page.set_viewport_size({"width": 375, "height": 800})
                assert page.evaluate("document.documentElement.scrollWidth") == 375, name
                page.screenshot(path=str(SCREENSHOTS / f"feed-page-{shot}-375.png"), full_page=True)
        finally:
            browser.close()


@pytest.mark.browser
def test_without_the_page_chromium_still_applies_feed_xsl_with_its_banner(publisher: Publisher) -> None:
    """The fallback for an output folder from an older version, and proof that the check
    for the XSLT banner above can see one."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    page_file(publisher, "feeds/news.rss.xml").unlink()
    with Server(publisher) as server, sync_playwright() as p:
        browser = _launch(p)
        try:
            page = browser.new_page()
            response = page.goto(f"{server.base}/feeds/news.rss.xml")
            assert (
                response is not None and response.headers["content-type"] == "application/xml; charset=utf-8"
            )
            page.wait_for_selector("ul.items li")
            assert page.locator("ul.items h3").count() == 10  # feed.xsl's page
            assert page.locator("xslt-warning-banner").count() == 1
        finally:
            browser.close()


# -- dates: the site's day ---------------------------------------------------------------

#: Items published at 00:30 in Zurich, the day after in UTC: in winter time (+01:00) and
#: in summer time (+02:00); newest first, with the day the page must show.
MIDNIGHT = [
    (datetime(2024, 6, 30, 22, 30, tzinfo=UTC), "2024-07-01"),
    (datetime(2024, 3, 1, 23, 30, tzinfo=UTC), "2024-03-02"),
]


@pytest.fixture
def midnight(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[Publisher]:
    settings = make_settings(site={"timezone": "Europe/Zurich"})
    pub = Publisher(settings, Store(f"sqlite:///{tmp_path / 'publisher.db'}"))
    items = [make_item(n, f"Published at 00:30, {day}") for n, (_, day) in enumerate(MIDNIGHT)]
    items = [replace(item, published=at, updated=at) for item, (at, _) in zip(items, MIDNIGHT, strict=True)]
    pub.store.items.save(items, [], T0)
    pub.build()
    yield pub
    pub.close()


def test_the_pages_show_the_site_day_of_an_item_published_at_local_midnight(midnight: Publisher) -> None:
    """The HTML page and feed.xsl's page alike (lxml's XSLT)."""
    out = midnight.settings.feeds.output_dir
    stylesheet = lxml.etree.XSLT(lxml.etree.parse(str(out / "feed.xsl")))
    for name in ("feeds/news.atom.xml", "feeds/news.rss.xml"):
        data = (out / name).read_bytes()
        parsed = feedparser.parse(data)  # still a valid feed, the same instants
        assert parsed.bozo == 0, parsed.get("bozo_exception")
        published = [datetime.fromtimestamp(calendar.timegm(e.published_parsed), UTC) for e in parsed.entries]
        assert published == [at for at, _ in MIDNIGHT], name
        xsl_page = stylesheet(lxml.etree.fromstring(data))
        days = [(t.text, t.get("datetime")) for t in xsl_page.getroot().iter("time")]
        assert days == [(day, day) for _, day in MIDNIGHT], name
        html_page = parse_page(midnight, name)
        days = [(t.text, t.get("datetime")) for t in html_page.xpath("//ul[@class='items']//time")]
        assert days == [(day, day) for _, day in MIDNIGHT], name


@pytest.mark.browser
def test_a_browser_shows_the_site_day_whatever_its_own_zone(midnight: Publisher) -> None:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with Server(midnight) as server, sync_playwright() as p:
        browser = _launch(p)
        try:
            # A reader in California: the page still shows Zurich's day.
            page = browser.new_context(timezone_id="America/Los_Angeles").new_page()
            for name in ("news.atom.xml", "news.rss.xml"):
                response = page.goto(f"{server.base}/feeds/{name}")
                assert response is not None and response.headers["content-type"] == "text/html; charset=utf-8"
                assert page.locator("ul.items time").all_inner_texts() == [d for _, d in MIDNIGHT], name
            page.screenshot(path=str(SCREENSHOTS / "feed-page-midnight.png"), full_page=True)
        finally:
            browser.close()


def test_no_page_is_written_for_json_feed_only_sites(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(feeds={"formats": ["json"]})
    pub = Publisher(settings, Store(f"sqlite:///{tmp_path / 'json.db'}"))
    try:
        pub.store.items.save([make_item(1, "One")], [], T0)
        pub.build()
        assert not (settings.feeds.output_dir / ".feed-pages").exists()
    finally:
        pub.close()
    assert os.path.exists(settings.feeds.output_dir / "feeds/all.json")
