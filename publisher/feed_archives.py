"""RFC 5005 archived feeds: which items go on which archive page, and what each links to.

A feed's items, oldest first, are cut into pages of ``[feeds] archive_page_size``:
page 1 holds the oldest items. Only the items the subscription document does not hold
(all but the newest ``max_items``) are archived, so the subscription document and its
archive pages together hold every item exactly once. Because pages are counted from
the oldest item, a new item only ever lands on the newest page: a full page keeps its
bytes for ever, except that the newest full page gains its ``next-archive`` link when
the page after it starts, and an edited or withdrawn item rewrites its page (a
withdrawn one, or one published with a date older than archived items, shifts the
items of the pages after it; readers de-duplicate by id, RFC 5005 section 4.2).

This module only plans: it reads no file and renders nothing (``publisher.feeds``
renders the pages it plans), so planning 100k items costs a few string joins.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter

from publisher.models import KEY_CATEGORY, KEY_HASH, KEY_ID, KEY_LANGUAGE, ItemKey

_id = itemgetter(KEY_ID)
_hash = itemgetter(KEY_HASH)

#: Where archive pages live under the output folder: feeds/archive/{name}/{n}{suffix}.
ARCHIVE_DIR = "feeds/archive"


@dataclass(frozen=True, slots=True)
class ArchivePage:
    """One archive page of one feed: its number, the ids it holds (oldest first)."""

    name: str  # the feed's name as in feeds/{name}.*: "all", "news", "fr/all"
    number: int  # 1 is the oldest page
    keys: Sequence[ItemKey]  # oldest first
    has_next: bool  # whether a newer archive page exists (it gets next-archive)
    fingerprint: str  # changes exactly when the page's bytes may change

    @property
    def ids(self) -> list[str]:
        """The page's item ids, oldest first (only a page to render needs them)."""
        return list(map(_id, self.keys))


def matches_language(item_language: str, language: str) -> bool:
    """Whether an item (lower-cased tag) belongs to a language feed: 'fr' takes 'fr-ch'."""
    return item_language == language or item_language.startswith(language + "-")


def split_history(
    history: Sequence[ItemKey], categories: Sequence[str], languages: Sequence[str]
) -> dict[tuple[str | None, str | None], Sequence[ItemKey]]:
    """The keys of every feed, oldest first, in one pass over ``history`` (oldest first).

    Keyed by (category slug or None for all items, language or None for every
    language); one pass per language, because a build at 100k items cannot afford one
    per feed.
    """
    feeds: dict[tuple[str | None, str | None], Sequence[ItemKey]] = {}
    for lang in [None, *languages]:
        keys = (
            history
            if lang is None
            else [k for k in history if matches_language(k[KEY_LANGUAGE].lower(), lang)]
        )
        by_category: dict[str | None, list[ItemKey]] = {cat: [] for cat in categories}
        for key in keys:
            found = by_category.get(key[KEY_CATEGORY])
            if found is not None:
                found.append(key)
        feeds[None, lang] = keys
        for cat in categories:
            feeds[cat, lang] = by_category[cat]
    return feeds


def newest_ids(keys: Sequence[ItemKey], max_items: int) -> list[str]:
    """The subscription document's items, newest first."""
    return [k[KEY_ID] for k in reversed(keys[-max_items:])] if max_items else []


def archive_pages(name: str, keys: Sequence[ItemKey], max_items: int, page_size: int) -> list[ArchivePage]:
    """The archive pages of a feed whose items, oldest first, are ``keys``."""
    archived = keys[: max(0, len(keys) - max_items)]
    total = -(-len(archived) // page_size)
    pages: list[ArchivePage] = []
    for index in range(total):
        chunk = archived[index * page_size : (index + 1) * page_size]
        has_next = index + 1 < total
        # The category too: a config change can move an item (same content hash) to
        # another category, which the all-items pages show.
        categories = "\n".join([k[KEY_CATEGORY] or "" for k in chunk])
        body = "\n".join(map(_id, chunk)) + "\0" + "\n".join(map(_hash, chunk)) + "\0" + categories
        # 96 bits: enough to tell versions of one page apart, short in the state file.
        digest = hashlib.blake2b(
            f"{name}\0{index + 1}\0{has_next}\n{body}".encode(), digest_size=12
        ).hexdigest()
        pages.append(ArchivePage(name, index + 1, chunk, has_next, digest))
    return pages


def page_path(name: str, number: int, suffix: str) -> str:
    """The page's path under the output folder, e.g. feeds/archive/news/3.atom.xml."""
    return f"{ARCHIVE_DIR}/{name}/{number}{suffix}"
