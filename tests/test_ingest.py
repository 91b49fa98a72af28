"""Ingest end to end: real files, a real HTTP server on loopback, SQLite and PostgreSQL."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import feedparser
import pytest
from sqlalchemy import event

from publisher.config import Settings, load_config
from publisher.feeds import build_feeds
from publisher.ingest import ingest
from publisher.store import Store
from tests.http_server import Upstream, drip
from tests.test_sources import HTML_SOURCE

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"
NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)

# -- a real HTTP server with ETag / Last-Modified handling --------------------------


@dataclass
class Page:
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    status: int = 200
    etag: str | None = None
    last_modified: str | None = None
    hang: bool = False


@dataclass
class Site:
    """What the server serves, and every request it received (path, headers)."""

    base: str = ""
    pages: dict[str, Page] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        return self.base + path

    def statuses(self) -> list[int]:
        return [int(h["x-status"]) for _, h in self.requests if "x-status" in h]


class _Handler(BaseHTTPRequestHandler):
    site: Site

    def do_GET(self) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.site.requests.append((self.path, headers))
        page = self.site.pages.get(self.path)
        if page is None:
            self._reply(404, b"not found", {})
            return
        if page.hang:
            self.site.release.wait(10)
            return
        extra = {k: v for k, v in (("ETag", page.etag), ("Last-Modified", page.last_modified)) if v}
        if (page.etag and headers.get("if-none-match") == page.etag) or (
            page.last_modified and headers.get("if-modified-since") == page.last_modified
        ):
            self._reply(304, b"", extra)
            return
        self._reply(page.status, page.body, {"Content-Type": page.content_type, **extra})

    def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.site.requests[-1][1]["x-status"] = str(status)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def site() -> Iterator[Site]:
    state = Site()
    handler = type("Handler", (_Handler,), {"site": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()


# -- helpers ------------------------------------------------------------------------


def html_source(url: str, **overrides: Any) -> dict[str, Any]:
    """The department-page source of the source tests, served from ``url``."""
    return {**HTML_SOURCE, "url": url, **overrides}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def item_file(folder: Path, name: str, *, body: str = "Body text.", **meta: str) -> Path:
    fields = {
        "title": "A title",
        "date": "2020-07-15",
        "link": f"https://www.example.org/news/{name}",
        **meta,
    }
    header = "".join(f"{k}: {v}\n" for k, v in fields.items() if v != "")
    return write(folder / f"{name}.md", f"---\n{header}---\n\n{body}\n")


def directory_settings(make_settings: Callable[..., Settings], folder: Path, **extra: Any) -> Settings:
    return make_settings(sources=[{"name": "local", "type": "directory", "path": str(folder), **extra}])


class WriteCounter:
    """Counts INSERT/UPDATE statements on the items table: 'nothing written' made checkable."""

    def __init__(self, store: Store) -> None:
        self.statements: list[str] = []
        event.listen(store.engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        head = " ".join(statement.split()[:3]).lower()
        if head.startswith(("insert into items", "update items")):
            self.statements.append(head)


# -- the sample content -------------------------------------------------------------


def test_sample_content_with_the_real_config_fills_every_category(store: Store) -> None:
    settings = load_config(REPO / "config.toml")

    report = ingest(settings, store, NOW)

    assert report.ok, (report.rejected, report.failed)
    assert report.warnings == []
    assert len(report.new) == 13
    counts = store.items.count_by_category()
    assert None not in counts
    for category in settings.categories:
        assert counts.get(category.slug, 0) > 0, f"category {category.slug} is empty"
    assert sum(counts.values()) == 13
    video = store.items.get("urn:publisher:sample:social-protection-a-vital-part-of-the-pandemic-response")
    assert video is not None
    assert video.category == "video-messages"
    assert video.published == datetime(2020, 7, 14, 22, tzinfo=UTC)  # midnight in Zurich (CEST)
    assert video.content.startswith("<p>ILO Director-General Guy Ryder")


# -- the html source over HTTP ------------------------------------------------------


def test_html_page_is_ingested_then_answered_304_on_the_next_run(
    store: Store, site: Site, make_settings: Callable[..., Settings]
) -> None:
    site.pages["/social-protection/news"] = Page(
        (DATA / "department-page.html").read_bytes(),
        etag='"v1"',
        last_modified="Wed, 15 Jul 2020 08:00:00 GMT",
    )
    settings = make_settings(sources=[html_source(site.url("/social-protection/news"))])

    first = ingest(settings, store, NOW)

    assert first.ok, (first.rejected, first.failed)
    assert len(first.new) == 13
    assert first.sources["department-page"].new == 13
    items = {i.title: i for i in store.items.latest(limit=100)}
    video = items["Social protection a vital part of the pandemic response"]
    assert video.link == site.url("/social-protection/news/WCMS_751030/lang--en/index.htm")
    assert video.id == video.link  # no id on the page: the canonical link is the id
    assert video.category == "video-messages"
    assert video.published == datetime(2020, 7, 14, 22, tzinfo=UTC)
    covid = items["COVID-19: Social protection systems failing vulnerable groups"]
    assert covid.image == site.url("/social-protection/images/WCMS_740101.jpg")
    more = items["Making social protection fit for the future"]
    assert f'href="{site.url("/social-protection/news/WCMS_731500/lang--en/index.htm")}"' in more.summary
    paper = items["Universal social protection for human dignity, social justice and sustainable development"]
    assert paper.category == "publications"
    week = next(i for i in items.values() if i.title.startswith("Global Social Protection Week"))
    assert week.category == "events"
    assert week.published == datetime(2019, 11, 24, 23, tzinfo=UTC)  # 25 Nov, Zurich (CET)
    assert store.sources.get("department-page").etag == '"v1"'

    second = ingest(settings, store, LATER)

    _, headers = site.requests[-1]
    assert headers["if-none-match"] == '"v1"'
    assert headers["if-modified-since"] == "Wed, 15 Jul 2020 08:00:00 GMT"
    assert headers["user-agent"] == "publisher/0.1"
    assert site.statuses() == [200, 304]
    assert second.sources["department-page"].not_modified
    assert second.new == [] and second.changed == []
    assert not second.changed_anything
    assert store.items.count() == 13
    state = store.sources.get("department-page")
    assert state.etag == '"v1"' and state.last_error is None


def test_a_source_that_times_out_fails_alone(
    store: Store, site: Site, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    site.pages["/slow"] = Page(b"", hang=True)
    item_file(tmp_path / "items", "kept", category="News")
    settings = make_settings(
        sources=[
            html_source(site.url("/slow"), name="slow-page", timeout=0.3),
            {"name": "local", "type": "directory", "path": str(tmp_path / "items")},
        ]
    )

    report = ingest(settings, store, NOW)

    (failure,) = report.failed
    assert failure.source == "slow-page"
    assert "timed out" in str(failure)
    assert not report.ok
    assert report.sources["slow-page"].error is not None
    assert report.sources["local"].new == 1
    assert store.items.count() == 1
    assert "timed out" in store.sources.get("slow-page").last_error


def test_a_server_error_fails_the_source_and_keeps_what_was_stored(
    store: Store, site: Site, make_settings: Callable[..., Settings]
) -> None:
    site.pages["/news"] = Page((DATA / "department-page.html").read_bytes(), etag='"v1"')
    settings = make_settings(sources=[html_source(site.url("/news"))])
    ingest(settings, store, NOW)
    site.pages["/news"] = Page(b"<h1>Internal Server Error</h1>", status=500)

    report = ingest(settings, store, LATER)

    (failure,) = report.failed
    assert failure.source == "department-page"
    assert "HTTP 500" in failure.cause
    assert store.items.count() == 13
    state = store.sources.get("department-page")
    assert state.last_error is not None and "HTTP 500" in state.last_error
    assert state.etag == '"v1"'  # validators of the last good fetch are kept


def test_feed_over_http_resolves_relative_links_against_the_feed_url(
    store: Store, site: Site, make_settings: Callable[..., Settings]
) -> None:
    site.pages["/feeds/comments.json"] = Page(
        b'{"version": "https://jsonfeed.org/version/1.1", "items": [{"id": "c1", "url": "/c/1",'
        b' "title": "One", "date_published": "2020-07-16T11:00:00+02:00", "tags": ["Comment"]}]}',
        content_type="application/feed+json",
    )
    settings = make_settings(
        sources=[{"name": "comments", "type": "feed", "url": site.url("/feeds/comments.json")}]
    )

    report = ingest(settings, store, NOW)

    assert report.ok and report.new == ["c1"]
    item = store.items.get("c1")
    assert item is not None
    assert item.link == site.url("/c/1")
    assert item.category == "comments"
    assert item.published == datetime(2020, 7, 16, 9, tzinfo=UTC)


# -- validation ---------------------------------------------------------------------


def test_bad_items_are_rejected_with_file_and_reason_and_the_rest_stored(
    store: Store, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    folder = tmp_path / "items"
    item_file(folder, "good", category="News")
    item_file(folder, "no-title", title="")
    item_file(folder, "no-date", date="")
    item_file(folder, "bad-date", date="15/07/2020")
    item_file(folder, "no-link", link="")
    item_file(folder, "relative-link", link="/news/relative")
    item_file(folder, "script-link", link="javascript:alert(1)")
    write(folder / "no-front-matter.md", "Just text.\n")

    report = ingest(directory_settings(make_settings, folder), store, NOW)

    assert not report.ok
    assert len(report.new) == 1
    assert store.items.count() == 1
    reasons = {Path(e.where).name: e.reason for e in report.rejected}
    assert set(reasons) == {
        "no-title.md", "no-date.md", "bad-date.md", "no-link.md", "relative-link.md",
        "script-link.md", "no-front-matter.md",
    }  # fmt: skip
    assert (
        reasons["no-title.md"]
        == "missing title: add a 'title:' line to the front matter, e.g. 'title: My news'"
    )
    assert reasons["no-date.md"].startswith("missing date: add a 'date:' line")
    assert "'15/07/2020' is not a date" in reasons["bad-date.md"]
    assert "ISO 8601, e.g. 2020-07-15" in reasons["bad-date.md"]
    assert reasons["no-link.md"].startswith("missing link: add a 'link:' line")
    assert "not an absolute http(s) URL" in reasons["relative-link.md"]
    assert "not an absolute http(s) URL" in reasons["script-link.md"]
    assert report.sources["local"].rejected == 7
    assert report.sources["local"].new == 1
    assert store.sources.get("local").item_count == 1


def test_an_unknown_label_is_a_warning_and_the_item_is_kept_without_category(
    store: Store, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    folder = tmp_path / "items"
    path = item_file(folder, "podcast", category="Podcast")

    report = ingest(directory_settings(make_settings, folder), store, NOW)

    assert report.ok
    (warning,) = report.warnings
    assert warning.where == str(path)
    assert "label 'Podcast' matches no category" in warning.reason
    assert "all-items feed" in warning.reason
    (item,) = store.items.latest()
    assert item.label == "Podcast" and item.category is None


def test_duplicate_ids_in_one_run_reject_the_second(
    store: Store, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    folder = tmp_path / "items"
    item_file(folder, "a", id="urn:x:1", title="First", category="News")
    second = item_file(folder, "b", id="urn:x:1", title="Second", category="News")

    report = ingest(directory_settings(make_settings, folder), store, NOW)

    (rejected,) = report.rejected
    assert rejected.where == str(second)
    assert "duplicate id 'urn:x:1'" in rejected.reason
    assert str(folder / "a.md") in rejected.reason
    item = store.items.get("urn:x:1")
    assert item is not None and item.title == "First"


# -- identity and change detection --------------------------------------------------


def test_editing_an_item_keeps_its_id_and_published_and_moves_updated(
    store: Store, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    folder = tmp_path / "items"
    path = item_file(folder, "2020-07-15-story", title="Old title", category="News")
    settings = directory_settings(make_settings, folder)
    (item_id,) = ingest(settings, store, NOW).new
    before = store.items.get(item_id)
    assert before is not None

    path.write_text(path.read_text().replace("Old title", "New title"))
    path.rename(folder / "renamed-later.md")
    report = ingest(settings, store, LATER)

    assert report.changed == [item_id]
    assert (report.new_count, report.changed_count, report.unchanged_count) == (0, 1, 0)
    assert report.changed_anything
    after = store.items.get(item_id)
    assert after is not None
    assert after.title == "New title"
    assert after.published == before.published
    assert before.updated == before.published
    assert after.updated == LATER
    assert after.content_hash != before.content_hash
    assert store.items.count() == 1


def test_a_given_updated_date_is_used_when_it_moves(
    store: Store, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    folder = tmp_path / "items"
    path = item_file(folder, "story", id="urn:x:story", category="News", body="First version.")
    settings = directory_settings(make_settings, folder)
    ingest(settings, store, NOW)

    path.write_text(path.read_text().replace("First version.", "Second version.").replace(
        "category: News", "category: News\nupdated: 2020-07-20T10:00:00+00:00"
    ))  # fmt: skip
    report = ingest(settings, store, LATER)

    assert report.changed == ["urn:x:story"]
    item = store.items.get("urn:x:story")
    assert item is not None
    assert item.updated == datetime(2020, 7, 20, 10, tzinfo=UTC)
    assert item.content == "<p>Second version.</p>"


def test_reingesting_unchanged_sources_writes_nothing(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        sources=[
            {"name": "sample", "type": "directory", "path": str(REPO / "content")},
            {"name": "pubs", "type": "feed", "url": str(DATA / "upstream.atom.xml")},
            {"name": "comments", "type": "feed", "url": str(DATA / "upstream.json")},
        ]
    )
    first = ingest(settings, store, NOW)
    assert len(first.new) == 17
    before = {i.id: i for i in store.items.latest(limit=100)}
    writes = WriteCounter(store)

    report = ingest(settings, store, LATER)

    assert sorted(report.unchanged) == sorted(first.new)
    assert report.new == [] and report.changed == []
    assert not report.changed_anything
    assert writes.statements == []
    assert {i.id: i for i in store.items.latest(limit=100)} == before


def test_ids_fall_back_to_the_canonical_link(store: Store, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        sources=[{"name": "up", "type": "feed", "url": str(DATA / "upstream.rss.xml"), "category": "News"}]
    )
    report = ingest(settings, store, NOW)

    assert sorted(report.new) == [
        "https://www.example.org/social-protection/news/WCMS_647371/",
        "urn:example:news:744612",
    ]
    guidless = store.items.get("https://www.example.org/social-protection/news/WCMS_647371/")
    assert guidless is not None
    assert guidless.link == "https://WWW.Example.org/social-protection/news/WCMS_647371/#top"
    assert guidless.summary == "<p>Two UN agency heads have signed a call for action.</p>"
    release = store.items.get("urn:example:news:744612")
    assert release is not None and release.category == "press-releases"


# -- cleaning -----------------------------------------------------------------------


def test_html_is_sanitised(store: Store, tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    folder = tmp_path / "items"
    body = (
        'Intro with <b onclick="steal()">bold</b> and <a href="javascript:alert(1)">a trap</a>.\n\n'
        "<script>alert('x')</script>\n\n<style>p { display: none }</style>\n\n"
        '<img src="/pics/a.png" onerror="steal()" alt="A">\n\n'
        "[relative](/more) and [absolute](https://www.example.org/x)."
    )
    item_file(
        folder, "evil", id="urn:x:evil", category="News", body=body,
        summary="'Click <a href=\"javascript:steal()\" onmouseover=\"x()\">here</a> *now*'",
    )  # fmt: skip

    report = ingest(directory_settings(make_settings, folder), store, NOW)

    assert report.ok
    item = store.items.get("urn:x:evil")
    assert item is not None
    for text in (item.content, item.summary):
        assert "<script" not in text and "alert('x')" not in text
        assert "<style" not in text and "display: none" not in text
        assert "onclick" not in text and "onerror" not in text and "onmouseover" not in text
        assert "javascript:" not in text
    assert '<b>bold</b> and <a rel="noopener noreferrer">a trap</a>' in item.content
    assert '<img src="https://www.example.org/pics/a.png" alt="A">' in item.content
    assert '<a href="https://www.example.org/more" rel="noopener noreferrer">relative</a>' in item.content
    assert item.summary == 'Click <a rel="noopener noreferrer">here</a> <em>now</em>'


def test_the_summary_defaults_to_the_first_paragraph(
    store: Store, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    folder = tmp_path / "items"
    item_file(folder, "s", id="urn:x:s", category="News", body="First *para* & more.\n\nSecond para.")

    ingest(directory_settings(make_settings, folder), store, NOW)

    item = store.items.get("urn:x:s")
    assert item is not None
    assert item.summary == "First para &amp; more."


def test_control_characters_are_removed_so_feeds_can_be_written(
    store: Store, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    folder = tmp_path / "items"
    item_file(
        folder, "ctl", id="urn:x:ctl", category="News",
        title='"Bell\\x07 and\\x00 null"', summary='"Form\\x0cfeed"', body="Vertical\x0btab\x1f.",
    )  # fmt: skip

    settings = directory_settings(make_settings, folder)
    report = ingest(settings, store, NOW)

    assert report.ok, report.rejected
    item = store.items.get("urn:x:ctl")
    assert item is not None
    assert item.title == "Bell and null"
    assert item.summary == "Formfeed"
    assert item.content == "<p>Verticaltab.</p>"
    build_feeds(settings, store)  # feedgen would raise on any control character left
    feeds = settings.feeds.output_dir / "feeds"
    assert b"Bell and null" in (feeds / "all.atom.xml").read_bytes()
    assert b"Bell and null" in (feeds / "all.rss.xml").read_bytes()


def test_dates_without_zone_are_read_in_the_site_zone(
    store: Store, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    folder = tmp_path / "items"
    item_file(folder, "naive", id="urn:x:naive", category="News", date="2020-07-15 10:00:00")
    item_file(folder, "winter", id="urn:x:winter", category="News", date="2020-01-15T10:00:00")
    item_file(folder, "aware", id="urn:x:aware", category="News", date="2020-07-15T10:00:00-04:00")
    item_file(folder, "rfc", id="urn:x:rfc", category="News", date="'Wed, 15 Jul 2020 10:00:00 +0000'")

    report = ingest(directory_settings(make_settings, folder), store, NOW)

    assert report.ok, report.rejected
    published = {i.id: i.published for i in store.items.latest(limit=10)}
    assert published["urn:x:naive"] == datetime(2020, 7, 15, 8, tzinfo=UTC)  # Europe/Zurich, CEST
    assert published["urn:x:winter"] == datetime(2020, 1, 15, 9, tzinfo=UTC)  # CET
    assert published["urn:x:aware"] == datetime(2020, 7, 15, 14, tzinfo=UTC)
    assert published["urn:x:rfc"] == datetime(2020, 7, 15, 10, tzinfo=UTC)
    assert all(p.tzinfo is not None for p in published.values())


RSS_TWO_ITEMS = """<?xml version="1.0"?>
<rss version="2.0"><channel><title>Up</title><link>https://up.example.org/</link>
<item><title>Bad year</title><link>https://up.example.org/bad</link><guid>{tag}-bad</guid>
<pubDate>{date}</pubDate></item>
<item><title>Good one</title><link>https://up.example.org/{tag}/good</link><guid>{tag}-good</guid>
<pubDate>Mon, 06 Jan 2020 10:00:00 +0000</pubDate></item>
</channel></rss>"""

JSON_TWO_ITEMS = """{{"version": "https://jsonfeed.org/version/1.1", "title": "Up", "items": [
 {{"id": "{tag}-bad", "url": "https://up.example.org/bad", "title": "Bad year", "date_published": "{date}"}},
 {{"id": "{tag}-good", "url": "https://up.example.org/{tag}/good", "title": "Good one",
   "date_published": "2020-01-06T10:00:00+00:00"}}]}}"""

YEAR_ONE_PAGE = """<ul>
<li class="news-item"><span class="type">News</span> <span class="date">01 January 0001</span>
<h3><a href="https://up.example.org/bad">Bad year</a></h3><p>Summary.</p></li>
<li class="news-item"><span class="type">News</span> <span class="date">06 January 2020</span>
<h3><a href="https://up.example.org/{tag}/good">Good one</a></h3><p>Summary.</p></li>
</ul>"""


def test_dates_of_year_1_or_9999_reject_that_item_only_and_feeds_are_still_written(
    store: Store, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    folder = tmp_path / "items"
    good = item_file(folder, "good", id="urn:x:good", category="News")
    year_1 = item_file(folder, "year-1", id="urn:x:year-1", category="News", date="0001-01-01")
    year_9999 = item_file(
        folder, "year-9999", id="urn:x:year-9999", category="News", date="9999-12-31T23:00:00-05:00"
    )
    future = item_file(folder, "future", id="urn:x:future", category="News", date="2026-03-01")
    old = item_file(folder, "old", id="urn:x:old", category="News", date="1899-12-31")
    rss = write(tmp_path / "up.rss.xml", RSS_TWO_ITEMS.format(tag="rss", date="9999-12-31T23:00:00-05:00"))
    year_0 = RSS_TWO_ITEMS.format(tag="zero", date="0001-01-01T00:00:00+01:00")  # year 0 in UTC
    rss_year_0 = write(tmp_path / "zero.rss.xml", year_0)
    json_feed = write(tmp_path / "up.json", JSON_TWO_ITEMS.format(tag="json", date="0001-01-01T00:00:00"))
    page = write(tmp_path / "page.html", YEAR_ONE_PAGE.replace("/good", "/page/good"))
    settings = make_settings(
        sources=[
            {"name": "local", "type": "directory", "path": str(folder)},
            {"name": "rss", "type": "feed", "url": str(rss), "category": "News"},
            {"name": "rss-zero", "type": "feed", "url": str(rss_year_0), "category": "News"},
            {"name": "json", "type": "feed", "url": str(json_feed), "category": "News"},
            html_source(str(page), name="page"),
        ]
    )

    report = ingest(settings, store, NOW)  # Europe/Zurich: 0001-01-01 local is year 0 in UTC

    assert report.failed == []
    reasons = {e.where: e.reason for e in report.rejected}
    assert set(reasons) == {
        str(year_1), str(year_9999), str(future), str(old),
        f"{rss}#1", f"{rss_year_0}#1", f"{json_feed}#1", f"{page}#1",
    }  # fmt: skip
    assert reasons[str(year_1)] == (
        "date '0001-01-01T00:00:00' is out of range: a date must fall between 1900-01-01 and "
        "2025-03-02 (a year after this run); correct this item's date where it is written, e.g. 2020-07-15"
    )
    assert reasons[str(year_9999)].startswith("date '9999-12-31T23:00:00-05:00' is out of range")
    assert reasons[f"{rss}#1"].startswith("date '9999-12-31T23:00:00-05:00' is out of range")
    assert reasons[f"{json_feed}#1"].startswith("date '0001-01-01T00:00:00' is out of range")
    assert all("out of range" in reason for reason in reasons.values())
    assert {name: counts.new for name, counts in report.sources.items()} == {
        "local": 1, "rss": 1, "rss-zero": 1, "json": 1, "page": 1,
    }  # fmt: skip
    assert store.items.get("urn:x:good") is not None and store.items.get("rss-bad") is None
    assert str(good) not in reasons

    build_feeds(settings, store)
    feeds = settings.feeds.output_dir / "feeds"
    parsed = feedparser.parse((feeds / "all.rss.xml").read_bytes())
    assert not parsed.bozo
    assert sorted(e.title for e in parsed.entries) == ["A title"] + ["Good one"] * 4
    assert all(e.published_parsed.tm_year == 2020 for e in parsed.entries)


MARKUP_TITLES_RSS = """<?xml version="1.0"?>
<rss version="2.0"><channel><title>Up</title><link>https://up.example.org/</link>
<item><title><![CDATA[It&#8217;s Q&amp;A time]]></title><link>https://up.example.org/1</link>
<pubDate>Mon, 06 Jan 2020 10:00:00 +0000</pubDate></item>
<item><title>Fish &amp; chips, 3 &lt; 4 &#8212; really</title><link>https://up.example.org/2</link>
<pubDate>Mon, 06 Jan 2020 10:00:00 +0000</pubDate></item>
</channel></rss>"""

MARKUP_TITLES_ATOM = """<?xml version="1.0"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Up</title><id>urn:up</id>
<updated>2020-01-06T10:00:00Z</updated>
<entry><title type="html">&lt;b&gt;Bold&lt;/b&gt; &amp;amp; plain</title><id>urn:up:3</id>
<link href="https://up.example.org/3"/><updated>2020-01-06T10:00:00Z</updated></entry>
<entry><title type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><i>Shown</i> in italics</div></title>
<id>urn:up:4</id><link href="https://up.example.org/4"/><updated>2020-01-06T10:00:00Z</updated></entry>
<entry><title type="text">a &lt;b&gt; literal &amp;amp; kept</title><id>urn:up:5</id>
<link href="https://up.example.org/5"/><updated>2020-01-06T10:00:00Z</updated></entry>
</feed>"""


def test_titles_a_feed_marks_as_html_are_stored_and_published_as_plain_text(
    store: Store, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    rss = write(tmp_path / "up.rss.xml", MARKUP_TITLES_RSS)
    atom = write(tmp_path / "up.atom.xml", MARKUP_TITLES_ATOM)
    settings = make_settings(
        sources=[
            {"name": "rss", "type": "feed", "url": str(rss), "category": "News"},
            {"name": "atom", "type": "feed", "url": str(atom), "category": "News"},
        ]
    )

    report = ingest(settings, store, NOW)

    assert report.ok, (report.rejected, report.failed)
    titles = {i.link: i.title for i in store.items.latest(limit=10)}
    assert titles == {
        "https://up.example.org/1": "It\u2019s Q&A time",
        "https://up.example.org/2": "Fish & chips, 3 < 4 \u2014 really",  # text/plain: as it was
        "https://up.example.org/3": "Bold & plain",
        "https://up.example.org/4": "Shown in italics",
        "https://up.example.org/5": "a <b> literal &amp; kept",  # type="text": as it was
    }
    build_feeds(settings, store)
    feeds = settings.feeds.output_dir / "feeds"
    for name in ("all.rss.xml", "all.atom.xml"):
        parsed = feedparser.parse((feeds / name).read_bytes())
        assert sorted(e.title for e in parsed.entries) == sorted(titles.values()), name
    assert b"&amp;#8217;" not in (feeds / "all.rss.xml").read_bytes()


ZONELESS_RSS = """<?xml version="1.0"?>
<rss version="2.0"><channel><title>Up</title><link>https://up.example.org/</link>
<item><title>Naive</title><link>https://up.example.org/naive</link>
<pubDate>2020-07-15 10:00:00</pubDate></item>
<item><title>Winter</title><link>https://up.example.org/winter</link>
<pubDate>2020-01-15T10:00:00</pubDate></item>
<item><title>Day</title><link>https://up.example.org/day</link><pubDate>2020-07-15</pubDate></item>
<item><title>Zulu</title><link>https://up.example.org/zulu</link>
<pubDate>2020-07-15T10:00:00Z</pubDate></item>
<item><title>Offset</title><link>https://up.example.org/offset</link>
<pubDate>2020-07-15T10:00:00-04:00</pubDate></item>
<item><title>RFC</title><link>https://up.example.org/rfc</link>
<pubDate>Wed, 15 Jul 2020 10:00:00 -0000</pubDate></item>
</channel></rss>"""


def test_feed_dates_without_zone_are_read_in_the_site_zone(
    store: Store, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    rss = write(tmp_path / "up.rss.xml", ZONELESS_RSS)
    settings = make_settings(sources=[{"name": "up", "type": "feed", "url": str(rss), "category": "News"}])

    report = ingest(settings, store, NOW)

    assert report.ok, report.rejected
    published = {i.title: i.published for i in store.items.latest(limit=10)}
    assert published == {
        "Naive": datetime(2020, 7, 15, 8, tzinfo=UTC),  # Europe/Zurich, CEST
        "Winter": datetime(2020, 1, 15, 9, tzinfo=UTC),  # CET
        "Day": datetime(2020, 7, 14, 22, tzinfo=UTC),  # midnight in Zurich
        "Zulu": datetime(2020, 7, 15, 10, tzinfo=UTC),
        "Offset": datetime(2020, 7, 15, 14, tzinfo=UTC),
        "RFC": datetime(2020, 7, 15, 10, tzinfo=UTC),
    }


def test_language_defaults_to_the_source_then_the_site(
    store: Store, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    write(tmp_path / "fr" / "a.md", "---\ntitle: A\ndate: 2020-01-01\nlink: https://e.org/a\nid: a\n---\n")
    write(
        tmp_path / "fr" / "b.md",
        "---\ntitle: B\ndate: 2020-01-01\nlink: https://e.org/b\nid: b\nlanguage: es\n---\n",
    )
    write(tmp_path / "any" / "c.md", "---\ntitle: C\ndate: 2020-01-01\nlink: https://e.org/c\nid: c\n---\n")
    settings = make_settings(
        sources=[
            {"name": "french", "type": "directory", "path": str(tmp_path / "fr"), "language": "fr"},
            {"name": "other", "type": "directory", "path": str(tmp_path / "any")},
        ]
    )

    ingest(settings, store, NOW)

    assert {i.id: i.language for i in store.items.latest()} == {"a": "fr", "b": "es", "c": "en"}


PAGE = """<ul>
<li class="news-item"><span class="type">News</span> <span class="date">04 November 2019</span>
<h3><a href="/news/belgian">{title}</a></h3><p>Summary.</p></li>
<li class="news-item"><span class="type">News</span> <span class="date">25 November 2019</span>
<h3></h3><p>An item whose title link is missing.</p></li>
</ul>"""


def test_html_items_keep_their_id_across_edits_and_bad_ones_name_their_place(
    store: Store, site: Site, make_settings: Callable[..., Settings]
) -> None:
    url = site.url("/news")
    site.pages["/news"] = Page(PAGE.format(title="Belgian stakeholders").encode(), etag='"v1"')
    settings = make_settings(sources=[html_source(url)])

    first = ingest(settings, store, NOW)
    (rejected,) = first.rejected
    assert rejected.where == f"{url}#2" and "h3 a" in rejected.reason and "title" in rejected.reason
    assert first.new == [site.url("/news/belgian")]

    site.pages["/news"] = Page(PAGE.format(title="Belgian stakeholders reflect").encode(), etag='"v2"')
    second = ingest(settings, store, LATER)
    assert second.new == [] and second.changed == [site.url("/news/belgian")]
    item = store.items.get(site.url("/news/belgian"))
    assert item is not None and item.title == "Belgian stakeholders reflect" and item.updated == LATER
    assert store.items.count() == 1


# -- hostile sizes and characters ---------------------------------------------------


def test_over_long_titles_and_summaries_are_cut_at_a_word(
    store: Store, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    folder = tmp_path / "items"
    item_file(
        folder, "long", id="urn:x:long", category="News",
        title='"' + "Budget " * 30_000 + '"', summary='"<b>Cuts</b> & ' + "more " * 3_000 + '"',
    )  # fmt: skip
    item_file(folder, "short", id="urn:x:short", category="News", summary='"<b>Short</b> & sweet"')

    report = ingest(directory_settings(make_settings, folder), store, NOW)

    assert report.ok, report.rejected
    item = store.items.get("urn:x:long")
    assert item is not None
    assert len(item.title) <= 500 and item.title.endswith("Budget…")
    # The over-long summary's text is cut and re-escaped: no tag left open.
    assert item.summary.startswith("Cuts &amp; more more") and item.summary.endswith("more…")
    assert len(item.summary) <= 10_000 + len("&amp;") and "<" not in item.summary
    warnings = [str(w) for w in report.warnings]
    assert any("long.md: title of 209999 characters cut to" in w for w in warnings), warnings
    assert any("long.md: summary of" in w and "max_summary_length" in w for w in warnings), warnings
    short = store.items.get("urn:x:short")
    assert short is not None and short.summary == "<b>Short</b> &amp; sweet"  # untouched


def test_the_length_limits_are_configurable(
    store: Store, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    folder = tmp_path / "items"
    item_file(folder, "t", id="urn:x:t", category="News", title='"Twenty five characters here and more"')
    settings = make_settings(
        sources=[{"name": "local", "type": "directory", "path": str(folder)}],
        items={"max_title_length": 25},
    )

    ingest(settings, store, NOW)

    item = store.items.get("urn:x:t")
    assert item is not None and item.title == "Twenty five characters…"


def test_bidi_controls_are_removed_from_titles_and_labels(
    store: Store, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    folder = tmp_path / "items"
    item_file(folder, "b", id="urn:x:b", category='"\u202eNews"', title='"Invoice \u202egnp.exe\u2066"')

    report = ingest(directory_settings(make_settings, folder), store, NOW)

    item = store.items.get("urn:x:b")
    assert item is not None and report.ok
    assert item.title == "Invoice gnp.exe" and item.label == "News" and item.category == "news"


def test_a_malformed_language_is_replaced_by_the_source_language_with_a_warning(
    store: Store, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    folder = tmp_path / "items"
    item_file(folder, "bad", id="urn:x:bad", category="News", language="'en\"><script>'")
    item_file(folder, "good", id="urn:x:good", category="News", language="fr-CH")
    settings = directory_settings(make_settings, folder, language="es")

    report = ingest(settings, store, NOW)
    build_feeds(settings, store)

    bad, good = store.items.get("urn:x:bad"), store.items.get("urn:x:good")
    assert bad is not None and bad.language == "es"
    assert good is not None and good.language == "fr-CH"
    assert report.ok  # the item is kept, with its source's language
    assert any(
        "bad.md: language 'en\"><script>'" in str(w) and "'es' used instead" in str(w)
        for w in report.warnings
    )
    assert "<script>" not in (tmp_path / "public" / "feeds" / "all.json").read_text()


# -- hostile upstreams: one source fails, the others run ----------------------------


def test_a_dripping_server_fails_its_source_at_the_deadline_and_the_next_source_runs(
    store: Store, upstream: Upstream, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    upstream.routes["/news"] = drip(0.3)  # per-read timeouts never fire on this
    item_file(tmp_path / "items", "kept", category="News")
    settings = make_settings(
        sources=[
            html_source(upstream.url("/news"), name="drip", timeout=1),
            {"name": "local", "type": "directory", "path": str(tmp_path / "items")},
        ]
    )

    started = time.monotonic()
    report = ingest(settings, store, NOW)
    took = time.monotonic() - started

    assert took < 2.5, f"ingest took {took:.1f} s"
    (failure,) = report.failed
    assert (
        failure.cause
        == f"timed out after 1 s fetching {upstream.url('/news')}; raise timeout if it is just slow"
    )
    assert report.sources["local"].new == 1


def test_a_markdown_file_over_max_bytes_is_rejected_unread_and_the_rest_stored(
    store: Store, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    folder = tmp_path / "items"
    item_file(folder, "small", id="urn:x:small", category="News")
    big = item_file(folder, "big", id="urn:x:big", category="News", body="word " * 400)  # ~2 KB
    huge = folder / "huge.md"
    with huge.open("wb") as f:
        f.truncate(30 * 1024 * 1024)  # 30 MB, sparse: costs no disk, and must cost no memory
    fifo = folder / "pipe.md"
    os.mkfifo(fifo)  # opening it would block until a writer comes
    settings = directory_settings(make_settings, folder, max_bytes=1024)

    started = time.monotonic()
    report = ingest(settings, store, NOW)

    assert time.monotonic() - started < 5
    assert report.new == ["urn:x:small"]
    reasons = {Path(e.where).name: e.reason for e in report.rejected}
    assert reasons == {
        "big.md": (
            f"the file is {big.stat().st_size} bytes, larger than max_bytes = 1024 bytes (0.000977 MiB) "
            "of source 'local'; shorten it, or raise max_bytes of this source in config.toml"
        ),
        "huge.md": (
            "the file is 31457280 bytes, larger than max_bytes = 1024 bytes (0.000977 MiB) "
            "of source 'local'; shorten it, or raise max_bytes of this source in config.toml"
        ),
        "pipe.md": "not a regular file; remove it or rename it to something other than *.md",
    }
    assert report.sources["local"].rejected == 3
    assert store.items.get("urn:x:big") is None


def test_markdown_files_with_windows_line_ends_read_as_before(
    store: Store, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    folder = tmp_path / "items"
    folder.mkdir()
    (folder / "crlf.md").write_bytes(
        b"---\r\ntitle: Line ends\r\ndate: 2020-07-15\r\nlink: https://www.example.org/n/1\r\n"
        b"category: News\r\n---\r\n\r\nFirst line\r\nsecond line.\r\n"
    )

    report = ingest(directory_settings(make_settings, folder), store, NOW)

    assert report.ok, report.rejected
    item = store.items.get("https://www.example.org/n/1")
    assert item is not None and item.content == "<p>First line\nsecond line.</p>"


def test_a_json_feed_nested_100k_deep_fails_alone(
    store: Store, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    deep = tmp_path / "deep.json"
    deep.write_bytes(b'{"version": "https://jsonfeed.org/version/1.1", "items": ' + b"[" * 100_000 + b"]}")
    item_file(tmp_path / "items", "kept", category="News")
    settings = make_settings(
        sources=[
            {"name": "deep", "type": "feed", "url": str(deep)},
            {"name": "local", "type": "directory", "path": str(tmp_path / "items")},
        ]
    )

    report = ingest(settings, store, NOW)

    (failure,) = report.failed
    assert str(failure) == f"source 'deep': {deep} is nested too deeply to be read"
    assert report.sources["local"].new == 1
    assert "nested too deeply" in store.sources.get("deep").last_error


def test_a_page_of_5000_items_gives_the_1000_newest_and_a_warning(
    store: Store, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    days = list(range(5000))
    random.Random(7).shuffle(days)  # the page is in no particular order
    rows = "".join(
        f'<li class="news-item"><span class="type">News</span><span class="date">'
        f"{(date(2000, 1, 1) + timedelta(days=d)).strftime('%d %B %Y')}</span>"
        f'<h3><a href="/n/{d}">Item {d}</a></h3></li>'
        for d in days
    )
    page = write(tmp_path / "page.html", f"<ul>{rows}</ul>")
    source = html_source(str(page), base_url="https://www.example.org/", max_items_per_run=1000)

    report = ingest(make_settings(sources=[source]), store, NOW)

    assert len(report.new) == 1000
    assert report.sources["department-page"].left_out == 4000
    stored = store.items.latest(limit=2000)
    assert {i.link for i in stored} == {f"https://www.example.org/n/{d}" for d in range(4000, 5000)}
    (warning,) = report.warnings
    assert warning.where == str(page)
    assert warning.reason == (
        "source 'department-page' offered 5000 items; only the newest max_items_per_run = 1000 were "
        "taken and 4000 left out; raise max_items_per_run of this source to take more"
    )


def test_a_stop_request_gives_up_the_fetch_and_starts_no_other_source(
    store: Store, upstream: Upstream, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    upstream.routes["/news"] = drip(0.3)
    item_file(tmp_path / "items", "later", category="News")
    settings = make_settings(
        sources=[
            html_source(upstream.url("/news"), name="drip", timeout=600),
            {"name": "local", "type": "directory", "path": str(tmp_path / "items")},
        ]
    )
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()

    started = time.monotonic()
    report = ingest(settings, store, NOW, should_stop=stop.is_set)

    assert time.monotonic() - started < 1.5
    (failure,) = report.failed
    assert failure.cause == f"stopped before {upstream.url('/news')} was read (the publisher is stopping)"
    assert report.skipped == ["local"]
    assert store.items.count() == 0


# -- media: pictures and enclosures -------------------------------------------------

MEDIA_RSS = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/">
  <channel>
    <title>Upstream</title><link>https://up.example.org/</link><description>d</description>
    <item>
      <title>A video message</title>
      <link>https://up.example.org/news/video</link>
      <pubDate>Wed, 15 Jul 2020 09:00:00 +0200</pubDate>
      <enclosure url="/media/video.mp4" length="48213776" type="video/mp4"/>
      <media:thumbnail url="https://up.example.org/img/video.jpg" width="640" height="360"/>
    </item>
    <item>
      <title>A picture as media:content, a bad enclosure</title>
      <link>https://up.example.org/news/picture</link>
      <pubDate>Wed, 15 Jul 2020 10:00:00 +0200</pubDate>
      <media:content url="https://up.example.org/img/p.png" medium="image" type="image/png"
        width="800" height="600"/>
      <enclosure url="javascript:alert(1)" length="12" type="audio/mpeg"/>
    </item>
  </channel>
</rss>
"""

MEDIA_ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Upstream</title><id>urn:x</id><updated>2020-07-15T10:00:00Z</updated>
  <entry>
    <title>An audio interview</title><id>urn:x:1</id>
    <link href="https://up.example.org/news/audio"/>
    <link rel="enclosure" href="https://up.example.org/media/interview.mp3" type="audio/mpeg" length="1234"/>
    <updated>2020-07-15T10:00:00Z</updated>
  </entry>
</feed>
"""

MEDIA_JSON = b"""{"version": "https://jsonfeed.org/version/1.1", "title": "Upstream", "items": [
  {"id": "j1", "url": "https://up.example.org/news/report", "title": "A report",
   "date_published": "2020-07-15T10:00:00Z", "content_text": "Text.",
   "image": "https://up.example.org/img/report.jpg",
   "attachments": [{"url": "/files/report.pdf", "mime_type": "application/pdf", "size_in_bytes": 20480}]},
  {"id": "j2", "url": "https://up.example.org/news/untyped", "title": "Untyped attachment",
   "date_published": "2020-07-15T11:00:00Z", "content_text": "Text.",
   "attachments": [{"url": "https://up.example.org/files/x.bin"}]}
]}
"""


def test_feed_sources_keep_enclosures_and_thumbnails_and_drop_a_bad_one_keeping_the_item(
    store: Store, site: Site, make_settings: Callable[..., Settings]
) -> None:
    site.pages["/rss"] = Page(MEDIA_RSS, "application/rss+xml")
    site.pages["/atom"] = Page(MEDIA_ATOM, "application/atom+xml")
    site.pages["/json"] = Page(MEDIA_JSON, "application/feed+json")
    settings = make_settings(
        sources=[
            {"name": name, "type": "feed", "url": site.url(f"/{name}"), "category": "News"}
            for name in ("rss", "atom", "json")
        ]
    )

    report = ingest(settings, store, NOW)

    assert report.ok, (report.rejected, report.failed)
    items = {i.title: i for i in store.items.latest(limit=10)}
    assert len(items) == 5  # every item kept, bad media or not
    video = items["A video message"]
    # Resolved against the item's link, not the feed's address.
    assert (video.enclosure_url, video.enclosure_type, video.enclosure_length) == (
        "https://up.example.org/media/video.mp4",
        "video/mp4",
        48213776,
    )
    assert (video.image, video.image_width, video.image_height) == (
        "https://up.example.org/img/video.jpg",
        640,
        360,
    )
    picture = items["A picture as media:content, a bad enclosure"]
    assert (picture.image, picture.image_width, picture.image_height) == (
        "https://up.example.org/img/p.png",
        800,
        600,
    )
    assert picture.enclosure_url is None and picture.enclosure_type is None
    audio = items["An audio interview"]
    assert (audio.enclosure_url, audio.enclosure_type, audio.enclosure_length) == (
        "https://up.example.org/media/interview.mp3",
        "audio/mpeg",
        1234,
    )
    report_item = items["A report"]
    assert report_item.image == "https://up.example.org/img/report.jpg"
    assert (report_item.enclosure_url, report_item.enclosure_type, report_item.enclosure_length) == (
        "https://up.example.org/files/report.pdf",
        "application/pdf",
        20480,
    )
    assert items["Untyped attachment"].enclosure_url is None
    warnings = {w.where: w.reason for w in report.warnings if "dropped" in w.reason}
    assert warnings == {
        site.url(
            "/rss#2"
        ): "enclosure 'javascript:alert(1)' dropped, the item is kept: it is not an http(s) URL: "
        "write it as https://host/path or a path on the item's site",
        site.url("/json#2"): "enclosure 'https://up.example.org/files/x.bin' dropped, the item is kept: "
        "it has no type: add one such as 'type: video/mp4'",
    }


def test_front_matter_image_and_enclosure_are_checked_item_by_item(
    store: Store, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    folder = tmp_path / "items"
    item_file(
        folder,
        "video",
        category="News",
        image="{url: /img/v.jpg, alt: 'Guy Ryder speaking', width: 1280, height: 720}",
        enclosure="{url: https://www.example.org/v.mp4, type: video/mp4, length: 48213776}",
    )
    item_file(folder, "plain-image", category="News", image="https://www.example.org/img/p.jpg")
    item_file(folder, "bad-image", category="News", image="javascript:alert(1)")
    item_file(folder, "bad-type", category="News", enclosure="{url: /v.mp4, type: 'mp4 video'}")
    item_file(folder, "bad-shape", category="News", enclosure="https://www.example.org/v.mp4")
    item_file(folder, "bad-size", category="News", image="{url: /i.jpg, width: wide}")
    settings = directory_settings(make_settings, folder)

    report = ingest(settings, store, NOW)

    assert report.ok and len(report.new) == 6  # no item lost to a bad picture or enclosure
    stored = {i.id.rsplit("/", 1)[1]: i for i in store.items.latest(limit=10)}
    video = stored["video"]
    assert (video.image, video.image_alt, video.image_width, video.image_height) == (
        "https://www.example.org/img/v.jpg",
        "Guy Ryder speaking",
        1280,
        720,
    )
    assert (video.enclosure_url, video.enclosure_type, video.enclosure_length) == (
        "https://www.example.org/v.mp4",
        "video/mp4",
        48213776,
    )
    assert stored["plain-image"].image == "https://www.example.org/img/p.jpg"
    assert stored["plain-image"].image_alt is None
    for name in ("bad-image", "bad-size"):
        assert stored[name].image is None and stored[name].image_width is None
    for name in ("bad-type", "bad-shape"):
        assert stored[name].enclosure_url is None
    reasons = {Path(w.where).stem: w.reason for w in report.warnings}
    assert reasons["bad-image"].startswith(
        "image 'javascript:alert(1)' dropped, the item is kept: it is not an http(s)"
    )
    assert reasons["bad-type"] == (
        "enclosure '/v.mp4' dropped, the item is kept: "
        "'mp4 video' is not a media type such as 'video/mp4' or 'image/jpeg'"
    )
    assert reasons["bad-shape"].startswith("enclosure dropped: write it as a mapping")
    assert (
        reasons["bad-size"] == "image '/i.jpg' dropped, the item is kept: width 'wide' is not a whole number"
    )


def test_an_html_source_takes_the_picture_with_its_alt_and_size(
    store: Store, site: Site, make_settings: Callable[..., Settings]
) -> None:
    page = b"""<ul><li class="n"><img src="/i/a.jpg" alt="A meeting" width="320" height="180">
      <h3><a href="/news/a">A</a></h3><span class="d">2020-07-15</span></li></ul>"""
    site.pages["/page"] = Page(page)
    settings = make_settings(
        sources=[
            {
                "name": "page",
                "type": "html",
                "url": site.url("/page"),
                "item": "li.n",
                "title": "h3 a",
                "link": "h3 a@href",
                "date": "span.d",
                "image": "img@src",
                "default_category": "News",
            }
        ]
    )

    ingest(settings, store, NOW)

    (item,) = store.items.latest()
    assert (item.image, item.image_alt, item.image_width, item.image_height) == (
        site.url("/i/a.jpg"),
        "A meeting",
        320,
        180,
    )


# -- clean scraped summaries ---------------------------------------------------------

SEED_URL = "https://www.example.org/social-protection/news"  # where the seed page is published


def test_the_seed_page_gives_summaries_without_read_more_or_line_breaks(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    exclude = ['a:-soup-contains("Read more")', ".share"]
    settings = make_settings(sources=[{**HTML_SOURCE, "exclude": exclude, "base_url": SEED_URL}])

    report = ingest(settings, store, NOW)

    assert report.ok, report.rejected
    items = {i.title: i for i in store.items.latest(limit=100)}
    assert len(items) == 13
    for item in items.values():
        assert "Read more" not in item.summary, item.title
        assert "\n" not in item.summary and "  " not in item.summary, repr(item.summary)
    assert items["Making social protection fit for the future"].summary == (
        "At an Infopoint organized by the European Commission, Valérie Schmitt, Deputy Director of ILO’s "
        "Social Protection Department, welcomed the new EU-funded flagship programme which aims to increase "
        "social protection coverage in eight priority countries."
    )


def test_without_exclude_the_read_more_link_stays_but_the_line_breaks_go(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(sources=[{**HTML_SOURCE, "base_url": SEED_URL}])

    ingest(settings, store, NOW)

    items = {i.title: i for i in store.items.latest(limit=100)}
    summary = items["Belgian stakeholders reflect on Universal Social Protection by 2030"].summary
    assert "\n" not in summary and "  " not in summary
    assert "World Solidarity. <a href=" in summary and summary.endswith(">Read more &gt;</a>")


# -- one story once -------------------------------------------------------------------


def test_the_same_story_from_a_later_source_is_stored_and_counted_as_a_duplicate(
    store: Store, site: Site, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    folder = tmp_path / "items"
    # The directory's link differs only in host case and fragment: the same canonical link.
    item_file(
        folder,
        "video",
        title="Social protection a vital part of the pandemic response",
        category="Video message",
        link="https://WWW.example.org/social-protection/news/WCMS_751030/lang--en/index.htm#top",
    )
    settings = make_settings(
        sources=[
            {"name": "desk", "type": "directory", "path": str(folder)},
            {**HTML_SOURCE, "base_url": SEED_URL},
        ]
    )

    report = ingest(settings, store, NOW)

    assert report.ok
    assert report.sources["desk"].new == 1 and report.sources["desk"].duplicates == 0
    assert report.sources["department-page"].duplicates == 1
    assert report.sources["department-page"].new == 12
    assert report.duplicates == [
        "https://www.example.org/social-protection/news/WCMS_751030/lang--en/index.htm"
    ]
    # Neither has an id of its own, so both copies have the canonical link as id: one row.
    assert store.items.count() == 13
    shown = store.items.latest(limit=100, sources=settings.source_names)
    video = [i for i in shown if i.title == "Social protection a vital part of the pandemic response"]
    assert [i.source for i in video] == ["desk"]  # the first source in config order wins

    again = ingest(settings, store, LATER)

    assert (
        again.sources["department-page"].duplicates == 1 and again.sources["department-page"].unchanged == 12
    )
    assert store.items.get(video[0].id).source == "desk"  # a later source never overwrites it

    without_desk = make_settings(sources=settings.model_dump()["sources"][1:])
    ingest(without_desk, store, LATER)

    taken_over = store.items.get(video[0].id)
    assert taken_over is not None and taken_over.source == "department-page"
    assert len(store.items.latest(limit=100, sources=without_desk.source_names)) == 13


# -- ids are per source ---------------------------------------------------------------


def json_feed(path: Path, *entries: tuple[str, str, str]) -> Path:
    """A JSON Feed at ``path`` with (id, url, title) entries."""
    items = ", ".join(
        f'{{"id": "{i}", "url": "{u}", "title": "{t}", "date_published": "2020-01-06T10:00:00+00:00"}}'
        for i, u, t in entries
    )
    return write(path, f'{{"version": "https://jsonfeed.org/version/1.1", "title": "x", "items": [{items}]}}')


def test_an_id_another_source_already_has_is_namespaced_and_never_overwrites_it(
    store: Store, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    a = json_feed(tmp_path / "a.json", ("1", "https://a.example.org/story", "Story of A"))
    b = json_feed(tmp_path / "b.json", ("1", "https://b.example.org/story", "Story of B"))
    settings = make_settings(
        sources=[
            {"name": "a", "type": "feed", "url": str(a), "category": "News"},
            {"name": "b", "type": "feed", "url": str(b), "category": "News"},
        ]
    )

    first = ingest(settings, store, NOW)

    assert first.ok, first.rejected
    assert first.new == ["1", "b:1"]
    build_feeds(settings, store)
    atom = feedparser.parse((settings.feeds.output_dir / "feeds" / "all.atom.xml").read_bytes())
    assert sorted(e.title for e in atom.entries) == ["Story of A", "Story of B"]
    rss = feedparser.parse((settings.feeds.output_dir / "feeds" / "all.rss.xml").read_bytes())
    assert sorted(e.id for e in rss.entries) == ["1", "b:1"]

    a.write_text("{ not json")  # source a fails this run: b must not take its id
    second = ingest(settings, store, LATER)

    assert [e.source for e in second.failed] == ["a"]
    assert second.rejected == [] and second.unchanged == ["b:1"]
    stored_a, stored_b = store.items.get("1"), store.items.get("b:1")
    assert stored_a is not None and (stored_a.source, stored_a.title) == ("a", "Story of A")
    assert stored_b is not None and (stored_b.source, stored_b.title) == ("b", "Story of B")

    # Without source a in config at all, its item is still never overwritten.
    only_b = make_settings(sources=settings.model_dump()["sources"][1:])
    third = ingest(only_b, store, LATER)
    assert third.unchanged == ["b:1"] and third.new == [] and third.changed == []
    stored_a = store.items.get("1")
    assert stored_a is not None and (stored_a.source, stored_a.title) == ("a", "Story of A")


def test_ids_already_stored_keep_their_owner_when_a_colliding_source_comes_back(
    store: Store, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    a = write(tmp_path / "a.json", "{ not json")  # a is down on the first run: b stores "1"
    b = json_feed(tmp_path / "b.json", ("1", "https://b.example.org/story", "Story of B"))
    settings = make_settings(
        sources=[
            {"name": "a", "type": "feed", "url": str(a), "category": "News"},
            {"name": "b", "type": "feed", "url": str(b), "category": "News"},
        ]
    )
    assert ingest(settings, store, NOW).new == ["1"]

    json_feed(a, ("1", "https://a.example.org/story", "Story of A"))
    back = ingest(settings, store, LATER)

    assert back.ok, back.rejected
    assert back.new == ["a:1"] and back.unchanged == ["1"]  # b's stored id is unchanged
    stored_b, stored_a = store.items.get("1"), store.items.get("a:1")
    assert stored_b is not None and (stored_b.source, stored_b.title) == ("b", "Story of B")
    assert stored_a is not None and (stored_a.source, stored_a.title) == ("a", "Story of A")

    again = ingest(settings, store, LATER + timedelta(hours=1))
    assert sorted(again.unchanged) == ["1", "a:1"] and again.new == [] and again.changed == []


def test_an_id_held_by_yet_another_story_is_rejected_naming_the_item(
    store: Store, tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    a = json_feed(tmp_path / "a.json", ("1", "https://a.example.org/story", "Story of A"))
    c = json_feed(tmp_path / "c.json", ("b:1", "https://c.example.org/story", "Story of C"))
    b = json_feed(tmp_path / "b.json", ("1", "https://b.example.org/story", "Story of B"))
    settings = make_settings(
        sources=[
            {"name": name, "type": "feed", "url": str(path), "category": "News"}
            for name, path in (("a", a), ("c", c), ("b", b))
        ]
    )

    report = ingest(settings, store, NOW)

    (rejected,) = report.rejected
    assert rejected.where == f"{b}#1"
    assert rejected.reason == f"duplicate id 'b:1': {c}#1 already uses it"
    assert sorted(report.new) == ["1", "b:1"]
    stored = store.items.get("b:1")
    assert stored is not None and stored.title == "Story of C"

    c.write_text("{ not json")  # c down: its stored item still holds the id
    again = ingest(settings, store, LATER)

    (rejected,) = again.rejected
    assert rejected.where == f"{b}#1"
    assert rejected.reason == (
        "id 'b:1' is taken by another story of source 'c' (https://c.example.org/story): "
        "give this item an id of its own"
    )
    stored = store.items.get("b:1")
    assert stored is not None and stored.title == "Story of C"
