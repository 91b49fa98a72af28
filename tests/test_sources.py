"""Each source kind read on its own: what an admin's files, feeds and pages turn into."""

from __future__ import annotations

import json
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from publisher.config import Settings
from publisher.errors import ConfigError, ItemError, SourceError
from publisher.models import SourceResult, SourceState
from publisher.sources import fetch_source
from publisher.sources.http import Limits, fetch, same_origin
from tests.http_server import Upstream, page, redirect, zeros

DATA = Path(__file__).parent / "data"

HTML_SOURCE: dict[str, Any] = {
    "name": "department-page",
    "type": "html",
    "url": str(DATA / "department-page.html"),
    "item": "li.news-item",
    "title": "h3 a",
    "link": "h3 a@href",
    "date": "span.date",
    "date_format": "%d %B %Y",
    "category": "span.type",
    "default_category": "News",
    "summary": "p",
    "image": "img@src",
}


def read(settings: Settings) -> SourceResult:
    """Fetch the one source configured in ``settings``."""
    (cfg,) = settings.sources
    return fetch_source(cfg, SourceState(cfg.name), settings)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# -- directory ----------------------------------------------------------------------


def test_directory_reads_markdown_files_recursively_in_sorted_order(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    folder = tmp_path / "items"
    write(
        folder / "b.md",
        "---\ntitle: Second\ndate: 2020-07-16\ncategory: Comment\nid: urn:x:b\n"
        "updated: 2020-07-17T10:00:00+02:00\nimage: https://www.example.org/b.jpg\n---\n\nBody *B*.\n",
    )
    write(folder / "2020" / "a.md", "---\ntitle: 'First: with a colon'\ndate: 2020-07-15\n---\nBody A\n")
    write(folder / "notes.txt", "not an item")
    write(folder / ".drafts" / "c.md", "---\ntitle: Hidden draft\ndate: 2020-07-18\n---\n")
    write(folder / ".#b.md", "editor lock file")
    settings = make_settings(sources=[{"name": "local", "type": "directory", "path": str(folder)}])

    result = read(settings)

    assert result.errors == []
    assert [i.origin for i in result.items] == [str(folder / "2020" / "a.md"), str(folder / "b.md")]
    first, second = result.items
    assert first.title == "First: with a colon"
    assert first.published == datetime(2020, 7, 15)  # a YAML date becomes midnight, zone added by ingest
    assert first.content == "Body A"
    assert first.content_type == "markdown"
    assert second.id == "urn:x:b"
    assert second.label == "Comment"
    assert second.image == "https://www.example.org/b.jpg"
    assert second.updated is not None and second.updated == datetime(2020, 7, 17, 8, tzinfo=UTC)


def test_directory_reports_a_broken_file_by_name_and_reads_the_others(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    folder = tmp_path / "items"
    write(folder / "good.md", "---\ntitle: Fine\ndate: 2020-07-15\n---\nok\n")
    write(folder / "broken-yaml.md", "---\ntitle: Fine\ndate: [2020-07-15\n---\nbody\n")
    write(folder / "no-front-matter.md", "# Just a heading\n\nNo header here.\n")
    write(folder / "impossible-date.md", "---\ntitle: X\ndate: 2020-13-45\n---\n")
    (folder / "latin1.md").write_bytes("---\ntitle: Caf\xe9\n---\n".encode("latin-1"))
    settings = make_settings(sources=[{"name": "local", "type": "directory", "path": str(folder)}])

    result = read(settings)

    assert [i.title for i in result.items] == ["Fine"]
    problems = {Path(e.where).name: e.reason for e in result.errors}
    assert set(problems) == {"broken-yaml.md", "no-front-matter.md", "impossible-date.md", "latin1.md"}
    assert "not valid YAML" in problems["broken-yaml.md"]
    assert "(line " in problems["broken-yaml.md"]
    assert "start the file with a '---' line" in problems["no-front-matter.md"]
    assert "month must be in 1..12" in problems["impossible-date.md"]
    assert "UTF-8" in problems["latin1.md"]


def test_directory_missing_folder_fails_the_source(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(sources=[{"name": "local", "type": "directory", "path": str(tmp_path / "nope")}])
    with pytest.raises(SourceError) as err:
        read(settings)
    assert err.value.source == "local"
    assert "no such folder" in str(err.value)


def test_directory_uses_the_source_category_when_a_file_has_none(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    write(tmp_path / "items" / "a.md", "---\ntitle: A\ndate: 2020-01-01\n---\n")
    write(tmp_path / "items" / "b.md", "---\ntitle: B\ndate: 2020-01-01\ncategory: Comment\n---\n")
    settings = make_settings(
        sources=[{"name": "local", "type": "directory", "path": str(tmp_path / "items"), "category": "News"}]
    )
    assert [i.label for i in read(settings).items] == ["News", "Comment"]


# -- feeds --------------------------------------------------------------------------


def test_rss_entries_keep_their_guid_dates_and_configured_tag(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        sources=[{"name": "up", "type": "feed", "url": str(DATA / "upstream.rss.xml"), "category": "News"}]
    )
    first, second = read(settings).items

    assert first.id == "urn:example:news:744612"
    assert first.published == datetime(2020, 5, 14, 7, 30, tzinfo=UTC)
    assert first.label == "Press release"  # the tag that names a category wins over "COVID-19"
    assert first.image == "https://www.example.org/images/744612.jpg"
    assert first.language == "en"
    assert second.id is None  # no <guid>: ingest falls back to the link
    assert second.label == "News"  # no <category>: the source's default label
    assert second.origin == f"{DATA / 'upstream.rss.xml'}#2"


def test_atom_entries_give_id_category_content_and_updated(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        sources=[{"name": "pubs", "type": "feed", "url": str(DATA / "upstream.atom.xml")}]
    )
    first, second = read(settings).items

    assert first.id == "urn:example:publication:673680"
    assert first.label == "Conference paper"
    assert first.published == datetime(2019, 3, 4, 9, tzinfo=UTC)
    assert first.updated == datetime(2019, 3, 5, 7, tzinfo=UTC)
    assert first.content is not None and "General Survey" in first.content
    assert first.summary is not None and first.summary.startswith("Report III")
    assert second.published is None and second.updated == datetime(2017, 11, 29, 9, tzinfo=UTC)
    assert second.label is None


def test_json_feed_is_read_without_feedparser(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        sources=[{"name": "comments", "type": "feed", "url": str(DATA / "upstream.json")}]
    )
    result = read(settings)
    first, second = result.items

    assert result.errors == []
    assert first.id == "urn:example:comment:751123"
    assert first.label == "Comment"
    assert first.published == "2020-07-16T11:00:00+02:00"
    assert first.language == "en"
    # A relative url is resolved against the feed's home page; text content becomes paragraphs.
    assert second.link == "https://www.example.org/social-protection/comments/WCMS_751200/"
    assert (
        second.content
        == "<p>Migrant workers are often excluded.</p><p>Bilateral agreements can close the gap.</p>"
    )
    assert second.language == "fr"
    assert second.updated == "2020-07-21T08:00:00Z"


@pytest.mark.parametrize(
    ("name", "body", "expected"),
    [
        ("garbage.xml", b"\x00\x01 this is not a feed <<<", "not a readable RSS or Atom feed"),
        ("page.xml", b"<html><body><p>Moved", "not a readable RSS or Atom feed"),
        ("bad.json", b'{"version": "https://jsonfeed.org/version/1.1", "items": [', "not valid JSON"),
        ("other.json", b'{"hello": "world"}', "not a JSON Feed"),
        ("noitems.json", b'{"version": "https://jsonfeed.org/version/1"}', "no 'items' list"),
    ],
)
def test_unreadable_feed_fails_the_source(
    tmp_path: Path, make_settings: Callable[..., Settings], name: str, body: bytes, expected: str
) -> None:
    (tmp_path / name).write_bytes(body)
    settings = make_settings(sources=[{"name": "up", "type": "feed", "url": str(tmp_path / name)}])
    with pytest.raises(SourceError) as err:
        read(settings)
    assert err.value.source == "up"
    assert expected in err.value.cause


def test_missing_feed_file_fails_the_source(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(sources=[{"name": "up", "type": "feed", "url": str(tmp_path / "gone.xml")}])
    with pytest.raises(SourceError, match="no such file"):
        read(settings)


# -- html listing pages -------------------------------------------------------------


def test_html_listing_yields_the_thirteen_items_of_the_department_page(
    make_settings: Callable[..., Settings],
) -> None:
    result = read(make_settings(sources=[HTML_SOURCE]))

    assert result.errors == []
    assert len(result.items) == 13
    page = str(DATA / "department-page.html")
    assert [i.origin for i in result.items] == [f"{page}#{n}" for n in range(1, 14)]
    by_title = {i.title: i for i in result.items}
    first = result.items[0]
    assert first.title == "Social protection a vital part of the pandemic response"
    assert first.label == "Video message"
    assert first.published == datetime(2020, 7, 15)
    assert first.summary is not None and first.summary.startswith("ILO Director-General Guy Ryder")
    assert result.items[2].label == "Press release"  # "Press release " on the page
    week = by_title[
        "Global Social Protection Week: Achieving SDG 1.3 and Universal Social Protection "
        "in the context of the Future of Work"
    ]
    assert week.published == datetime(2019, 11, 25)  # "25-28 November 2019": the first day
    grants = by_title["International Conference on Universal Child Grants"]
    assert grants.published == datetime(2019, 2, 6)  # "06 - 08 February 2019"
    assert grants.label == "News"  # topic heading only: default_category
    paper = by_title[
        "Universal social protection for human dignity, social justice and sustainable development"
    ]
    assert paper.label == "Conference paper"  # "Conference paper." on the page
    assert paper.summary is None
    assert result.items[4].image == "/social-protection/images/WCMS_740101.jpg"
    assert result.items[5].summary is not None and "Read more &gt;</a>" in result.items[5].summary


def test_html_date_not_matching_the_format_rejects_only_that_item(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    page = write(
        tmp_path / "page.html",
        "<ul><li class='news-item'><h3><a href='/a'>A</a></h3><span class='date'>15 July 2020</span></li>"
        "<li class='news-item'><h3><a href='/b'>B</a></h3><span class='date'>July 15th</span></li></ul>",
    )
    result = read(make_settings(sources=[{**HTML_SOURCE, "url": str(page)}]))

    assert [i.title for i in result.items] == ["A"]
    (error,) = result.errors
    assert isinstance(error, ItemError)
    assert error.where == f"{page}#2"
    assert "'July 15th' does not match date_format '%d %B %Y'" in error.reason
    assert "'15 July 2020'" in error.reason  # an example in the expected format


def test_html_page_without_items_fails_the_source(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    page = write(tmp_path / "redesigned.html", "<div class='teaser'><h3>New layout</h3></div>")
    with pytest.raises(SourceError) as err:
        read(make_settings(sources=[{**HTML_SOURCE, "url": str(page)}]))
    assert "'li.news-item' matched nothing" in str(err.value)


def test_html_invalid_selector_is_a_configuration_error(make_settings: Callable[..., Settings]) -> None:
    """Compiled when the config is read, so `publisher check` finds it, not the next ingest."""
    with pytest.raises(ConfigError, match=r"title: 'h3 >> a\[' is not a valid CSS selector"):
        make_settings(sources=[{**HTML_SOURCE, "title": "h3 >> a["}])


def test_html_attribute_and_text_selectors(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    page = write(
        tmp_path / "page.html",
        "<article data-id='n1'><h2>Hello <em>world</em></h2>"
        "<time datetime='2020-07-15T09:30:00+02:00'>yesterday</time><a class='more' href='n1.html'>more</a>"
        "</article>",
    )
    source = {
        "name": "blog",
        "type": "html",
        "url": str(page),
        "item": "article",
        "title": "h2",
        "link": "a.more@href",
        "date": "time@datetime",
        "category": "span.type",
        "default_category": "Comment",
    }
    (item,) = read(make_settings(sources=[source])).items
    assert item.title == "Hello world"
    assert item.published == "2020-07-15T09:30:00+02:00"  # no date_format: ingest reads ISO 8601
    assert item.label == "Comment"
    assert item.summary is None


def test_html_page_read_from_a_file_resolves_links_against_base_url(
    make_settings: Callable[..., Settings],
) -> None:
    source = {**HTML_SOURCE, "base_url": "https://www.example.org/social-protection/news"}
    result = read(make_settings(sources=[source]))
    first = result.items[0]
    assert first.link == "https://www.example.org/social-protection/news/WCMS_751030/lang--en/index.htm"
    assert result.items[4].image == "https://www.example.org/social-protection/images/WCMS_740101.jpg"


# -- fetch limits: an upstream is not trusted ---------------------------------------


def feed_source(url: str, **overrides: Any) -> dict[str, Any]:
    return {"name": "up", "type": "feed", "url": url, **overrides}


def json_feed(count: int) -> bytes:
    """A JSON Feed of ``count`` items, dated one day apart, oldest first."""
    items = [
        {"id": f"n{n}", "url": f"https://e.org/{n}", "title": f"Item {n}",
         "date_published": f"{date.fromordinal(737791 + n).isoformat()}T09:00:00Z"}
        for n in range(count)
    ]  # fmt: skip
    return json.dumps({"version": "https://jsonfeed.org/version/1.1", "items": items}).encode()


def test_a_gzip_bomb_stops_at_max_bytes_with_little_memory(
    upstream: Upstream, make_settings: Callable[..., Settings]
) -> None:
    upstream.routes["/feed"] = zeros(50 * 1024 * 1024, gzip=True)  # about 50 KB on the wire
    settings = make_settings(sources=[feed_source(upstream.url("/feed"), max_bytes=100_000)])

    tracemalloc.start()
    try:
        with pytest.raises(SourceError) as err:
            read(settings)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert "larger than max_bytes = 100000 bytes" in err.value.cause
    assert "raise max_bytes if this source is really that big" in err.value.cause
    assert peak < 4 * 1024 * 1024, f"peak {peak} bytes"


def test_a_huge_body_is_cut_at_max_bytes_while_it_streams(
    upstream: Upstream, make_settings: Callable[..., Settings]
) -> None:
    upstream.routes["/feed"] = zeros(200 * 1024 * 1024)  # no Content-Length: only counting stops it
    settings = make_settings(sources=[feed_source(upstream.url("/feed"), max_bytes=1024 * 1024)])

    with pytest.raises(SourceError, match="larger than max_bytes = 1048576 bytes"):
        read(settings)
    time.sleep(0.2)  # let the server notice the closed connection
    assert upstream.sent < 20 * 1024 * 1024


def test_a_content_length_over_max_bytes_is_refused_before_reading(
    upstream: Upstream, make_settings: Callable[..., Settings]
) -> None:
    upstream.routes["/feed"] = zeros(200 * 1024 * 1024, announce=True)
    settings = make_settings(sources=[feed_source(upstream.url("/feed"), max_bytes=1024 * 1024)])

    with pytest.raises(SourceError) as err:
        read(settings)
    assert f"{upstream.url('/feed')} (Content-Length 209715200) is larger than max_bytes" in err.value.cause


def test_a_local_file_is_bounded_by_max_bytes_too(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    (tmp_path / "big.xml").write_bytes(b"<rss>" + b" " * 5000)
    settings = make_settings(sources=[feed_source(str(tmp_path / "big.xml"), max_bytes=4096)])
    with pytest.raises(SourceError, match="larger than max_bytes = 4096 bytes"):
        read(settings)


def test_a_same_origin_redirect_is_followed_and_links_resolve_against_the_final_url(
    upstream: Upstream, make_settings: Callable[..., Settings]
) -> None:
    upstream.routes["/old"] = redirect("/feeds/new.json", 301)
    upstream.routes["/feeds/new.json"] = page(
        b'{"version": "https://jsonfeed.org/version/1.1", "items": [{"id": "a", "url": "a.html",'
        b' "title": "A", "date_published": "2020-07-16T11:00:00Z"}]}',
        "application/feed+json",
    )
    (item,) = read(make_settings(sources=[feed_source(upstream.url("/old"))])).items
    assert item.link == upstream.url("/feeds/a.html")


def test_a_redirect_to_another_port_is_refused_unless_its_origin_is_listed(
    upstream: Upstream, make_settings: Callable[..., Settings]
) -> None:
    with Upstream() as internal:
        internal.routes["/secret"] = page(json_feed(1), "application/feed+json")
        upstream.routes["/feed"] = redirect(internal.url("/secret"))

        with pytest.raises(SourceError) as err:
            read(make_settings(sources=[feed_source(upstream.url("/feed"))]))
        assert internal.requests == []  # never contacted
        assert f"redirects to {internal.url('/secret')}, on another origin; refused" in err.value.cause
        assert f'follow_redirects_to = ["{internal.origin}"]' in err.value.cause

        allowed = feed_source(upstream.url("/feed"), follow_redirects_to=[internal.origin])
        (item,) = read(make_settings(sources=[allowed])).items
        assert item.id == "n0"


@pytest.mark.parametrize(("hops", "ok"), [(5, True), (6, False)])
def test_at_most_five_redirects_are_followed(
    upstream: Upstream, make_settings: Callable[..., Settings], hops: int, ok: bool
) -> None:
    for n in range(hops):
        upstream.routes[f"/r{n}"] = redirect(f"/r{n + 1}", 307)
    upstream.routes[f"/r{hops}"] = page(json_feed(1), "application/feed+json")
    settings = make_settings(sources=[feed_source(upstream.url("/r0"))])
    if ok:
        assert len(read(settings).items) == 1
    else:
        with pytest.raises(SourceError, match="more than 5 redirects"):
            read(settings)


def test_a_redirect_to_another_scheme_is_refused(
    upstream: Upstream, make_settings: Callable[..., Settings]
) -> None:
    upstream.routes["/feed"] = redirect("file:///etc/passwd")
    with pytest.raises(SourceError, match=r"redirects to file:///etc/passwd, which is not an http\(s\) URL"):
        read(make_settings(sources=[feed_source(upstream.url("/feed"))]))


@pytest.mark.parametrize(
    ("source", "target", "same"),
    [
        ("http://news.example.org/feed", "https://news.example.org/feed", True),
        ("http://news.example.org:80/a", "http://NEWS.example.org/b", True),
        ("https://news.example.org/feed", "http://news.example.org/feed", False),  # a downgrade
        ("http://news.example.org:8080/a", "https://news.example.org/a", False),
        ("http://news.example.org/a", "https://news.example.org:8443/a", False),
        ("http://127.0.0.1:8000/a", "http://127.0.0.1:8001/a", False),
        ("https://news.example.org/a", "https://cdn.example.org/a", False),
    ],
)
def test_same_origin_rule(source: str, target: str, same: bool) -> None:
    assert same_origin(source, target) is same


def test_follow_redirects_to_must_list_origins(make_settings: Callable[..., Settings]) -> None:
    make_settings(sources=[feed_source("https://e.org/f", follow_redirects_to=["https://cdn.e.org:8443"])])
    for bad in ("cdn.e.org", "https://cdn.e.org/path", "ftp://cdn.e.org", "https://cdn.e.org:99999"):
        with pytest.raises(ConfigError, match="is not an origin: write scheme://host"):
            make_settings(sources=[feed_source("https://e.org/f", follow_redirects_to=[bad])])


def test_a_json_feed_nested_too_deep_fails_only_its_source(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    deep = tmp_path / "deep.json"
    deep.write_bytes(b'{"version": "https://jsonfeed.org/version/1.1", "items": [' + b"[" * 100_000 + b"]}")
    with pytest.raises(SourceError) as err:
        read(make_settings(sources=[feed_source(str(deep))]))
    assert err.value.cause == f"{deep} is nested too deeply to be read"


def test_only_the_newest_max_items_per_run_feed_items_are_taken(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    (tmp_path / "feed.json").write_bytes(json_feed(30))
    result = read(make_settings(sources=[feed_source(str(tmp_path / "feed.json"), max_items_per_run=10)]))
    assert [i.id for i in result.items] == [f"n{n}" for n in range(20, 30)]
    assert result.left_out == 20


def test_a_host_that_does_not_resolve_is_named_plainly() -> None:
    with pytest.raises(SourceError) as caught:
        fetch("news", "http://news.invalid/feed.xml", SourceState("news"), Limits(timeout=5), lambda: False)
    assert str(caught.value).startswith(
        "source 'news': cannot fetch http://news.invalid/feed.xml: the host name does not resolve ("
    )
