"""What a person sees when a browser opens a feed: Chromium applies feed.xsl.

The web app serves public/ on a free loopback port (uvicorn in a thread, as in
tests/test_web.py); Chromium (Playwright, Debian's /usr/bin/chromium) opens an Atom feed,
an RSS feed and an archive page and the test reads what the page shows. Screenshots go
to var/screenshots/feed-page-*.png. An item published at 00:30 in the site's zone shows
that day, not the UTC day before (lxml's XSLT and Chromium alike).
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import httpx
import lxml.etree
import pytest

from publisher.app import Publisher
from publisher.config import Settings
from publisher.models import Item
from publisher.store import Store
from tests.admin_client import require_chromium
from tests.test_web import Server

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).parent.parent / "var" / "screenshots"
T0 = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)


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


TITLES = [f"Pension reform, part {n}" for n in range(12)] + ["<script>alert(1)</script> & friends"]


@pytest.fixture
def publisher(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[Publisher]:
    settings = make_settings(feeds={"max_items": 10, "archive_page_size": 10})
    pub = Publisher(settings, Store(f"sqlite:///{tmp_path / 'publisher.db'}"))
    pub.store.items.save([make_item(n, t) for n, t in enumerate(TITLES)], [], T0)
    pub.build()
    yield pub
    pub.close()


def test_readers_get_the_feed_type_and_browsers_get_xml(publisher: Publisher) -> None:
    with Server(publisher) as server:
        url = f"{server.base}/feeds/news.atom.xml"
        reader = httpx.get(url, headers={"Accept": "application/atom+xml, application/xml;q=0.9, */*;q=0.1"})
        anything = httpx.get(url)
        browser = httpx.get(
            url, headers={"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
        )
        xsl = httpx.get(f"{server.base}/feed.xsl")
    assert reader.headers["content-type"] == "application/atom+xml; charset=utf-8"
    assert anything.headers["content-type"] == "application/atom+xml; charset=utf-8"
    assert browser.headers["content-type"] == "application/xml; charset=utf-8"
    assert reader.content == browser.content
    assert "accept" in browser.headers["vary"].lower()
    assert xsl.status_code == 200 and xsl.headers["content-type"].startswith("application/xml")


@pytest.mark.browser
def test_a_browser_shows_a_feed_as_a_readable_page(publisher: Publisher) -> None:
    require_chromium()
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    base = publisher.settings.site.base_url
    newest_first = list(reversed(TITLES))
    with Server(publisher) as server, sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page()
        try:
            page.goto(f"{server.base}/feeds/news.atom.xml")
            page.wait_for_selector("ul.items li")
            page.screenshot(path=str(SCREENSHOTS / "feed-page-atom.png"), full_page=True)
            assert page.locator("h1").inner_text() == "Social Protection Department: News"
            assert page.locator("ul.items h3").all_inner_texts() == newest_first[:10]
            assert page.input_value("#address") == f"{base}/feeds/news.atom.xml"
            assert "copy this address into your feed reader" in page.locator(".about").inner_text()
            assert page.locator("script").count() == 0  # the hostile title stayed text
            older = page.locator("a[rel=prev-archive]")  # "Older items": the newest archive page
            assert older.inner_text() == "Older items"
            assert older.get_attribute("href") == f"{base}/feeds/archive/news/1.atom.xml"

            page.goto(f"{server.base}/feeds/news.rss.xml")
            page.wait_for_selector("ul.items li")
            assert page.locator("ul.items h3").all_inner_texts() == newest_first[:10]
            assert page.input_value("#address") == f"{base}/feeds/news.rss.xml"

            page.goto(f"{server.base}/feeds/archive/news/1.atom.xml")
            page.wait_for_selector("ul.items li")
            page.screenshot(path=str(SCREENSHOTS / "feed-page-archive.png"), full_page=True)
            assert page.locator("ul.items h3").all_inner_texts() == TITLES[:3]  # oldest first
            assert page.input_value("#address") == f"{base}/feeds/news.atom.xml"  # subscribe to the feed
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


def test_feed_xsl_shows_the_site_day_of_an_item_published_at_local_midnight(midnight: Publisher) -> None:
    out = midnight.settings.feeds.output_dir
    stylesheet = lxml.etree.XSLT(lxml.etree.parse(str(out / "feed.xsl")))
    for name in ("feeds/news.atom.xml", "feeds/news.rss.xml"):
        data = (out / name).read_bytes()
        parsed = feedparser.parse(data)  # still a valid feed, the same instants
        assert parsed.bozo == 0, parsed.get("bozo_exception")
        published = [datetime.fromtimestamp(calendar.timegm(e.published_parsed), UTC) for e in parsed.entries]
        assert published == [at for at, _ in MIDNIGHT], name
        page = stylesheet(lxml.etree.fromstring(data))
        days = [(t.text, t.get("datetime")) for t in page.getroot().iter("time")]
        assert days == [(day, day) for _, day in MIDNIGHT], name


@pytest.mark.browser
def test_a_browser_shows_the_site_day_whatever_its_own_zone(midnight: Publisher) -> None:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with Server(midnight) as server, sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            # A reader in California: the page still shows Zurich's day.
            page = browser.new_context(timezone_id="America/Los_Angeles").new_page()
            for name in ("news.atom.xml", "news.rss.xml"):
                page.goto(f"{server.base}/feeds/{name}")
                page.wait_for_selector("ul.items li")
                assert page.locator("ul.items time.date").all_inner_texts() == [d for _, d in MIDNIGHT], name
            page.screenshot(path=str(SCREENSHOTS / "feed-page-midnight.png"), full_page=True)
        finally:
            browser.close()
