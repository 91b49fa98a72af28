"""The HTML page a browser gets for an RSS or Atom file, written by the build beside it.

Browsers are removing XSLT (Chromium 156 already shows a banner saying so), so the
``xml-stylesheet`` page of ``feed.xsl`` will stop working and a visitor who clicks a
feed link would see raw XML. So the build also writes, for every RSS and Atom file that
carries the instruction, an HTML page with what the ``feed.xsl`` page shows: what a feed
is, the address to copy into a reader (on an RFC 5005 archive page, the subscription
document's), the items with the day they were published in the site's zone, and the link
to older items. The feed's bytes do not change (the instruction and ``feed.xsl`` stay,
for browsers that still have XSLT and for copies fetched some other way).

The page is made from the feed's own bytes, not from the items: one reader for the
three producers (the feeds, their archive pages and each public list's issue feed),
and the page can only ever show what the feed says. It is rendered from the
overridable template :data:`FEED_PAGE_TEMPLATE` in the site's sandbox, autoescaped;
summaries are not shown (as on the ``feed.xsl`` page), so no HTML from an upstream
reaches it, and bidi embedding, override and isolate characters are taken out of titles
(each title is also a ``<bdi>`` on the page).

Where it lives: :func:`page_path`, ``.feed-pages/{the feed's path}.html`` under the
output folder. A dot folder is never served by its own URL (``publisher run`` and the
nginx site answer 404); the page is only the answer to a browser's navigation to the
feed's URL (``Accept`` names ``text/html`` and no feed type), by
:class:`publisher.web.static.FeedFiles` and deploy/nginx-publisher.conf.
"""

from __future__ import annotations

import email.utils
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from lxml import etree

from publisher import i18n
from publisher.config import Settings
from publisher.errors import PublisherError
from publisher.feed_extensions import ATOM_NS
from publisher.i18n import normalise_language
from publisher.templating import make_environment, render_template, templates_digest, translator
from publisher.text import strip_bidi

FEED_PAGE_TEMPLATE = "web/feed.html.j2"
#: The folder (under the output folder) that mirrors the feeds' paths with their pages.
PAGES_DIR = ".feed-pages"
PAGE_SUFFIX = ".html"
#: The feed files that get a page: those with the ``xml-stylesheet`` instruction.
XML_FEED_SUFFIXES = (".atom.xml", ".rss.xml")

_A = f"{{{ATOM_NS}}}"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*")
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


def page_path(feed_path: str) -> str:
    """The page of the feed at ``feed_path`` (relative to the output folder, or a URL
    path without its leading slash): ``feeds/all.atom.xml`` -> ``.feed-pages/feeds/all.atom.xml.html``."""
    return f"{PAGES_DIR}/{feed_path}{PAGE_SUFFIX}"


def has_page(feed_path: str) -> bool:
    """Whether the feed at ``feed_path`` gets a page (RSS and Atom do, JSON Feed does not)."""
    return feed_path.endswith(XML_FEED_SUFFIXES)


@dataclass(frozen=True, slots=True)
class FeedPageEntry:
    """One item as the page shows it."""

    title: str
    url: str
    day: str  # YYYY-MM-DD in the zone the feed's date was written in (the site's)
    date_iso: str  # ``day`` when it is a YYYY-MM-DD, for <time datetime>; else ""
    language: str = ""  # an Atom entry's xml:lang, when it is not the feed's


@dataclass(frozen=True, slots=True)
class FeedPage:
    """What the page of one feed file shows, read from the feed's bytes."""

    title: str
    url: str  # the feed file's own address (self)
    address: str  # the address to subscribe to: self, or an archive page's current
    archive: bool  # an RFC 5005 archive page (it has a current link)
    home: str  # the site (or list) page the feed belongs to (alternate)
    older: str  # prev-archive, or ""
    media_type: str  # application/atom+xml or application/rss+xml
    language: str  # the feed's language as written in it ("" if none)
    entries: tuple[FeedPageEntry, ...]


def read_feed(data: bytes) -> FeedPage:
    """What the page shows of an Atom or RSS document the build wrote."""
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as e:
        raise PublisherError(f"cannot read the feed to make its page: {e}") from e
    if root.tag == f"{_A}feed":
        return _read_atom(root)
    channel = root.find("channel") if root.tag == "rss" else None
    if channel is None:
        raise PublisherError(f"cannot make a page of a {root.tag!r} document: neither Atom nor RSS")
    return _read_rss(channel)


def _links(parent: etree._Element, tag: str) -> dict[str, str]:
    """rel -> href of the first link of each rel (Atom's default rel is alternate)."""
    found: dict[str, str] = {}
    for link in parent.iterfind(tag):
        found.setdefault(link.get("rel") or "alternate", link.get("href") or "")
    return found


def _read_atom(feed: etree._Element) -> FeedPage:
    links = _links(feed, f"{_A}link")
    entries = []
    for entry in feed.iterfind(f"{_A}entry"):
        when = entry.findtext(f"{_A}published") or entry.findtext(f"{_A}updated") or ""
        day = when.strip()[:10]
        url = _links(entry, f"{_A}link").get("alternate")
        entries.append(_entry(entry.findtext(f"{_A}title"), url, day, entry.get(_XML_LANG, "")))
    return _page(feed.findtext(f"{_A}title"), links, "application/atom+xml", feed.get(_XML_LANG), entries)


def _read_rss(channel: etree._Element) -> FeedPage:
    links = _links(channel, f"{_A}link")
    links["alternate"] = channel.findtext("link") or ""
    entries = [
        _entry(item.findtext("title"), item.findtext("link"), _rss_day(item.findtext("pubDate") or ""))
        for item in channel.iterfind("item")
    ]
    return _page(
        channel.findtext("title"), links, "application/rss+xml", channel.findtext("language"), entries
    )


def _rss_day(date: str) -> str:
    """An RFC 822 date as the YYYY-MM-DD of its own zone (the site's, as the build writes
    it): ``Sat, 02 Mar 2024 00:30:00 +0100`` -> ``2024-03-02``; anything else as it is."""
    parsed = email.utils.parsedate_tz(date)
    if parsed is None:
        return date.strip()
    year, month, day = parsed[:3]
    return f"{year:04d}-{month:02d}-{day:02d}"


def _is_day(day: str) -> bool:
    return len(day) == 10 and day[4] == "-" and day[7] == "-" and (day[:4] + day[5:7] + day[8:]).isdigit()


def _entry(title: str | None, url: str | None, day: str, language: str = "") -> FeedPageEntry:
    language = language.strip() if _LANGUAGE_TAG.fullmatch(language.strip()) else ""
    return FeedPageEntry(_title(title), _web_url(url), day, day if _is_day(day) else "", language)


def _web_url(url: str | None) -> str:
    """``url`` if it is an http(s) URL, else "": ingest accepts no other item link, and a
    ``javascript:`` one must not become a link on a page of the site even so."""
    url = (url or "").strip()
    return url if urlsplit(url).scheme.lower() in ("http", "https") else ""


def _title(text: str | None) -> str:
    return strip_bidi(" ".join((text or "").split()))


def _page(
    title: str | None,
    links: dict[str, str],
    media_type: str,
    language: str | None,
    entries: list[FeedPageEntry],
) -> FeedPage:
    url = _web_url(links.get("self"))
    return FeedPage(
        title=_title(title),
        url=url,
        address=_web_url(links.get("current")) or url,
        archive="current" in links,
        home=_web_url(links.get("alternate")),
        older=_web_url(links.get("prev-archive")),
        media_type=media_type,
        language=(language or "").strip(),
        entries=tuple(entries),
    )


def render_feed_page(settings: Settings, data: bytes) -> bytes:
    """The HTML page of the feed whose bytes are ``data``, in the feed's language (the
    site's when the catalogue does not have it)."""
    feed = read_feed(data)
    language = normalise_language(feed.language, settings.site.language)
    context = {"site": settings.site, "language": language, "t": translator(language), "feed": feed}
    html = render_template(make_environment(settings), FEED_PAGE_TEMPLATE, context)
    return html.encode("utf-8")


def page_version(settings: Settings) -> str:
    """Changes whenever a page may: the template files it is rendered from (an override
    added, edited or removed), the texts and code that fill them, the site's settings.

    With a feed's own fingerprint it tells whether a page on disk is still what the
    build would write (publisher.feeds), so an unchanged feed's page is not read again.
    """
    h = hashlib.sha256()
    h.update(templates_digest(settings, [FEED_PAGE_TEMPLATE]).encode())
    for module in (__file__, i18n.__file__):
        h.update(Path(module).read_bytes())
    h.update(settings.site.model_dump_json().encode())
    return h.hexdigest()[:24]
