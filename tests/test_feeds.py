"""Feeds as readers see them: parsed back with feedparser, served over HTTP, byte-stable.

Every test builds from items saved in a real store (SQLite and PostgreSQL) and reads the
files the build wrote, the way a feed reader, a browser or the web server would.
Golden files pin the exact bytes; ``UPDATE_GOLDEN=1 pytest tests/test_feeds.py``
rewrites them after an intended change (review the diff before committing).
"""

from __future__ import annotations

import calendar
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import feedparser
import httpx
import lxml.etree
import lxml.html
import pytest

from publisher.app import Publisher
from publisher.config import Settings
from publisher.errors import ItemError
from publisher.feeds import EMPTY_FEED_UPDATED, BuildReport, atom_id, build_feeds
from publisher.models import Item, ItemState
from publisher.store import Store

GOLDEN = Path(__file__).parent / "golden" / "feeds"
BASE = "http://127.0.0.1:8080"
T0 = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
SLUGS = ["press-releases", "news", "comments", "video-messages", "events", "publications"]
EXTENSIONS = {"rss": ".rss.xml", "atom": ".atom.xml", "json": ".json"}
MEDIA_TYPES = {"rss": "application/rss+xml", "atom": "application/atom+xml", "json": "application/feed+json"}


def make_item(n: int, category: str | None = "news", **changes: Any) -> Item:
    published = T0 + timedelta(hours=n)
    values: dict[str, Any] = {
        "id": f"sample:item-{n}",
        "source": "sample",
        "title": f"Item number {n}",
        "link": f"https://www.example.org/news/{n}",
        "published": published,
        "updated": published + timedelta(minutes=10),
        "language": "en",
        "summary": f"<p>Summary of <b>item {n}</b>.</p>",
        "content": "",
        "label": None,
        "category": category,
        "content_hash": f"hash-{n}",
    }
    values.update(changes)
    return Item(**values)


def all_paths(settings: Settings) -> set[Path]:
    """Every file a build writes: the feeds, the HTML page of each RSS and Atom file
    (publisher.feed_pages), and the files at the root."""
    out = settings.feeds.output_dir
    names = [f"feeds/{slug}{ext}" for slug in ["all", *SLUGS] for ext in EXTENSIONS.values()]
    pages = [feed_page(n) for n in names if feed_page(n)]
    return {out / n for n in [*names, *pages, "feeds.opml", "index.html", "feed.xsl"]}


def feed_page(name: str) -> str:
    """The HTML page of feed file ``name``; "" for a JSON Feed (it has none)."""
    return f".feed-pages/{name}.html" if name.endswith((".atom.xml", ".rss.xml")) else ""


def channel_paths(settings: Settings, slug: str) -> set[Path]:
    """A channel's feed files and their pages."""
    names = [f"feeds/{slug}{ext}" for ext in EXTENSIONS.values()]
    out = settings.feeds.output_dir
    return {out / n for n in [*names, *map(feed_page, names)] if n}


def parse(settings: Settings, slug: str, fmt: str) -> Any:
    data = (settings.feeds.output_dir / f"feeds/{slug}{EXTENSIONS[fmt]}").read_bytes()
    if fmt == "json":
        return json.loads(data)
    parsed = feedparser.parse(data)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == {"rss": "rss20", "atom": "atom10"}[fmt]
    return parsed


def as_datetime(struct: time.struct_time) -> datetime:
    return datetime.fromtimestamp(calendar.timegm(struct), UTC)


def links(parsed: Any, rel: str) -> list[str]:
    return [link["href"] for link in parsed.feed.get("links", []) if link.get("rel") == rel]


def mtimes(paths: set[Path]) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in paths}


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


# -- feeds parsed back as a reader would ------------------------------------------------


def check_xml_feed(settings: Settings, slug: str, fmt: str, expected: list[Item]) -> None:
    parsed = parse(settings, slug, fmt)
    served_at = f"{BASE}/feeds/{slug}{EXTENSIONS[fmt]}"
    assert links(parsed, "self") == [served_at]
    assert links(parsed, "alternate") == [f"{BASE}/"]
    newest_update = max((i.updated for i in expected), default=EMPTY_FEED_UPDATED)
    assert as_datetime(parsed.feed.updated_parsed) == newest_update
    assert len(parsed.entries) == len(expected)
    for entry, item in zip(parsed.entries, expected, strict=True):
        assert entry.id == (item.id if fmt == "rss" else atom_id(item.id))
        assert entry.link == item.link and entry.link.startswith("https://")
        assert as_datetime(entry.published_parsed) == item.published
        if fmt == "atom":
            assert as_datetime(entry.updated_parsed) == item.updated
            assert [t.term for t in entry.tags] == [item.category]
        assert entry.title == item.title
    if fmt == "atom":
        assert parsed.feed.author == settings.site.title


def check_json_feed(settings: Settings, slug: str, expected: list[Item]) -> None:
    feed = parse(settings, slug, "json")
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert feed["home_page_url"] == f"{BASE}/"
    assert feed["feed_url"] == f"{BASE}/feeds/{slug}.json"
    assert isinstance(feed["title"], str) and feed["title"]
    assert feed["authors"] == [{"name": settings.site.title}]
    assert [e["id"] for e in feed["items"]] == [i.id for i in expected]
    for entry, item in zip(feed["items"], expected, strict=True):
        assert set(entry) >= {"id", "url", "title", "content_html", "date_published", "date_modified"}
        assert entry["url"] == item.link
        assert datetime.fromisoformat(entry["date_published"]) == item.published
        assert datetime.fromisoformat(entry["date_modified"]) == item.updated
        assert entry["language"] == item.language
        assert isinstance(entry["tags"], list) and all(isinstance(t, str) for t in entry["tags"])


def test_every_feed_parses_back_with_its_items(settings: Settings, store: Store) -> None:
    items = [make_item(n, SLUGS[n % 3]) for n in range(9)]
    store.items.save(items, [], T0)

    build_feeds(settings, store)

    newest_first = sorted(items, key=lambda i: i.published, reverse=True)
    for slug in ["all", *SLUGS]:
        expected = [i for i in newest_first if slug in ("all", i.category)]
        check_xml_feed(settings, slug, "rss", expected)
        check_xml_feed(settings, slug, "atom", expected)
        check_json_feed(settings, slug, expected)


def test_empty_categories_get_valid_feeds_with_a_fixed_date(settings: Settings, store: Store) -> None:
    store.items.save([make_item(1, "news")], [], T0)

    report = build_feeds(settings, store)

    assert set(report.written) == all_paths(settings)
    for fmt in ("rss", "atom"):
        check_xml_feed(settings, "events", fmt, [])
    check_json_feed(settings, "events", [])


def test_feed_updated_is_newest_items_updated_not_build_time(settings: Settings, store: Store) -> None:
    # The newest by publication is not the most recently updated one.
    old_but_edited = make_item(1, updated=T0 + timedelta(days=30))
    store.items.save([old_but_edited, make_item(5)], [], T0)

    build_feeds(settings, store)

    for fmt in ("rss", "atom"):
        parsed = parse(settings, "news", fmt)
        assert as_datetime(parsed.feed.updated_parsed) == T0 + timedelta(days=30)
        newest = "sample:item-5" if fmt == "rss" else atom_id("sample:item-5")
        assert [e.id for e in parsed.entries] == [
            newest,
            "sample:item-1" if fmt == "rss" else atom_id("sample:item-1"),
        ]


def test_entries_are_newest_first_and_capped_at_max_items(
    make_settings: Callable[..., Settings], store: Store
) -> None:
    settings = make_settings(feeds={"max_items": 3})
    order = [4, 0, 6, 2, 5]
    store.items.save([make_item(n) for n in order], [], T0)

    build_feeds(settings, store)

    wanted = ["sample:item-6", "sample:item-5", "sample:item-4"]
    assert [e.id for e in parse(settings, "news", "rss").entries] == wanted
    assert [e.id for e in parse(settings, "news", "atom").entries] == [atom_id(i) for i in wanted]
    assert [e["id"] for e in parse(settings, "all", "json")["items"]] == wanted


def test_items_of_unknown_category_appear_only_in_the_all_items_feeds(
    settings: Settings, store: Store
) -> None:
    stray = make_item(3, None, label="Speech")
    store.items.save([stray, make_item(1, "news")], [], T0)

    build_feeds(settings, store)

    assert stray.id in {e.id for e in parse(settings, "all", "rss").entries}
    assert atom_id(stray.id) in {e.id for e in parse(settings, "all", "atom").entries}
    for fmt in ("rss", "atom"):
        for slug in SLUGS:
            ids = {e.id for e in parse(settings, slug, fmt).entries}
            assert stray.id not in ids and atom_id(stray.id) not in ids
    entry = parse(settings, "all", "json")["items"][0]
    assert entry["id"] == stray.id and entry["tags"] == ["Speech"]


def test_ids_are_iris_in_atom_and_guids_say_whether_they_are_permalinks(
    settings: Settings, store: Store
) -> None:
    by_link = make_item(1, id="https://www.example.org/news/1")
    opaque = make_item(2, id="department-page:42")
    store.items.save([by_link, opaque], [], T0)

    build_feeds(settings, store)

    atom = parse(settings, "news", "atom")
    assert [e.id for e in atom.entries] == [atom_id(opaque.id), by_link.id]
    # Pinned: the mapping must never change, or readers would see every entry again.
    assert atom_id(opaque.id) == "urn:uuid:e1eea73f-ff3f-5274-b165-3398b09b2ecf"
    rss = (settings.feeds.output_dir / "feeds/news.rss.xml").read_bytes()
    assert b'<guid isPermaLink="true">https://www.example.org/news/1</guid>' in rss
    assert b'<guid isPermaLink="false">department-page:42</guid>' in rss


@pytest.mark.parametrize(
    ("item_id", "kept"),
    [
        ("https://www.example.org/news/1", True),
        ("urn:uuid:0b0f4b6e-3f6b-4a57-9a55-3c1c1a9e5f11", True),
        ("tag:example.org,2024:news-1", True),
        ("sample:item-1", False),  # a URI in form, but of no known scheme
        ("urn:uuid:not-a-uuid", False),
        ("https://www.example.org/a b", False),
        ("news/2024/01/report.md", False),
    ],
)
def test_atom_ids_keep_iris_and_map_anything_else_to_a_stable_urn(item_id: str, kept: bool) -> None:
    mapped = atom_id(item_id)
    assert (mapped == item_id) is kept
    if not kept:
        assert mapped.startswith("urn:uuid:") and mapped != atom_id(item_id + "x")


def test_relative_item_links_become_absolute(settings: Settings, store: Store) -> None:
    store.items.save([make_item(1, link="/news/relative")], [], T0)

    build_feeds(settings, store)

    assert parse(settings, "news", "atom").entries[0].link == f"{BASE}/news/relative"
    assert parse(settings, "news", "json")["items"][0]["url"] == f"{BASE}/news/relative"


def test_control_characters_and_markup_in_a_title_are_safe(settings: Settings, store: Store) -> None:
    nasty = make_item(1, title="Pensions <script>alert(1)</script> & \x01benefits\x7f")
    store.items.save([nasty], [], T0)

    build_feeds(settings, store)

    clean = "Pensions <script>alert(1)</script> & benefits"
    for fmt in ("rss", "atom"):
        title = parse(settings, "news", fmt).entries[0].title_detail
        assert (title.type, title.value) == ("text/plain", clean)
    assert parse(settings, "news", "json")["items"][0]["title"] == clean
    page = (settings.feeds.output_dir / "index.html").read_text()
    assert "<script>" not in page
    assert "Pensions &lt;script&gt;alert(1)&lt;/script&gt; &amp; benefits" in page


# -- the files on disk: written only when their bytes change --------------------------


def test_rebuild_with_nothing_new_writes_nothing(settings: Settings, store: Store) -> None:
    store.items.save([make_item(n, SLUGS[n % 6]) for n in range(12)], [], T0)
    first = build_feeds(settings, store)
    before = mtimes(all_paths(settings))

    again = build_feeds(settings, store)

    assert set(first.written) == all_paths(settings)
    assert again == BuildReport(written=[], unchanged=again.unchanged)
    assert set(again.unchanged) == all_paths(settings)
    assert mtimes(all_paths(settings)) == before


def test_one_new_item_rewrites_only_its_feeds_and_the_index(settings: Settings, store: Store) -> None:
    store.items.save([make_item(n, SLUGS[n % 6]) for n in range(12)], [], T0)
    build_feeds(settings, store)
    before = mtimes(all_paths(settings))

    store.items.save([make_item(20, "events")], [], T0)
    report = build_feeds(settings, store)

    expected = channel_paths(settings, "all") | channel_paths(settings, "events")
    expected.add(settings.feeds.output_dir / "index.html")
    assert set(report.written) == expected
    assert set(report.unchanged) == all_paths(settings) - expected
    after = mtimes(all_paths(settings))
    assert {p for p in after if after[p] != before[p]} == expected
    assert "sample:item-20" in {e.id for e in parse(settings, "events", "rss").entries}


def test_an_edited_item_is_republished(settings: Settings, store: Store) -> None:
    item = make_item(1, "news")
    store.items.save([item, make_item(2, "events")], [], T0)
    build_feeds(settings, store)

    edited = make_item(1, "news", title="Corrected title", updated=T0 + timedelta(days=2))
    store.items.save([], [edited], T0)
    report = build_feeds(settings, store)

    assert channel_paths(settings, "news") <= set(report.written)
    assert not channel_paths(settings, "events") & set(report.written)
    assert parse(settings, "news", "atom").entries[0].title == "Corrected title"


def test_a_feed_removed_or_changed_by_hand_is_restored(settings: Settings, store: Store) -> None:
    store.items.save([make_item(1, "news")], [], T0)
    build_feeds(settings, store)
    removed = settings.feeds.output_dir / "feeds/events.atom.xml"
    tampered = settings.feeds.output_dir / "feeds/news.json"
    good = tampered.read_bytes()
    removed.unlink()
    tampered.write_bytes(good.replace(b"Item number 1", b"Item NUMBER 1"))

    report = build_feeds(settings, store)

    assert set(report.written) == {removed, tampered}
    assert tampered.read_bytes() == good
    check_xml_feed(settings, "events", "atom", [])


def test_files_are_readable_by_the_web_server_and_no_temp_file_is_left(
    settings: Settings, store: Store
) -> None:
    store.items.save([make_item(1)], [], T0)

    build_feeds(settings, store)

    out = settings.feeds.output_dir
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in all_paths(settings))
    assert not [p for p in out.rglob("*.tmp")]


def test_only_configured_formats_are_written(make_settings: Callable[..., Settings], store: Store) -> None:
    settings = make_settings(feeds={"formats": ["rss"]})
    store.items.save([make_item(1)], [], T0)

    report = build_feeds(settings, store)

    out = settings.feeds.output_dir
    expected = {out / f"feeds/{slug}.rss.xml" for slug in ["all", *SLUGS]}
    pages = {out / f".feed-pages/feeds/{slug}.rss.xml.html" for slug in ["all", *SLUGS]}
    assert set(report.written) == expected | pages | {
        out / "feeds.opml",
        out / "index.html",
        out / "feed.xsl",
    }
    assert sorted(p.name for p in (out / "feeds").iterdir()) == sorted(p.name for p in expected)


# -- OPML and index.html --------------------------------------------------------------


def opml_outlines(settings: Settings) -> list[dict[str, str]]:
    root = lxml.etree.fromstring((settings.feeds.output_dir / "feeds.opml").read_bytes())
    assert root.tag == "opml" and root.get("version") == "2.0"
    return [dict(o.attrib) for o in root.iter("outline")]


@pytest.mark.parametrize(
    ("formats", "preferred"),
    [(["rss", "atom", "json"], "atom"), (["json", "rss"], "rss"), (["json"], "json")],
)
def test_opml_lists_each_feed_once_in_the_preferred_format(
    make_settings: Callable[..., Settings], sqlite_store: Store, formats: list[str], preferred: str
) -> None:
    settings = make_settings(feeds={"formats": formats})

    build_feeds(settings, sqlite_store)

    outlines = opml_outlines(settings)
    assert [o["xmlUrl"] for o in outlines] == [
        f"{BASE}/feeds/{slug}{EXTENSIONS[preferred]}" for slug in ["all", *SLUGS]
    ]
    assert all(o["type"] == "rss" and o["text"] and o["title"] for o in outlines)


def test_index_has_one_alternate_link_per_feed_file_and_lists_latest_items(
    settings: Settings, store: Store
) -> None:
    store.items.save([make_item(n, SLUGS[n % 2]) for n in range(4)], [], T0)

    build_feeds(settings, store)

    page = lxml.html.fromstring((settings.feeds.output_dir / "index.html").read_bytes())
    alternates = page.xpath("//head/link[@rel='alternate']")
    feed_urls = sorted(f"{BASE}/feeds/{slug}{ext}" for slug in ["all", *SLUGS] for ext in EXTENSIONS.values())
    assert sorted(link.get("href") for link in alternates) == feed_urls
    for link in alternates:
        suffix = next(fmt for fmt, ext in EXTENSIONS.items() if link.get("href").endswith(ext))
        assert link.get("type") == MEDIA_TYPES[suffix]
    assert len({link.get("title") for link in alternates}) == len(alternates)
    news = page.xpath("//section[@id='news']//h3/a")
    assert [(a.text, a.get("href")) for a in news] == [
        ("Item number 3", "https://www.example.org/news/3"),
        ("Item number 1", "https://www.example.org/news/1"),
    ]
    assert page.xpath("//section[@id='events']//p[@class='empty']")


# -- served over HTTP: every self link is where the file really is -------------------


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on loopback serving an output folder, as the web front would."""
    root = tmp_path / "served"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


def test_self_links_resolve_to_the_served_files(
    make_settings: Callable[..., Settings], sqlite_store: Store, http_root: tuple[str, Path]
) -> None:
    base, root = http_root
    settings = make_settings(site={"base_url": base}, feeds={"output_dir": str(root)})
    sqlite_store.items.save([make_item(1)], [], T0)

    build_feeds(settings, sqlite_store)

    with httpx.Client() as client:
        for slug in ["all", *SLUGS]:
            for fmt, ext in EXTENSIONS.items():
                local = (root / f"feeds/{slug}{ext}").read_bytes()
                if fmt == "json":
                    self_url = json.loads(local)["feed_url"]
                else:
                    self_url = links(feedparser.parse(local), "self")[0]
                response = client.get(self_url)
                assert response.status_code == 200 and response.content == local
        assert client.get(f"{base}/").status_code == 200


# -- golden files ---------------------------------------------------------------------


def golden_items() -> list[Item]:
    return [
        make_item(
            1, "press-releases", id="https://www.example.org/press/1", link="https://www.example.org/press/1"
        ),
        make_item(
            2,
            "news",
            title="Réforme des retraites — ce qui change en 2024",
            language="fr",
            summary="<p>Les <em>pensions</em> augmentent.</p>",
            content='<p>Le texte complet, avec <a href="https://www.example.org/loi">la loi</a>.</p>',
            image="https://www.example.org/img/2.jpg",
            image_width=1200,
            image_height=675,
        ),
        make_item(3, "news", title="A <tag> & a \x0bcontrol character", summary="", content=""),
        make_item(4, None, label="Speech", link="/speeches/4"),
        make_item(
            5,
            "events",
            updated=T0 + timedelta(days=10),
            enclosure_url="https://www.example.org/video/5.mp4",
            enclosure_type="video/mp4",
            enclosure_length=12345678,
        ),
    ]


def test_output_matches_the_golden_files(settings: Settings, store: Store) -> None:
    store.items.save(golden_items(), [], T0)

    build_feeds(settings, store)

    out = settings.feeds.output_dir
    produced = {p.relative_to(out).as_posix(): p.read_bytes() for p in all_paths(settings)}
    if os.environ.get("UPDATE_GOLDEN") == "1":
        for name, data in produced.items():
            (GOLDEN / name).parent.mkdir(parents=True, exist_ok=True)
            (GOLDEN / name).write_bytes(data)
    stored = {p.relative_to(GOLDEN).as_posix() for p in GOLDEN.rglob("*") if p.is_file()}
    assert stored == set(produced), "golden files missing or extra: run with UPDATE_GOLDEN=1"
    for name, data in produced.items():
        assert data == (GOLDEN / name).read_bytes(), f"{name} differs from its golden file"


def test_json_feed_summary_is_readable_text(settings: Settings, store: Store) -> None:
    summary = "<p>First paragraph.</p><p>Second &amp; last.</p><ul><li>a</li><li>b</li></ul>"
    store.items.save([make_item(1, summary=summary)], [], T0)
    build_feeds(settings, store)
    feed = json.loads((settings.feeds.output_dir / "feeds/all.json").read_bytes())
    assert feed["items"][0]["summary"] == "First paragraph. Second & last. a b"


# -- media as a feed reader sees it ------------------------------------------------------


def test_readers_get_the_enclosure_and_the_picture_in_every_format(settings: Settings, store: Store) -> None:
    video = make_item(
        1,
        "video-messages",
        image="https://www.example.org/img/ryder.jpg",
        image_width=1280,
        image_height=720,
        enclosure_url="https://www.example.org/video/ryder.mp4",
        enclosure_type="video/mp4",
        enclosure_length=48213776,
    )
    unknown_length = make_item(
        2, "video-messages", enclosure_url="https://www.example.org/a.mp3", enclosure_type="audio/mpeg"
    )
    store.items.save([video, unknown_length], [], T0)

    build_feeds(settings, store)

    rss = parse(settings, "video-messages", "rss")
    by_link = {e.link: e for e in rss.entries}
    first = by_link["https://www.example.org/news/1"]
    assert [(e.href, e.type, e.length) for e in first.enclosures] == [
        ("https://www.example.org/video/ryder.mp4", "video/mp4", "48213776")
    ]
    assert first.media_thumbnail == [
        {"url": "https://www.example.org/img/ryder.jpg", "width": "1280", "height": "720"}
    ]
    second = by_link["https://www.example.org/news/2"]
    assert [(e.href, e.length) for e in second.enclosures] == [("https://www.example.org/a.mp3", "0")]
    assert "media_thumbnail" not in second
    atom = parse(settings, "video-messages", "atom")
    first = next(e for e in atom.entries if e.link == "https://www.example.org/news/1")
    # Still one alternate link (the item) next to the enclosure.
    assert [(link.rel, link.href) for link in first.links] == [
        ("alternate", "https://www.example.org/news/1"),
        ("enclosure", "https://www.example.org/video/ryder.mp4"),
    ]
    assert [(e.href, e.type, e.length) for e in first.enclosures] == [
        ("https://www.example.org/video/ryder.mp4", "video/mp4", "48213776")
    ]
    assert first.media_thumbnail[0]["url"] == "https://www.example.org/img/ryder.jpg"
    entries = {e["url"]: e for e in parse(settings, "video-messages", "json")["items"]}
    assert entries["https://www.example.org/news/1"]["image"] == "https://www.example.org/img/ryder.jpg"
    assert entries["https://www.example.org/news/1"]["attachments"] == [
        {
            "url": "https://www.example.org/video/ryder.mp4",
            "mime_type": "video/mp4",
            "size_in_bytes": 48213776,
        }
    ]
    assert entries["https://www.example.org/news/2"]["attachments"] == [
        {"url": "https://www.example.org/a.mp3", "mime_type": "audio/mpeg"}
    ]
    # A feed without pictures does not even declare the media namespace.
    assert b"search.yahoo.com/mrss" not in (settings.feeds.output_dir / "feeds/news.rss.xml").read_bytes()


# -- withdrawal: hidden items, removed sources, one story once ----------------------------


def feed_texts(settings: Settings) -> dict[Path, str]:
    return {p: p.read_text(encoding="utf-8") for p in all_paths(settings)}


def test_a_hidden_item_leaves_every_feed_and_the_index_and_unhide_brings_it_back(
    settings: Settings, store: Store
) -> None:
    store.items.save([make_item(1, "news"), make_item(2, "news", title="Published by mistake")], [], T0)
    publisher = Publisher(settings, store, clock=lambda: T0)
    publisher.build()
    assert all("Published by mistake" in text for p, text in feed_texts(settings).items() if "news" in p.name)

    change = publisher.hide_item("sample:item-2")

    assert change.changed and change.item.state is ItemState.HIDDEN
    assert change.build is not None and change.build.written
    texts = feed_texts(settings)
    assert not [p for p, text in texts.items() if "Published by mistake" in text]
    assert all("Item number 1" in text for p, text in texts.items() if p.name.startswith(("all.", "news.")))
    assert [e.title for e in parse(settings, "news", "atom").entries] == ["Item number 1"]
    listed = {i.item.id: i.state for i in publisher.items()}
    assert listed == {"sample:item-1": ItemState.SHOWN, "sample:item-2": ItemState.HIDDEN}

    again = publisher.hide_item("sample:item-2")
    assert not again.changed and again.build is None

    publisher.unhide_item("sample:item-2")

    assert [e.title for e in parse(settings, "news", "atom").entries] == [
        "Published by mistake",
        "Item number 1",
    ]


def test_an_edit_read_from_the_source_does_not_unhide_an_item(settings: Settings, store: Store) -> None:
    store.items.save([make_item(1, "news")], [], T0)
    store.items.set_hidden("sample:item-1", True)

    store.items.save([], [make_item(1, "news", title="Edited upstream")], T0)

    assert store.items.latest(sources=settings.source_names) == []
    assert store.items.get("sample:item-1").title == "Edited upstream"


def test_unknown_item_id_is_a_clear_error(settings: Settings, store: Store) -> None:
    with pytest.raises(ItemError, match="no stored item has this id; 'publisher items' lists them"):
        Publisher(settings, store).hide_item("nope")


def test_items_of_a_source_removed_from_config_are_withdrawn_and_come_back_with_it(
    make_settings: Callable[..., Settings], store: Store, tmp_path: Path
) -> None:
    two_sources = [
        {"name": "sample", "type": "directory", "path": "content"},
        {"name": "old-site", "type": "directory", "path": "content"},
    ]
    with_source = make_settings(sources=two_sources)
    without = make_settings(sources=two_sources[:1])
    store.items.save([make_item(1, "news"), make_item(2, "news", id="old:2", source="old-site")], [], T0)
    build_feeds(with_source, store)
    assert len(parse(with_source, "all", "rss").entries) == 2

    build_feeds(without, store)

    for fmt in ("rss", "atom"):
        assert [e.title for e in parse(without, "all", fmt).entries] == ["Item number 1"]
    assert "Item number 2" not in (without.feeds.output_dir / "index.html").read_text()
    assert store.items.get("old:2") is not None  # withdrawn, not deleted
    listed = {i.item.id: i.state for i in Publisher(without, store).items()}
    assert listed["old:2"] is ItemState.SOURCE_REMOVED

    build_feeds(with_source, store)

    assert len(parse(with_source, "all", "rss").entries) == 2


def test_one_story_from_two_sources_is_one_entry_of_the_first_source_in_config_order(
    make_settings: Callable[..., Settings], store: Store
) -> None:
    sources = [
        {"name": "desk", "type": "directory", "path": "content"},
        {"name": "upstream", "type": "directory", "path": "content"},
    ]
    settings = make_settings(sources=sources)
    link = "https://www.example.org/news/story"
    store.items.save(
        [
            make_item(
                1,
                "news",
                id="upstream:1",
                source="upstream",
                link=link.upper().replace("/NEWS/STORY", "/news/story#x"),
            ),
            make_item(2, "news", id="desk:1", source="desk", link=link, title="Desk copy"),
            make_item(3, "news", id="upstream:3", source="upstream"),
        ],
        [],
        T0,
    )

    build_feeds(settings, store)

    for fmt in ("rss", "atom"):
        assert sorted(e.title for e in parse(settings, "all", fmt).entries) == ["Desk copy", "Item number 3"]
    listed = {i.item.id: (i.state, i.duplicate_of) for i in Publisher(settings, store).items()}
    assert listed["upstream:1"] == (ItemState.DUPLICATE, "desk:1")
    assert listed["desk:1"] == (ItemState.SHOWN, None)

    # Hiding the first copy withdraws the story; it does not bring the second copy back.
    store.items.set_hidden("desk:1", True)
    build_feeds(settings, store)
    assert [e.title for e in parse(settings, "all", "rss").entries] == ["Item number 3"]

    # Without the first source, the other copy is the story.
    build_feeds(make_settings(sources=sources[1:]), store)
    assert sorted(e.title for e in parse(settings, "all", "rss").entries) == [
        "Item number 1",
        "Item number 3",
    ]
