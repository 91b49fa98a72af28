"""What feedgen cannot write by itself: extra links, RFC 5005 markers, entry languages.

feedgen keeps one ``atom:link`` in RSS (the ``self`` one) and makes the RSS channel's
``<link>`` the last link added, whatever its rel, so WebSub ``hub`` links and RFC 5005
``current``/``prev-archive``/``next-archive`` links cannot go through ``fg.link``. This
feedgen extension adds them as ``atom:link`` elements itself, in Atom and RSS alike,
together with ``<fh:archive/>`` on archive pages and ``xml:lang`` on Atom entries whose
language is not the feed's. The ``xml-stylesheet`` processing instruction, which must
precede the root element, is added to the serialised bytes by :func:`with_stylesheet`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from lxml import etree

ATOM_NS = "http://www.w3.org/2005/Atom"
HISTORY_NS = "http://purl.org/syndication/history/1.0"  # RFC 5005
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
EXTENSION = "history"

#: (rel, href) of one extra feed-level link.
Link = tuple[str, str]


class HistoryExtension(BaseExtension):  # type: ignore[misc]
    """Feed-level links beyond self/alternate, and the archive marker."""

    def __init__(self) -> None:
        self.links: list[Link] = []
        self.archive = False

    def extend_ns(self) -> dict[str, str]:
        return {"fh": HISTORY_NS} if self.archive else {}

    def _add(self, parent: Any, after: Any | None, link_tag: str) -> None:
        """Add the marker and links right after ``after`` (the last link feedgen wrote).

        SubElement, not a free element: it takes the parent's namespace prefixes, so RSS
        gets ``<atom:link>`` instead of ``<ns0:link>``. feedgen writes Atom's own elements
        without a namespace under a default ``xmlns``, so Atom links are written the same
        way (``link_tag`` "link").
        """
        position = list(parent).index(after) + 1 if after is not None else len(parent)
        new: list[Any] = []
        if self.archive:
            new.append(etree.SubElement(parent, f"{{{HISTORY_NS}}}archive"))
        for rel, href in self.links:
            new.append(etree.SubElement(parent, link_tag, rel=rel, href=href))
        for offset, element in enumerate(new):
            parent.insert(position + offset, element)  # moves it from the end

    def extend_atom(self, feed: Any) -> Any:
        links = feed.findall("link")
        self._add(feed, links[-1] if links else None, "link")
        return feed

    def extend_rss(self, feed: Any) -> Any:
        channel = feed.find("channel")
        links = channel.findall(f"{{{ATOM_NS}}}link")
        self._add(channel, links[-1] if links else channel.find("link"), f"{{{ATOM_NS}}}link")
        return feed


class HistoryEntryExtension(BaseEntryExtension):  # type: ignore[misc]
    """``xml:lang`` on an Atom entry written in another language than its feed."""

    def __init__(self) -> None:
        self.language = ""

    def extend_atom(self, entry: Any) -> Any:
        if self.language:
            entry.attrib[XML_LANG] = self.language
        return entry


def extend(fg: FeedGenerator, links: Sequence[Link], *, archive: bool) -> None:
    """Register the extension on ``fg`` (before entries are added) with its links."""
    fg.register_extension(EXTENSION, HistoryExtension, HistoryEntryExtension)
    ext: HistoryExtension = getattr(fg, EXTENSION)
    ext.links = list(links)
    ext.archive = archive


def set_entry_language(entry: Any, language: str) -> None:
    """Mark an entry's language (Atom only; RSS has no per-item language)."""
    getattr(entry, EXTENSION).language = language


def with_stylesheet(xml: bytes, href: str) -> bytes:
    """Insert ``<?xml-stylesheet?>`` after the XML declaration, so browsers show a page.

    Readers ignore the instruction; it must come before the root element, which lxml's
    serialiser of a single element cannot do.
    """
    declaration, newline, rest = xml.partition(b"\n")
    if not declaration.startswith(b"<?xml ") or not newline:
        raise ValueError("feed without an XML declaration")
    quoted = href.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    pi = f'<?xml-stylesheet type="text/xsl" href="{quoted}"?>'.encode()
    return declaration + b"\n" + pi + b"\n" + rest
