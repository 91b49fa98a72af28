"""Store -> RSS 2.0, Atom 1.0, JSON Feed 1.1, OPML and index.html under ``feeds.output_dir``.

Readers poll feeds every few minutes and rely on ETag / Last-Modified, which the web
server derives from the file's size and mtime. So every output must be a pure function
of the stored items and the settings: no build time anywhere (a feed's ``updated`` is
its newest item's ``updated``), stable ordering, and a file is replaced (atomically)
only when its bytes change. A rebuild with nothing new then touches no file at all.

Each feed is validated by the W3C Feed Validation Service without errors or warnings:
absolute URLs, one ``self`` link equal to the URL the file is served at, one
``alternate`` link to the site's index page, RFC 822 dates in RSS, RFC 3339 in Atom,
Atom ids that are IRIs, and no character XML cannot carry. Atom and RSS dates carry the
site's zone offset (``[site] timezone``), so the date a browser's page of the feed
shows (``feed.xsl``'s, and the HTML page of :mod:`publisher.feed_pages`) is the
site's day; JSON Feed's stay in UTC (no page reads them).

A category whose newest items did not change is not rendered again: a small state file
(:data:`STATE_FILE`) remembers a fingerprint of what each feed was rendered from and the
size and mtime of the file that came out. Anything that does not match (new or edited
item, other settings, a file touched or removed by hand) renders the feed again, and
then the bytes comparison decides whether it is written.

Around the feeds (each in its own module): RFC 5005 archive pages planned by
:mod:`publisher.feed_archives`, WebSub ``hub`` links, per-language feeds, the
``xml-stylesheet`` page of :mod:`publisher.feed_extensions` and, for browsers without
XSLT, each RSS and Atom file's HTML page (:mod:`publisher.feed_pages`, remembered in the
state file like the feeds), and the manifest of
:mod:`publisher.build_manifest` that deletes files an earlier build wrote and this one
no longer does.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit
from zoneinfo import ZoneInfo

import feedgen
import nh3
from feedgen.ext.base import BaseEntryExtension
from feedgen.feed import FeedGenerator
from feedgen.util import xml_elem
from markupsafe import Markup

from publisher import feed_archives, feed_extensions, feed_pages
from publisher.build_manifest import MANIFEST_FILE, load_manifest, prune, save_manifest
from publisher.config import CategoryConfig, Settings
from publisher.errors import PublisherError
from publisher.feed_archives import ArchivePage, archive_pages, newest_ids, page_path, split_history
from publisher.feed_extensions import Link, extend, set_entry_language, with_stylesheet
from publisher.feed_pages import FEED_PAGE_TEMPLATE, PAGES_DIR, has_page, page_version, render_feed_page
from publisher.i18n import language_name, normalise_language
from publisher.models import Item
from publisher.store import Store
from publisher.templating import make_environment, render_template, translator
from publisher.text import XML_UNSAFE, html_to_text
from publisher.text import xml_safe as clean_text

INDEX_TEMPLATE = "web/index.html.j2"
STYLESHEET_TEMPLATE = "web/feed.xsl.j2"
#: The templates :func:`build_feeds` renders (the feeds themselves are not templated).
PAGE_TEMPLATES = (INDEX_TEMPLATE, STYLESHEET_TEMPLATE, FEED_PAGE_TEMPLATE)
#: The page browsers show for RSS and Atom files, at the root of the output folder.
STYLESHEET_FILE = "feed.xsl"

#: ``updated`` of a feed that has no item yet. A fixed date keeps empty feeds
#: byte-identical across builds; it is not the epoch because the W3C validator warns
#: about dates before 1990 ("implausible date").
EMPTY_FEED_UPDATED = datetime(2000, 1, 1, tzinfo=UTC)

#: How many of each category's newest items index.html shows.
INDEX_ITEMS = 10

#: Remembers what each feed was rendered from, so unchanged categories are skipped.
STATE_FILE = ".feeds-state.json"

JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
GENERATOR = "publisher"

# Namespace of the urn:uuid: Atom ids made from item ids that are not IRIs. Never
# change it: every reader would see every item as new.
_ID_NAMESPACE = uuid.UUID("6f1b3c0e-8c2a-5d4e-9b7a-2f4e1d0c3b5a")

# Characters XML 1.0 cannot carry (lxml refuses them) and the C1 controls and U+FFFD
# that the W3C validator flags as "bad characters"; tab, LF and CR stay.
_TAG_URI = re.compile(
    r"^tag:[a-z0-9.-]+(?:@[a-z0-9.-]+)?,\d{4}(?:-\d{2}(?:-\d{2})?)?:[^\s<>\"{}|\\^`]*$", re.IGNORECASE
)
_URI_UNSAFE = re.compile(r"[\s<>\"{}|\\^`]")


@dataclass(frozen=True, slots=True)
class FeedFormat:
    """One output format: its file suffix, media type and human name."""

    name: str
    suffix: str
    media_type: str
    label: str


FORMATS: dict[str, FeedFormat] = {
    "atom": FeedFormat("atom", ".atom.xml", "application/atom+xml", "Atom"),
    "rss": FeedFormat("rss", ".rss.xml", "application/rss+xml", "RSS"),
    "json": FeedFormat("json", ".json", "application/feed+json", "JSON Feed"),
}
# OPML names one feed per category: the format most readers handle best that is enabled.
_OPML_PREFERENCE = ("atom", "rss", "json")


@dataclass(frozen=True, slots=True)
class FeedFile:
    """One feed file: where it goes under the output folder and where it is served."""

    format: FeedFormat
    path: str  # relative to output_dir, e.g. "feeds/news.atom.xml"
    url: str
    title: str
    links: tuple[Link, ...] = ()  # hub, prev-archive; on archive pages current, next-archive
    archive: bool = False  # an RFC 5005 archive page: <fh:archive/>
    language: str = ""  # a per-language feed's language (hreflang); "" for every language


@dataclass(slots=True)
class Channel:
    """The all-items feed or one category's feed, in every enabled format."""

    slug: str
    title: str  # the feed's title, e.g. "Social Protection Department: News"
    name: str  # the category's own name, e.g. "News"
    items: list[Item]
    files: list[FeedFile]
    language: str = ""  # the feed's language; "" is the site's (the feed of every language)

    @property
    def updated(self) -> datetime:
        return max((i.updated for i in self.items), default=EMPTY_FEED_UPDATED)


@dataclass(slots=True)
class BuildReport:
    """Which files a build replaced and which already held the right bytes."""

    written: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    unchanged_archive: int = 0  # archive page files that already held the right bytes
    deleted: list[Path] = field(default_factory=list)  # written by an earlier build, no longer
    feeds_changed: list[str] = field(default_factory=list)  # public URLs (WebSub pings)
    hub_pings: int = 0  # WebSub pings queued for them (set by Publisher.build)


@dataclass(frozen=True, slots=True)
class _Site:
    """The settings every renderer needs, resolved once per build."""

    title: str
    description: str
    language: str
    timezone: ZoneInfo
    root: str  # base_url + "/": the index page, and the base of relative links
    categories: dict[str, CategoryConfig]
    stylesheet: str  # the xml-stylesheet href: base_url's path + "/feed.xsl"
    hubs: tuple[str, ...]


# -- entry point --------------------------------------------------------------------


def build_feeds(settings: Settings, store: Store) -> BuildReport:
    """Write every feed, its archive pages, the HTML page of each RSS and Atom file,
    feeds.opml, index.html and feed.xsl; only files whose bytes changed; then delete the
    files an earlier build wrote that no longer belong."""
    site = _site(settings)
    out = settings.feeds.output_dir
    keys_of = split_history(
        store.items.history(settings.source_names),
        [c.slug for c in settings.categories],
        settings.feeds.languages,
    )
    state = _load_state(out)
    views = _FeedPages(settings, page_version(settings))
    previous = load_manifest(out, fallback=[*state, "feeds.opml", "index.html"])
    new_state: dict[str, Any] = {}
    report = BuildReport()
    channels: list[Channel] = []
    for language in ["", *settings.feeds.languages]:
        for cat in [None, *settings.categories]:
            keys = keys_of[cat.slug if cat else None, language or None]
            name = _feed_name(cat.slug if cat else "all", language)
            pages = archive_pages(name, keys, settings.feeds.max_items, settings.feeds.archive_page_size)
            ch = _channel(
                settings, site, store, cat, language, newest_ids(keys, settings.feeds.max_items), pages
            )
            for f, written in zip(
                ch.files, _emit_channel(out, site, ch, state, new_state, report, views), strict=True
            ):
                if written:
                    report.feeds_changed.append(f.url)
            head = hashlib.blake2b(
                repr([_code_version(), site, ch.title, ch.files]).encode(), digest_size=6
            ).hexdigest()
            for page in pages:
                _emit_archive_page(
                    out,
                    site,
                    store,
                    ch,
                    name,
                    page,
                    f"{head}:{page.fingerprint}",
                    state,
                    new_state,
                    report,
                    views,
                )
            channels.append(ch)
    _emit(out / "feeds.opml", render_opml(site, channels), report)
    _emit(out / "index.html", render_index(settings, site, channels), report)
    _emit(out / STYLESHEET_FILE, render_stylesheet(settings), report)
    _save_state(out, new_state)
    current = {*new_state, *_ROOT_FILES}
    report.deleted = prune(out, previous, current, owned=_written_by_build)
    write_if_changed(out / MANIFEST_FILE, save_manifest(out, current))
    return report


#: Files at the root of the output folder that every build writes.
_ROOT_FILES = ("feeds.opml", "index.html", STYLESHEET_FILE)
_FEED_SUFFIXES = tuple(f.suffix for f in FORMATS.values())


def _written_by_build(rel: str) -> bool:
    """Whether a build could have written ``rel``: what a manifest entry may delete.

    A manifest changed by someone else could otherwise list the admin's robots.txt.
    """
    if rel.startswith(f"{PAGES_DIR}/feeds/") and rel.endswith(_PAGE_SUFFIXES):
        return True  # a feed's page (publisher.feed_pages): deleted with its feed
    return rel in _ROOT_FILES or (rel.startswith("feeds/") and rel.endswith(_FEED_SUFFIXES))


_PAGE_SUFFIXES = tuple(suffix + feed_pages.PAGE_SUFFIX for suffix in feed_pages.XML_FEED_SUFFIXES)


@dataclass(frozen=True, slots=True)
class _FeedPages:
    """Writes the HTML page of each RSS and Atom file (:mod:`publisher.feed_pages`).

    A page is a function of its feed's bytes and of :func:`page_version` (its template
    files, texts and the site's settings); the state file remembers, under the page's
    own path, the feed's fingerprint with that version and the page file's size and
    mtime. So an unchanged feed whose page is still right costs one stat, and a feed
    rendered again, an edited template or a page removed by hand renders the page.
    """

    settings: Settings
    version: str

    def emit(
        self,
        out: Path,
        feed_rel: str,
        fingerprint: str,
        data: bytes | None,
        state: dict[str, Any],
        new_state: dict[str, Any],
        report: BuildReport,
        *,
        archive: bool = False,
    ) -> None:
        """The page of the feed file ``feed_rel``, whose bytes are ``data`` when it was
        rendered in this build (None: it was not, and is read only if its page must be)."""
        if not has_page(feed_rel):
            return
        rel = feed_pages.page_path(feed_rel)
        key = f"{fingerprint}:{self.version}"
        recorded = state.get(rel)
        if data is None and recorded and recorded[0] == key and recorded[1:] == _stat_key(f"{out}/{rel}"):
            new_state[rel] = recorded
            if archive:
                report.unchanged_archive += 1
            else:
                report.unchanged.append(out / rel)
            return
        if data is None:
            try:
                data = (out / feed_rel).read_bytes()
            except OSError as e:
                raise PublisherError(f"cannot read {out / feed_rel}: {e.strerror or e}") from e
        path = out / rel
        _emit(path, render_feed_page(self.settings, data), report)
        new_state[rel] = [key, *_stat_key(path)]


def _feed_name(slug: str, language: str) -> str:
    """The name in feeds/{name}.*: "news", or "fr/news" for a language's feed."""
    return f"{language}/{slug}" if language else slug


def _emit_channel(
    out: Path,
    site: _Site,
    ch: Channel,
    state: dict[str, Any],
    new_state: dict[str, Any],
    report: BuildReport,
    views: _FeedPages,
) -> list[bool]:
    """Write one channel's files (and their pages) unless its fingerprint and files are
    as last time; whether each feed file was written."""
    fingerprint = _fingerprint(site, ch)
    written: list[bool] = []
    for f in ch.files:
        path = out / f.path
        recorded = state.get(f.path)
        data: bytes | None = None
        if recorded and recorded[0] == fingerprint and recorded[1:] == _stat_key(path):
            report.unchanged.append(path)
            written.append(False)
        else:
            data = RENDERERS[f.format.name](site, ch, f)
            written.append(_emit(path, data, report))
        new_state[f.path] = [fingerprint, *_stat_key(path)]
        views.emit(out, f.path, fingerprint, data, state, new_state, report)
    return written


def _emit_archive_page(
    out: Path,
    site: _Site,
    store: Store,
    ch: Channel,
    name: str,
    page: ArchivePage,
    fingerprint: str,
    state: dict[str, Any],
    new_state: dict[str, Any],
    report: BuildReport,
    views: _FeedPages,
) -> None:
    """Write one archive page in every format, and the HTML page of its RSS and Atom
    files; its items are read only when it changed.

    ``fingerprint`` (the channel's settings and files, the page's ids and content
    hashes, whether a newer page exists) stands in for the items, so an unchanged page
    costs one stat per format and no query: at 100k items most pages are unchanged.
    """
    todo: list[FeedFile] = []
    for current in ch.files:
        rel = page_path(name, page.number, current.format.suffix)
        recorded = state.get(rel)
        # Strings and a count, not Path and FeedFile objects: at 100k items thousands of
        # unchanged pages go through here on every build.
        if recorded and recorded[0] == fingerprint and recorded[1:] == _stat_key(f"{out}/{rel}"):
            report.unchanged_archive += 1
            new_state[rel] = recorded
            views.emit(out, rel, fingerprint, None, state, new_state, report, archive=True)
        else:
            todo.append(current)
    if not todo:
        return
    files = [_archive_file(site, ch, f, name, page) for f in ch.files]
    items = store.items.by_ids(page.ids)  # oldest first, as RFC 5005 pages go
    page_channel = Channel(ch.slug, ch.title, ch.name, items, files, ch.language)
    formats = {t.format.name for t in todo}
    for f in files:
        if f.format.name not in formats:
            continue
        path = out / f.path
        data = RENDERERS[f.format.name](site, page_channel, f)
        _emit(path, data, report)
        new_state[f.path] = [fingerprint, *_stat_key(path)]
        views.emit(out, f.path, fingerprint, data, state, new_state, report, archive=True)


def _archive_file(site: _Site, ch: Channel, current: FeedFile, name: str, page: ArchivePage) -> FeedFile:
    """Archive page ``page`` of feed file ``current``, with its RFC 5005 links."""
    suffix = current.format.suffix
    links: list[Link] = [("current", current.url)]
    if page.number > 1:
        links.append(("prev-archive", site.root + page_path(name, page.number - 1, suffix)))
    if page.has_next:
        links.append(("next-archive", site.root + page_path(name, page.number + 1, suffix)))
    path = page_path(name, page.number, suffix)
    return FeedFile(
        format=current.format,
        path=path,
        url=site.root + path,
        title=f"{current.title}, archive {page.number}",
        links=tuple(links),
        archive=True,
        language=current.language,
    )


def _emit(path: Path, data: bytes, report: BuildReport) -> bool:
    written = write_if_changed(path, data)
    (report.written if written else report.unchanged).append(path)
    return written


# -- reading ------------------------------------------------------------------------


def _site(settings: Settings) -> _Site:
    s = settings.site
    return _Site(
        title=clean_text(s.title),
        description=clean_text(s.description),
        language=s.language,
        timezone=s.tz,
        root=s.base_url + "/",
        categories={c.slug: c for c in settings.categories},
        stylesheet=stylesheet_path(settings),
        hubs=tuple(settings.feeds.websub_hubs),
    )


def stylesheet_path(settings: Settings) -> str:
    """Where every feed's ``xml-stylesheet`` points: ``feed.xsl`` at the root of the site.

    A path, not a URL: browsers apply a stylesheet of the feed's own origin only, and
    the path keeps base_url's prefix (https://example.org/news/feed.xsl).
    """
    return urlsplit(settings.site.base_url).path + "/" + STYLESHEET_FILE


def _channel(
    settings: Settings,
    site: _Site,
    store: Store,
    category: CategoryConfig | None,
    language: str,
    ids: Sequence[str],
    pages: Sequence[ArchivePage],
) -> Channel:
    """A subscription document: the newest ``ids`` of a category (or all) in a language (or all)."""
    slug = category.slug if category else "all"
    name = clean_text(category.title) if category else "All items"
    title = f"{site.title}: {name}" if category else site.title
    if language:
        title = f"{title} ({language_name(language)})"
    feed_name = _feed_name(slug, language)
    files = []
    for fmt in settings.feeds.formats:
        suffix = FORMATS[fmt].suffix
        links: list[Link] = [("hub", hub) for hub in site.hubs]
        if pages:  # RFC 5005: the newest archive page holds what this document does not
            links.append(("prev-archive", site.root + page_path(feed_name, pages[-1].number, suffix)))
        files.append(
            FeedFile(
                format=FORMATS[fmt],
                path=f"feeds/{feed_name}{suffix}",
                url=f"{site.root}feeds/{feed_name}{suffix}",
                title=f"{title} ({FORMATS[fmt].label})",
                links=tuple(links),
                language=language,
            )
        )
    items = store.items.by_ids(ids)
    return Channel(slug=slug, title=title, name=name, items=items, files=files, language=language)


# -- small helpers shared by the renderers ------------------------------------------


def absolute(site: _Site, url: str) -> str:
    """Resolve a possibly relative URL against the site root; readers need absolute ones."""
    return urljoin(site.root, clean_text(url).strip())


def atom_id(item_id: str) -> str:
    """The item's id if it already is an IRI, else a urn:uuid: derived from it (stable)."""
    if _is_iri(item_id):
        return item_id
    return f"urn:uuid:{uuid.uuid5(_ID_NAMESPACE, item_id)}"


def _is_iri(value: str) -> bool:
    if _URI_UNSAFE.search(value) or XML_UNSAFE.search(value):
        return False
    scheme, _, rest = value.partition(":")
    scheme = scheme.lower()
    if scheme in ("http", "https"):
        return bool(urlsplit(value).netloc)
    if scheme == "urn" and rest.lower().startswith("uuid:"):
        try:
            uuid.UUID(rest[5:])
        except ValueError:
            return False
        return True
    return scheme == "tag" and bool(_TAG_URI.match(value))


def rfc3339(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat()


def site_time(site: _Site, dt: datetime) -> datetime:
    """``dt`` in the site's zone, as Atom and RSS write their dates.

    The same instant for readers, but its day is the site's: ``feed.xsl`` shows the date
    part of ``published`` (and of RSS ``pubDate``), so an item published at 00:30 in
    Zurich shows that day, not the UTC day before.
    """
    return dt.astimezone(site.timezone)


def _item_tags(site: _Site, item: Item) -> list[tuple[str, str]]:
    """(term, label) pairs of an item: its category, or its raw label when unmapped."""
    if item.category and item.category in site.categories:
        return [(item.category, clean_text(site.categories[item.category].title))]
    if item.category or item.label:
        term = clean_text(item.category or item.label).strip()
        return [(term, term)] if term else []
    return []


def _fingerprint(site: _Site, ch: Channel) -> str:
    """A hash of everything a channel's feeds are rendered from."""
    h = hashlib.sha256()
    head: list[object] = [_code_version(), site, ch.slug, ch.title, ch.files]
    h.update(repr(head).encode())
    for item in ch.items:
        h.update(repr(item).encode())
    return h.hexdigest()


@cache
def _code_version() -> str:
    """Changes whenever the feed-writing modules or feedgen change, so their output is
    re-rendered."""
    h = hashlib.sha256()
    for module in (__file__, feed_extensions.__file__, feed_archives.__file__):
        h.update(Path(module).read_bytes())
    return h.hexdigest() + str(feedgen.version.version_str)


# -- Atom and RSS (feedgen) ---------------------------------------------------------


def _feed_generator(site: _Site, ch: Channel, f: FeedFile) -> FeedGenerator:
    """The channel-level fields shared by Atom and RSS.

    ``self`` is added before ``alternate`` because feedgen's RSS ``<link>`` is the last
    link added, whatever its rel.
    """
    fg = FeedGenerator()
    # An archive page is part of its subscription document's feed: same id (RFC 5005).
    fg.id(dict(f.links).get("current", f.url))
    fg.title(ch.title)
    fg.link(href=f.url, rel="self", type=f.format.media_type)
    fg.link(href=site.root, rel="alternate", type="text/html")
    fg.language(ch.language or site.language)
    extend(fg, f.links, archive=f.archive)
    fg.updated(site_time(site, ch.updated))
    fg.generator(GENERATOR)
    if any(item.image for item in ch.items):
        # Only then: a feed without pictures stays byte-identical to what it was.
        fg.load_extension("media", atom=True, rss=True)
    return fg


class _AtomEnclosure(BaseEntryExtension):  # type: ignore[misc]
    """Writes an Atom entry's ``<link rel="enclosure">`` with all its attributes.

    feedgen's own Atom entry links lose every attribute but ``href`` (its loop variable
    shadows the link's data), which would turn an enclosure into a second alternate link.
    """

    def __init__(self) -> None:
        self.attributes: dict[str, str] = {}

    def extend_atom(self, entry: Any) -> Any:
        if self.attributes:
            xml_elem("link", entry, **self.attributes)
        return entry


def _add_media(site: _Site, fe: Any, item: Item, *, atom: bool) -> None:
    """RSS ``<enclosure>`` / Atom ``link rel="enclosure"``, and ``media:thumbnail``.

    RSS requires an enclosure's length; 0 is what the RSS Advisory Board recommends
    when it is unknown (Atom leaves it out).
    """
    if item.enclosure_url and item.enclosure_type:
        url, length = absolute(site, item.enclosure_url), item.enclosure_length
        if atom:
            fe.register_extension("enclosure_link", _AtomEnclosure, atom=True, rss=False)
            fe.enclosure_link.attributes = {"rel": "enclosure", "href": url, "type": item.enclosure_type}
            if length:
                fe.enclosure_link.attributes["length"] = str(length)
        else:
            fe.enclosure(url=url, length=str(length or 0), type=item.enclosure_type)
    if item.image:
        thumbnail = {"url": absolute(site, item.image), "group": None}
        if item.image_width and item.image_height:
            thumbnail |= {"width": str(item.image_width), "height": str(item.image_height)}
        fe.media.thumbnail(thumbnail)


def render_atom(site: _Site, ch: Channel, f: FeedFile) -> bytes:
    fg = _feed_generator(site, ch, f)
    fg.author(name=site.title)
    if site.description:
        fg.subtitle(site.description)
    # feedgen puts entries in the order they were added when order="append".
    feed_language = (ch.language or site.language).lower()
    for item in ch.items:
        fe = fg.add_entry(order="append")
        if item.language.lower() != feed_language:
            set_entry_language(fe, item.language)
        fe.id(atom_id(item.id))
        fe.title(clean_text(item.title))
        fe.link(href=absolute(site, item.link), rel="alternate")
        fe.published(site_time(site, item.published))
        fe.updated(site_time(site, item.updated))
        if item.summary.strip():
            fe.summary(clean_text(item.summary), type="html")
        if item.content.strip():
            fe.content(clean_text(item.content), type="html")
        elif not item.summary.strip():
            # The validator warns about an entry with neither summary nor content.
            fe.summary(clean_text(item.title), type="text")
        for term, label in _item_tags(site, item):
            fe.category(term=term, label=label)
        _add_media(site, fe, item, atom=True)
    return _serialise(site, f, fg.atom_str)


def render_rss(site: _Site, ch: Channel, f: FeedFile) -> bytes:
    fg = _feed_generator(site, ch, f)
    fg.description(site.description or f"The latest items of {ch.title}")
    for item in ch.items:
        fe = fg.add_entry(order="append")
        link = absolute(site, item.link)
        guid = clean_text(item.id)
        fe.guid(guid, permalink=guid == link and link.startswith(("http://", "https://")))
        fe.title(clean_text(item.title))
        fe.link(href=link)
        fe.pubDate(site_time(site, item.published))
        if item.summary.strip():
            fe.description(clean_text(item.summary))
        if item.content.strip():
            fe.content(clean_text(item.content))
        for term, label in _item_tags(site, item):
            fe.category(term=term, label=label)
        _add_media(site, fe, item, atom=False)
    return _serialise(site, f, fg.rss_str)


def _serialise(site: _Site, f: FeedFile, to_string: Callable[..., bytes]) -> bytes:
    try:
        data = to_string(pretty=True, encoding="UTF-8", xml_declaration=True)
    except ValueError as e:  # feedgen's missing fields and lxml's refused characters
        raise PublisherError(f"cannot build {f.path}: {e}") from e
    return with_stylesheet(data, site.stylesheet)


# -- JSON Feed ----------------------------------------------------------------------


def render_json(site: _Site, ch: Channel, f: FeedFile) -> bytes:
    """JSON Feed 1.1. Archive pages chain through ``next_url`` towards the oldest page
    (the subscription document's ``next_url`` is the newest page), newest item first
    within each page, as JSON Feed pagination reads."""
    links = dict(f.links)
    items = list(reversed(ch.items)) if f.archive else ch.items
    feed: dict[str, Any] = {
        "version": JSON_FEED_VERSION,
        "title": ch.title,
        "home_page_url": site.root,
        "feed_url": links.get("current", f.url),
        "language": ch.language or site.language,
        "authors": [{"name": site.title}],
        "items": [_json_item(site, item) for item in items],
    }
    if site.description:
        feed["description"] = site.description
    if "prev-archive" in links:
        feed["next_url"] = links["prev-archive"]
    hubs = [{"type": "WebSub", "url": href} for rel, href in f.links if rel == "hub"]
    if hubs:
        feed["hubs"] = hubs
    return (json.dumps(feed, ensure_ascii=False, sort_keys=True, indent=2) + "\n").encode("utf-8")


def _json_item(site: _Site, item: Item) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": item.id,
        "url": absolute(site, item.link),
        "title": clean_text(item.title),
        # JSON Feed requires content_html or content_text: fall back to the summary.
        "content_html": clean_text(item.content or item.summary),
        "date_published": rfc3339(item.published),
        "date_modified": rfc3339(item.updated),
        "language": item.language,
        "tags": [label for _, label in _item_tags(site, item)],
    }
    summary = _summary_text(item.summary)  # JSON Feed's summary is text
    if summary:
        entry["summary"] = summary
    if item.image:
        entry["image"] = absolute(site, item.image)
    if item.enclosure_url and item.enclosure_type:
        attachment: dict[str, Any] = {
            "url": absolute(site, item.enclosure_url),
            "mime_type": item.enclosure_type,
        }
        if item.enclosure_length:
            attachment["size_in_bytes"] = item.enclosure_length
        entry["attachments"] = [attachment]
    return entry


@lru_cache(maxsize=4096)
def _summary_text(summary: str) -> str:
    """The text of a summary, remembered: an item is in up to four JSON documents (its
    feeds' subscription documents and newest archive pages) that a long-running daemon
    renders again at each new item, and parsing the HTML is most of a JSON item's cost."""
    return clean_text(html_to_text(summary))


RENDERERS: dict[str, Callable[[_Site, Channel, FeedFile], bytes]] = {
    "atom": render_atom,
    "rss": render_rss,
    "json": render_json,
}


# -- OPML ---------------------------------------------------------------------------


def render_opml(site: _Site, channels: Sequence[Channel]) -> bytes:
    """One outline per channel, pointing at its preferred format.

    No dateCreated/dateModified: they would change the file on every new item while the
    list of feeds it describes stays the same.
    """
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = f"{site.title}: feeds"
    body = ET.SubElement(root, "body")
    for ch in channels:
        if not ch.files:
            continue
        f = _preferred(ch.files)
        attributes = {"text": ch.title, "title": ch.title, "type": "rss", "xmlUrl": f.url}
        language = ch.language or site.language
        ET.SubElement(body, "outline", {**attributes, "htmlUrl": site.root, "language": language})
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="UTF-8", xml_declaration=True)
    return data + b"\n"


def _preferred(files: Sequence[FeedFile]) -> FeedFile:
    by_format = {f.format.name: f for f in files}
    return next(by_format[name] for name in _OPML_PREFERENCE if name in by_format)


# -- index.html ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _IndexEntry:
    title: str
    url: str
    published: datetime
    date_iso: str  # the date in the site's time zone, for <time datetime>
    summary: Markup


def render_index(settings: Settings, site: _Site, channels: Sequence[Channel]) -> bytes:
    """The site's page: each category's newest items and every feed (with ``hreflang``
    for a language's feeds, listed under the feeds of every language)."""
    per_language = [ch for ch in channels if ch.language]
    main = [ch for ch in channels if not ch.language]

    def language_feeds(slug: str) -> list[dict[str, Any]]:
        return [
            {"language": ch.language, "name": language_name(ch.language), "feeds": ch.files}
            for ch in per_language
            if ch.slug == slug
        ]

    sections = [
        {
            "slug": ch.slug,
            "title": ch.name,
            "feeds": ch.files,
            "language_feeds": language_feeds(ch.slug),
            "items": [_index_entry(site, i) for i in ch.items[:INDEX_ITEMS]],
        }
        for ch in main[1:]
    ]
    context = {
        "site": site,
        "all_feeds": main[0].files,
        "all_language_feeds": language_feeds("all"),
        "sections": sections,
        "feeds": [f for ch in channels for f in ch.files],
        "opml_url": f"{site.root}feeds.opml",
        # The archive of sent issues (publisher.archive) exists when a list is public.
        "archive_url": f"{site.root}archive/" if any(lst.public for lst in settings.lists) else "",
        # The sign-up box: the lists the web offers (none: no box).
        "signup_lists": [{"slug": lst.slug, "name": lst.name} for lst in settings.lists if lst.public],
        "signup_url": f"{site.root}subscribe",
        "t": translator(normalise_language(settings.site.language)),
    }
    return render_template(make_environment(settings), INDEX_TEMPLATE, context).encode("utf-8")


def render_stylesheet(settings: Settings) -> bytes:
    """feed.xsl: the page a browser shows for an RSS or Atom file, in the site language."""
    language = normalise_language(settings.site.language)
    context = {"t": translator(language), "language": language}
    return render_template(make_environment(settings), STYLESHEET_TEMPLATE, context).encode("utf-8")


def _index_entry(site: _Site, item: Item) -> _IndexEntry:
    return _IndexEntry(
        title=clean_text(item.title),
        url=absolute(site, item.link),
        published=item.published,
        date_iso=item.published.astimezone(site.timezone).date().isoformat(),
        # The summary is sanitised by ingest; clean it again because it is inserted as HTML.
        summary=Markup(nh3.clean(clean_text(item.summary))),
    )


# -- writing ------------------------------------------------------------------------


def write_if_changed(path: Path, data: bytes) -> bool:
    """Atomically replace ``path`` with ``data`` unless it already holds those bytes."""
    if _same_bytes(path, data):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # No fsync: a file lost or truncated by a crash differs from what the next build
        # renders, so that build writes it again; fsync would triple a rebuild's time.
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        # mkstemp creates 0600 files; the web server may run as another user.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise PublisherError(f"cannot write {path}: {e.strerror or e}") from e
    return True


def _same_bytes(path: Path, data: bytes) -> bool:
    try:
        if path.stat().st_size != len(data):
            return False
        return path.read_bytes() == data
    except FileNotFoundError:
        return False
    except OSError as e:
        raise PublisherError(f"cannot read {path}: {e.strerror or e}") from e


def _stat_key(path: Path | str) -> list[int]:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return [-1, -1]
    return [st.st_size, st.st_mtime_ns]


def _load_state(out: Path) -> dict[str, Any]:
    """The previous build's fingerprints; anything unreadable just means "render all"."""
    try:
        state = json.loads((out / STATE_FILE).read_bytes())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _save_state(out: Path, state: dict[str, Any]) -> None:
    # No indent: json's C encoder only runs without it, and a state of thousands of
    # archive pages is written on every build.
    write_if_changed(out / STATE_FILE, json.dumps(state, sort_keys=True, separators=(",", ":")).encode())
