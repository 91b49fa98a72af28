"""Items from another site's feed: RSS, Atom (via feedparser) or JSON Feed.

feedparser copes with the malformed feeds found in the wild, so a feed is refused
only when it is broken *and* yields nothing. It does not read JSON Feed, which is
plain JSON with a documented shape (https://jsonfeed.org/version/1.1), so that is
read here with :mod:`json`.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from time import struct_time
from typing import Any
from urllib.parse import urljoin

import feedparser

from publisher.config import FeedSourceConfig, Settings
from publisher.errors import ItemError, SourceError
from publisher.models import RawItem, SourceResult
from publisher.sources.http import Fetched
from publisher.text import html_to_text

_JSON_FEED_VERSION = "https://jsonfeed.org/version/1"


def parse_feed(cfg: FeedSourceConfig, fetched: Fetched, settings: Settings) -> SourceResult:
    """Turn the fetched bytes into RawItems, whichever of the three formats they are."""
    body = fetched.body or b""
    if _looks_like_json(fetched.content_type, body):
        return parse_json_feed(cfg, fetched.url, body, settings)
    return parse_xml_feed(cfg, fetched.url, body, settings)


def _looks_like_json(content_type: str, body: bytes) -> bool:
    return "json" in content_type.lower() or body.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")


# -- RSS and Atom -------------------------------------------------------------------


def parse_xml_feed(cfg: FeedSourceConfig, url: str, body: bytes, settings: Settings) -> SourceResult:
    headers = {"content-location": url} if url.startswith(("http://", "https://")) else {}
    parsed = feedparser.parse(body, response_headers=headers)
    if parsed.bozo and not parsed.entries:
        raise SourceError(cfg.name, f"{url} is not a readable RSS or Atom feed: {parsed.bozo_exception}")
    language = parsed.feed.get("language") or None
    result = SourceResult()
    for position, entry in enumerate(parsed.entries, 1):
        result.items.append(_entry_item(cfg, url, position, entry, language, settings))
    return result


def _entry_item(
    cfg: FeedSourceConfig, url: str, position: int, entry: Any, language: str | None, settings: Settings
) -> RawItem:
    content = entry.get("content") or []
    summary = entry.get("summary")
    body = content[0].get("value") if content else None
    if body is not None and body == summary:
        summary = None  # RSS puts <description> in both; let ingest derive a summary
    item = RawItem(
        source=cfg.name,
        origin=f"{url}#{position}",
        id=entry.get("id") or None,
        title=_entry_title(entry),
        link=entry.get("link"),
        published=_feed_date(entry, "published"),
        updated=_feed_date(entry, "updated"),
        label=pick_label((t.get("term") for t in entry.get("tags") or []), settings) or cfg.category,
        summary=summary,
        content=body,
        language=entry.get("language") or language,
    )
    _entry_media(entry, item)
    return item


_MARKUP_TYPES = ("text/html", "application/xhtml+xml")


def _entry_title(entry: Any) -> str | None:
    """The title as plain text, which is what an item's title is everywhere after this.

    RSS titles in CDATA and Atom ``type="html"``/``"xhtml"`` titles are markup
    (feedparser says ``text/html`` or ``application/xhtml+xml``): kept as they are,
    ``It&#8217;s Q&amp;A time`` would be escaped again by every output and show its
    entities, and ``<b>`` would show as text. Plain-text titles are left untouched.
    """
    title = entry.get("title")
    detail = entry.get("title_detail") or {}
    if title and detail.get("type") in _MARKUP_TYPES:
        return html_to_text(str(title))
    return None if title is None else str(title)


def _feed_date(entry: Any, key: str) -> datetime | str | None:
    """feedparser gives a UTC struct_time when it understood the date, else keep the text.

    ``dict.get`` reads what the entry really has: feedparser's own lookup answers
    ``updated`` with ``published`` when absent, which would invent an edit date.
    A date near year 1 or 9999 can land outside what ``datetime`` holds once in UTC
    (9999-12-31T23:00-05:00 is year 10000): then the text is kept, and ingest rejects
    that one entry with its reason instead of the whole feed failing.

    feedparser reads a date written without a zone as UTC; ours are read in the
    site's zone (as JSON Feed and Markdown dates are). That is only detectable for ISO
    8601 text (``2025-01-06 10:00:00``): ``fromisoformat`` answers a naive datetime
    exactly when no zone was written, so those are handed over naive. An RFC 822 date
    without a zone is not understood by feedparser and already reaches ingest as text.
    """
    raw = dict.get(entry, key)
    if raw and (local := _without_zone(str(raw))) is not None:
        return local
    parsed: struct_time | None = dict.get(entry, f"{key}_parsed")
    if parsed is not None:
        try:
            return datetime(*parsed[:6], tzinfo=UTC)
        except (ValueError, OverflowError):
            pass
    return str(raw) if raw else None


def _without_zone(text: str) -> datetime | None:
    """The ISO 8601 date or date-time ``text`` when it has no zone, else None."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return value if value.tzinfo is None else None


def _entry_media(entry: Any, item: RawItem) -> None:
    """The picture (media:thumbnail, else an image media:content or enclosure) and the
    first enclosure (or media:content) that is not an image, as feedparser read them."""
    contents = [c for c in entry.get("media_content") or [] if c.get("url")]
    enclosures = [e for e in entry.get("enclosures") or [] if e.get("href")]
    thumbnails = [t for t in entry.get("media_thumbnail") or [] if t.get("url")]
    images = [c for c in contents if _is_image(c.get("type"), c.get("medium"))]
    if thumbnails:
        picture = thumbnails[0]
        item.image = str(picture["url"])
    elif images:
        picture = images[0]
        item.image = str(picture["url"])
    elif image_links := [e for e in enclosures if _is_image(e.get("type"), None)]:
        picture = {}
        item.image = str(image_links[0]["href"])
    else:
        picture = {}
    item.image_width, item.image_height = picture.get("width"), picture.get("height")
    for enclosure in enclosures:
        if not _is_image(enclosure.get("type"), None):
            item.enclosure_url = str(enclosure["href"])
            item.enclosure_type = enclosure.get("type") or None
            item.enclosure_length = enclosure.get("length") or None
            return
    for content in contents:
        if not _is_image(content.get("type"), content.get("medium")) and content.get("type"):
            item.enclosure_url = str(content["url"])
            item.enclosure_type = content.get("type")
            item.enclosure_length = content.get("filesize") or content.get("fileSize") or None
            return


def _is_image(media_type: Any, medium: Any) -> bool:
    return str(media_type or "").lower().startswith("image/") or medium == "image"


def pick_label(terms: Iterable[str | None], settings: Settings) -> str | None:
    """The first tag that names a configured category, else the first tag at all."""
    found = [t.strip() for t in terms if t and t.strip()]
    for term in found:
        if settings.category_for_label(term):
            return term
    return found[0] if found else None


# -- JSON Feed ----------------------------------------------------------------------


def parse_json_feed(cfg: FeedSourceConfig, url: str, body: bytes, settings: Settings) -> SourceResult:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise SourceError(cfg.name, f"{url} is not valid JSON: {e}") from e
    if not isinstance(doc, dict) or not str(doc.get("version", "")).startswith(_JSON_FEED_VERSION):
        raise SourceError(
            cfg.name, f"{url} is JSON but not a JSON Feed (no 'version': '{_JSON_FEED_VERSION}.1')"
        )
    entries = doc.get("items")
    if not isinstance(entries, list):
        raise SourceError(cfg.name, f"{url}: JSON Feed has no 'items' list")
    base = url if url.startswith(("http://", "https://")) else str(doc.get("home_page_url") or "")
    language = doc.get("language") if isinstance(doc.get("language"), str) else None
    result = SourceResult()
    for position, entry in enumerate(entries, 1):
        origin = f"{url}#{position}"
        if not isinstance(entry, dict):
            result.errors.append(ItemError(origin, "a JSON Feed item must be an object"))
            continue
        result.items.append(_json_item(cfg, origin, base, entry, language, settings))
    return result


def _json_item(
    cfg: FeedSourceConfig,
    origin: str,
    base: str,
    entry: dict[str, Any],
    language: str | None,
    settings: Settings,
) -> RawItem:
    link = _str(entry.get("url")) or _str(entry.get("external_url"))
    tags = entry.get("tags")
    if not isinstance(tags, list):
        tags = []
    content = _str(entry.get("content_html"))
    if content is None and (text := _str(entry.get("content_text"))) is not None:
        content = "".join(f"<p>{html.escape(p)}</p>" for p in text.split("\n\n") if p.strip())
    return RawItem(
        source=cfg.name,
        origin=origin,
        id=_str(entry.get("id")),
        title=_str(entry.get("title")),
        link=urljoin(base, link) if link and base else link,
        published=_str(entry.get("date_published")),
        updated=_str(entry.get("date_modified")),
        label=pick_label((_str(t) for t in tags), settings) or cfg.category,
        summary=_str(entry.get("summary")),
        content=content,
        language=_str(entry.get("language")) or language,
        image=_str(entry.get("image")) or _str(entry.get("banner_image")),
        **_json_attachment(entry),
    )


def _json_attachment(entry: dict[str, Any]) -> dict[str, Any]:
    """The first attachment with a URL as the enclosure (JSON Feed's ``attachments``)."""
    attachments = entry.get("attachments")
    if not isinstance(attachments, list):
        return {}
    for attachment in attachments:
        if isinstance(attachment, dict) and _str(attachment.get("url")):
            size = attachment.get("size_in_bytes")
            return {
                "enclosure_url": _str(attachment.get("url")),
                "enclosure_type": _str(attachment.get("mime_type")),
                "enclosure_length": size
                if isinstance(size, int) and not isinstance(size, bool)
                else _str(size),
            }
    return {}


def _str(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)
