"""RFC 5005 archived feeds, per-language feeds and the build manifest, as readers see them.

Every test builds from items in a real store (SQLite and PostgreSQL) and reads the files
back with feedparser (what feed readers use) or lxml, following the links a reader
follows. Atom documents are validated against the RFC 4287 RELAX NG schema
(tests/data/atom.rng, written from the RFC's appendix B).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import feedparser
import lxml.etree
import lxml.html
import pytest

from publisher.config import Settings
from publisher.feeds import atom_id, build_feeds
from publisher.models import Item
from publisher.store import Store

BASE = "http://127.0.0.1:8080"
T0 = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
SCHEMA = lxml.etree.RelaxNG(lxml.etree.parse(str(Path(__file__).parent / "data" / "atom.rng")))
ATOM = "{http://www.w3.org/2005/Atom}"
FH = "{http://purl.org/syndication/history/1.0}"
SUFFIX = {"atom": ".atom.xml", "rss": ".rss.xml", "json": ".json"}


def make_item(n: int, category: str | None = "news", language: str = "en", **changes: Any) -> Item:
    published = T0 + timedelta(hours=n)
    values: dict[str, Any] = {
        "id": f"sample:item-{n}",
        "source": "sample",
        "title": f"Item number {n}",
        "link": f"https://www.example.org/news/{n}",
        "published": published,
        "updated": published + timedelta(minutes=10),
        "language": language,
        "summary": f"<p>Summary of item {n}.</p>",
        "category": category,
        "content_hash": f"hash-{n}",
    }
    values.update(changes)
    return Item(**values)


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """10 items in a subscription document, 10 on an archive page (the smallest allowed)."""
    return make_settings(feeds={"max_items": 10, "archive_page_size": 10})


def local(settings: Settings, url: str) -> Path:
    assert url.startswith(BASE + "/"), url
    return settings.feeds.output_dir / url.removeprefix(BASE + "/")


def links(parsed: Any) -> dict[str, str]:
    return {link["rel"]: link["href"] for link in parsed.feed.get("links", [])}


def walk(settings: Settings, name: str, fmt: str) -> list[tuple[str, list[str]]]:
    """Follow prev-archive (next_url in JSON) from a subscription document, as a reader
    reconstructing the whole feed does: (URL, item ids) of every document met."""
    url = f"{BASE}/feeds/{name}{SUFFIX[fmt]}"
    seen: list[tuple[str, list[str]]] = []
    while url:
        assert url not in [u for u, _ in seen], f"loop at {url}"
        data = local(settings, url).read_bytes()
        if fmt == "json":
            doc = json.loads(data)
            seen.append((url, [i["id"] for i in doc["items"]]))
            url = doc.get("next_url", "")
        else:
            parsed = feedparser.parse(data)
            assert not parsed.bozo, (url, parsed.get("bozo_exception"))
            ids = [e.id for e in parsed.entries]
            seen.append((url, ids))
            url = links(parsed).get("prev-archive", "")
    return seen


@pytest.mark.parametrize("fmt", ["atom", "rss", "json"])
def test_following_prev_archive_reaches_every_item_exactly_once(
    settings: Settings, store: Store, fmt: str
) -> None:
    store.items.save([make_item(n) for n in range(45)], [], T0)
    store.items.save([make_item(100 + n, "events") for n in range(3)], [], T0)

    build_feeds(settings, store)

    documents = walk(settings, "news", fmt)
    urls = [u for u, _ in documents]
    suffix = SUFFIX[fmt]
    # the subscription document, then the newest page back to the oldest
    assert urls == [f"{BASE}/feeds/news{suffix}"] + [
        f"{BASE}/feeds/archive/news/{n}{suffix}" for n in (4, 3, 2, 1)
    ]
    found = [i for _, ids in documents for i in ids]
    expected = {f"sample:item-{n}" for n in range(45)}
    if fmt == "atom":  # these ids are not IRIs: Atom carries the urn:uuid: made of them
        expected = {atom_id(e) for e in expected}
    assert len(found) == len(set(found)) == 45
    assert set(found) == expected
    # pages hold page_size items, counted from the oldest: 10, 10, 10, then the rest
    assert [len(ids) for _, ids in documents] == [10, 5, 10, 10, 10]
    # the events feed fits in its subscription document: no archive
    assert walk(settings, "events", fmt)[0][0] == f"{BASE}/feeds/events{suffix}"
    assert len(walk(settings, "events", fmt)) == 1
    assert not (settings.feeds.output_dir / "feeds/archive/events").exists()


def test_archive_pages_are_marked_and_linked_as_rfc_5005_says(settings: Settings, store: Store) -> None:
    store.items.save([make_item(n) for n in range(35)], [], T0)

    build_feeds(settings, store)

    out = settings.feeds.output_dir
    for fmt in ("atom", "rss"):
        suffix = SUFFIX[fmt]
        current = f"{BASE}/feeds/news{suffix}"
        page = {n: f"{BASE}/feeds/archive/news/{n}{suffix}" for n in (1, 2, 3)}
        sub = lxml.etree.parse(str(out / f"feeds/news{suffix}")).getroot()
        assert sub.find(f".//{FH}archive") is None  # the subscription document is not an archive
        expected_links = {
            1: {"current": current, "next-archive": page[2]},
            2: {"current": current, "prev-archive": page[1], "next-archive": page[3]},
            3: {"current": current, "prev-archive": page[2]},
        }
        for n, expected in expected_links.items():
            root = lxml.etree.parse(str(local(settings, page[n]))).getroot()
            assert root.find(f".//{FH}archive") is not None, (fmt, n)
            found = {
                link.get("rel"): link.get("href")
                for link in root.iter(f"{ATOM}link")
                if link.get("rel") in ("current", "prev-archive", "next-archive")
            }
            assert found == expected, (fmt, n)
            # RSS keeps its self link too (feedgen would keep only one atom:link)
            selfs = [link.get("href") for link in root.iter(f"{ATOM}link") if link.get("rel") == "self"]
            assert selfs == [page[n]]
        # oldest first on a page
        parsed = feedparser.parse(local(settings, page[1]).read_bytes())
        assert [e.title for e in parsed.entries] == [f"Item number {n}" for n in range(10)]


def test_a_new_item_leaves_full_archive_pages_untouched(settings: Settings, store: Store) -> None:
    store.items.save([make_item(n) for n in range(35)], [], T0)  # pages 1, 2 full; 3 holds 5
    build_feeds(settings, store)
    out = settings.feeds.output_dir
    full = sorted(
        p for p in (out / "feeds/archive").rglob("*") if p.is_file() and p.name.startswith(("1.", "2."))
    )
    assert len(full) == 2 * 2 * 3  # all and news, pages 1 and 2, three formats
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in full}
    newest_before = (out / "feeds/archive/news/3.atom.xml").read_bytes()

    store.items.save([make_item(35)], [], T0)
    report = build_feeds(settings, store)

    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in full} == before
    assert out / "feeds/archive/news/3.atom.xml" in report.written  # the page that is not full
    assert (out / "feeds/archive/news/3.atom.xml").read_bytes() != newest_before
    assert not set(full) & set(report.written)


def test_the_newest_full_page_gains_only_next_archive_when_the_next_page_starts(
    settings: Settings, store: Store
) -> None:
    store.items.save([make_item(n) for n in range(40)], [], T0)  # archive: 30 items, pages 1-3 full
    build_feeds(settings, store)
    out = settings.feeds.output_dir
    page3 = out / "feeds/archive/news/3.atom.xml"
    old = page3.read_bytes()
    pages12 = {p: p.stat().st_mtime_ns for p in (out / "feeds/archive/news").glob("[12].*")}

    store.items.save([make_item(40)], [], T0)  # item 30 moves to a new page 4
    build_feeds(settings, store)

    new = page3.read_bytes()
    added = f'<link rel="next-archive" href="{BASE}/feeds/archive/news/4.atom.xml"/>'.encode()
    assert added in new and added not in old
    assert new.replace(b"  " + added + b"\n", b"") == old  # nothing else changed
    assert {p: p.stat().st_mtime_ns for p in pages12} == pages12
    assert [e.id for e in feedparser.parse((out / "feeds/archive/news/4.json").read_bytes()).entries] == []
    assert [i["id"] for i in json.loads((out / "feeds/archive/news/4.json").read_bytes())["items"]] == [
        "sample:item-30"
    ]


def test_an_edited_item_rewrites_only_its_own_page(settings: Settings, store: Store) -> None:
    store.items.save([make_item(n) for n in range(40)], [], T0)
    build_feeds(settings, store)
    edited = make_item(15, title="Item number 15, corrected", content_hash="hash-15b")
    store.items.save([], [edited], T0)

    report = build_feeds(settings, store)

    archive_written = {
        p.relative_to(settings.feeds.output_dir).as_posix() for p in report.written if "archive" in p.parts
    }
    pages = {f"feeds/archive/{feed}/2{s}" for feed in ("all", "news") for s in SUFFIX.values()}
    # and the HTML page of each of its RSS and Atom files (publisher.feed_pages)
    html = {f".feed-pages/{p}.html" for p in pages if p.endswith((".atom.xml", ".rss.xml"))}
    assert archive_written == pages | html
    parsed = feedparser.parse((settings.feeds.output_dir / "feeds/archive/news/2.atom.xml").read_bytes())
    assert "Item number 15, corrected" in [e.title for e in parsed.entries]


def test_an_item_moved_to_another_category_is_shown_there_on_the_all_items_page(
    settings: Settings, store: Store
) -> None:
    store.items.save([make_item(n) for n in range(40)], [], T0)
    build_feeds(settings, store)
    # What ingest stores when a config change maps the item's label elsewhere: same
    # content, same hash, another category.
    store.items.save([], [make_item(15, category="events")], T0)

    build_feeds(settings, store)

    out = settings.feeds.output_dir
    page = feedparser.parse((out / "feeds/archive/all/2.atom.xml").read_bytes())
    moved = next(e for e in page.entries if e.title == "Item number 15")
    assert [t.term for t in moved.tags] == ["events"]
    events = feedparser.parse((out / "feeds/events.atom.xml").read_bytes())
    assert [e.title for e in events.entries] == ["Item number 15"]


def test_subscription_and_archive_atom_documents_are_valid_rfc_4287(
    make_settings: Callable[..., Settings], store: Store
) -> None:
    settings = make_settings(
        feeds={
            "max_items": 10,
            "archive_page_size": 10,
            "languages": ["en", "fr"],
            "websub_hubs": ["https://hub.example.org/", "https://other-hub.example.net/hub"],
        }
    )
    store.items.save([make_item(n, language="fr-CH" if n % 3 else "en") for n in range(45)], [], T0)

    build_feeds(settings, store)

    documents = sorted(settings.feeds.output_dir.rglob("*.atom.xml"))
    assert len([d for d in documents if "archive" in d.parts]) >= 8
    for path in documents:
        doc = lxml.etree.parse(str(path))
        assert SCHEMA.validate(doc), f"{path}: {SCHEMA.error_log}"
    # and the schema is not a rubber stamp: a document without its id fails
    doc = lxml.etree.parse(str(documents[0]))
    root = doc.getroot()
    root.remove(root.find(f"{ATOM}id"))
    assert not SCHEMA.validate(doc)


# -- languages ----------------------------------------------------------------------


def test_language_feeds_hold_that_languages_items_and_are_listed_with_hreflang(
    make_settings: Callable[..., Settings], store: Store
) -> None:
    settings = make_settings(feeds={"languages": ["en", "fr", "es"]})
    store.items.save(
        [
            make_item(1, language="en"),
            make_item(2, language="fr"),
            make_item(3, language="fr-CH", category="events"),
            make_item(4, language="es"),
        ],
        [],
        T0,
    )

    build_feeds(settings, store)

    out = settings.feeds.output_dir

    def titles(path: str) -> list[str]:
        parsed = feedparser.parse((out / path).read_bytes())
        assert not parsed.bozo, path
        return [e.title for e in parsed.entries]

    assert titles("feeds/fr/all.atom.xml") == ["Item number 3", "Item number 2"]
    assert titles("feeds/fr/news.rss.xml") == ["Item number 2"]
    assert titles("feeds/fr/events.atom.xml") == ["Item number 3"]
    assert titles("feeds/es/all.atom.xml") == ["Item number 4"]
    assert json.loads((out / "feeds/fr/all.json").read_bytes())["language"] == "fr"
    assert [i["title"] for i in json.loads((out / "feeds/en/all.json").read_bytes())["items"]] == [
        "Item number 1"
    ]
    fr = lxml.etree.parse(str(out / "feeds/fr/all.atom.xml")).getroot()
    assert fr.get("{http://www.w3.org/XML/1998/namespace}lang") == "fr"
    entry_langs = [e.get("{http://www.w3.org/XML/1998/namespace}lang") for e in fr.iter(f"{ATOM}entry")]
    assert entry_langs == ["fr-CH", None]  # only the entry whose language differs is marked
    everything = lxml.etree.parse(str(out / "feeds/all.atom.xml")).getroot()
    marked = {
        e.findtext(f"{ATOM}title"): e.get("{http://www.w3.org/XML/1998/namespace}lang")
        for e in everything.iter(f"{ATOM}entry")
    }
    assert marked == {
        "Item number 1": None,
        "Item number 2": "fr",
        "Item number 3": "fr-CH",
        "Item number 4": "es",
    }

    opml = lxml.etree.parse(str(out / "feeds.opml")).getroot()
    outlines = {o.get("xmlUrl"): o.get("language") for o in opml.iter("outline")}
    assert outlines[f"{BASE}/feeds/fr/news.atom.xml"] == "fr"
    assert outlines[f"{BASE}/feeds/es/all.atom.xml"] == "es"
    assert outlines[f"{BASE}/feeds/all.atom.xml"] == "en"
    assert len(outlines) == 7 * 4

    page = lxml.html.parse(str(out / "index.html")).getroot()
    head = {
        link.get("href"): link.get("hreflang") for link in page.iter("link") if link.get("rel") == "alternate"
    }
    assert head[f"{BASE}/feeds/fr/events.rss.xml"] == "fr"
    assert head[f"{BASE}/feeds/events.rss.xml"] is None
    visible = {a.get("href"): a.get("hreflang") for a in page.iter("a")}
    assert visible[f"{BASE}/feeds/es/all.json"] == "es"
    assert visible[f"{BASE}/feeds/fr/news.atom.xml"] == "fr"


# -- the manifest: what build wrote, and nothing else, is deleted --------------------


def test_a_removed_category_loses_its_files_and_a_foreign_file_stays(
    make_settings: Callable[..., Settings], store: Store
) -> None:
    settings = make_settings(feeds={"max_items": 10, "archive_page_size": 10})
    store.items.save([make_item(n, category="events") for n in range(25)], [], T0)
    build_feeds(settings, store)
    out = settings.feeds.output_dir
    events = sorted(p for p in out.rglob("*") if p.is_file() and ("events" in p.name or "events" in p.parts))
    assert out / "feeds/events.atom.xml" in events and out / "feeds/archive/events/1.rss.xml" in events
    foreign = [out / "feeds/events-old.xml", out / "feeds/archive/events/notes.txt", out / "robots.txt"]
    for path in foreign:
        path.write_text("the admin's own file\n")

    fewer = [c for c in settings.model_dump()["categories"] if c["slug"] != "events"]
    smaller = make_settings(feeds={"max_items": 10, "archive_page_size": 10}, categories=fewer)
    report = build_feeds(smaller, store)

    gone = {p for p in events if p.is_file() and p not in foreign}
    assert not gone
    assert {out / f"feeds/events{s}" for s in SUFFIX.values()} <= set(report.deleted)
    assert all(p.read_text() == "the admin's own file\n" for p in foreign)
    assert not (out / "feeds/archive/events/1.atom.xml").exists()
    assert (out / "feeds/archive/all/1.atom.xml").exists()  # items stay in the all-items feed


def test_a_removed_format_and_language_lose_their_files(
    make_settings: Callable[..., Settings], store: Store
) -> None:
    settings = make_settings(feeds={"languages": ["fr"], "formats": ["atom", "json"]})
    store.items.save([make_item(1, language="fr")], [], T0)
    build_feeds(settings, store)
    out = settings.feeds.output_dir
    assert (out / "feeds/fr/all.json").exists()

    report = build_feeds(make_settings(feeds={"formats": ["atom"]}), store)

    assert not (out / "feeds/fr").exists()
    assert not list((out / "feeds").rglob("*.json"))
    assert (out / "feeds/all.atom.xml").exists()
    assert out / "feeds/all.json" in report.deleted


def test_a_tampered_manifest_deletes_nothing_outside_what_build_writes(
    settings: Settings, store: Store
) -> None:
    store.items.save([make_item(1)], [], T0)
    build_feeds(settings, store)
    out = settings.feeds.output_dir
    outside = out.parent / "outside"
    outside.mkdir()
    (out / "feeds/linked").symlink_to(outside)  # a folder linked to elsewhere
    kept = [
        outside / "secret.atom.xml",
        outside / "passwd",
        out / "robots.txt",
        out / "feeds/notes.txt",
        out / "feeds/archive/all/README",
    ]
    for path in kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("not the build's\n")
    (out / "feeds/linked.atom.xml").symlink_to(outside / "secret.atom.xml")
    listed = json.loads((out / ".build-manifest.json").read_text())["files"]
    listed += [
        "feeds/linked/secret.atom.xml",
        "feeds/linked.atom.xml",
        "../outside/passwd",
        f"{outside}/passwd",
        "feeds/../../outside/passwd",
        "robots.txt",
        "feeds/notes.txt",
        "feeds/archive/all/README",
    ]
    (out / ".build-manifest.json").write_text(json.dumps({"files": listed}))

    report = build_feeds(settings, store)

    assert report.deleted == []
    assert all(p.read_text() == "not the build's\n" for p in kept)
    assert (out / "feeds/linked.atom.xml").is_symlink()


def test_stylesheet_instruction_follows_a_base_url_with_a_path(
    make_settings: Callable[..., Settings], store: Store
) -> None:
    settings = make_settings(site={"base_url": "https://www.example.org/social/news/"})
    store.items.save([make_item(1)], [], T0)

    build_feeds(settings, store)

    out = settings.feeds.output_dir
    for path in ("feeds/all.atom.xml", "feeds/news.rss.xml"):
        data = (out / path).read_bytes()
        assert data.splitlines()[1] == b'<?xml-stylesheet type="text/xsl" href="/social/news/feed.xsl"?>'
        assert not feedparser.parse(data).bozo
    xsl = lxml.etree.parse(str(out / "feed.xsl"))
    lxml.etree.XSLT(xsl)  # compiles
    assert not (out / "feeds/all.json").read_bytes().startswith(b"<")


def test_archive_pages_hold_only_what_readers_may_see(
    make_settings: Callable[..., Settings], store: Store
) -> None:
    """Hidden items, items of a source no longer configured and second copies of a story
    (same link from a later source) stay out of archive pages as out of the feed itself."""
    sources = [
        {"name": "sample", "type": "directory", "path": "content"},
        {"name": "mirror", "type": "directory", "path": "mirror"},
    ]
    settings = make_settings(feeds={"max_items": 10, "archive_page_size": 10}, sources=sources)
    store.items.save([make_item(n) for n in range(35)], [], T0)
    copy = make_item(5, id="mirror:5", source="mirror", title="Item five again")  # same link as item 5
    gone = make_item(-1, id="gone:1", source="gone", link="https://www.example.org/gone/1")
    store.items.save([copy, gone], [], T0)
    assert store.items.set_hidden("sample:item-3", True) is False

    build_feeds(settings, store)

    def every_id() -> list[str]:
        return [i for _, ids in walk(settings, "news", "json") for i in ids]

    found = every_id()
    assert len(found) == len(set(found))
    assert set(found) == {f"sample:item-{n}" for n in range(35) if n != 3}
    oldest = json.loads((settings.feeds.output_dir / "feeds/archive/news/1.json").read_bytes())
    assert "sample:item-3" not in [i["id"] for i in oldest["items"]]

    store.items.set_hidden("sample:item-3", False)
    build_feeds(settings, store)
    assert "sample:item-3" in every_id()


@pytest.mark.parametrize(
    "sources",
    [["sample"], ["sample", "mirror"], ["mirror", "sample"], ["mirror", "sample", "third"], []],
)
def test_the_history_read_agrees_with_the_rule_of_what_readers_see(store: Store, sources: list[str]) -> None:
    """history(sources) filters in Python what shown() says in SQL: they must agree."""
    saved = [make_item(n) for n in range(12)]
    saved += [make_item(n, id=f"mirror:{n}", source="mirror") for n in (2, 3, 4)]  # second copies
    saved += [make_item(20, id="mirror:own", source="mirror", link="https://www.example.org/own")]
    saved += [make_item(21, id="third:2", source="third", link="https://www.example.org/news/2")]
    saved += [make_item(22, id="gone:1", source="gone", link="https://www.example.org/gone")]
    store.items.save(saved, [], T0)
    for item_id in ("sample:item-3", "mirror:4", "sample:item-7"):  # a hidden first copy stays first
        store.items.set_hidden(item_id, True)

    read = [key[0] for key in store.items.history(sources)]
    expected = [i.id for i in reversed(store.items.latest(None, 1000, sources=sources))]
    assert read == expected
    assert len(read) == len(set(read))
