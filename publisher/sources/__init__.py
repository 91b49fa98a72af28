"""Where items come from: one module per kind of source, one entry point for ingest.

Ingest must not care whether items were read from Markdown files, a feed or a
scraped page, so every kind answers the same call with the same
:class:`~publisher.models.SourceResult`. A whole source failing raises
:class:`~publisher.errors.SourceError`; one bad item is an
:class:`~publisher.errors.ItemError` in ``SourceResult.errors`` and the rest still count.
"""

from __future__ import annotations

from typing import Any

from publisher.config import (
    DirectorySourceConfig,
    FeedSourceConfig,
    HtmlSourceConfig,
    Settings,
)
from publisher.errors import ItemError, SourceError
from publisher.models import SourceResult
from publisher.sources.directory import read_directory
from publisher.sources.feed import parse_feed
from publisher.sources.html import parse_listing
from publisher.sources.http import Fetched, fetch

__all__ = ["ItemError", "SourceError", "fetch_source"]

AnySourceConfig = DirectorySourceConfig | FeedSourceConfig | HtmlSourceConfig


def fetch_source(cfg: AnySourceConfig, state: dict[str, Any], settings: Settings) -> SourceResult:
    """Read one source; ``state`` holds the validators of its last fetch (etag, last_modified)."""
    if isinstance(cfg, DirectorySourceConfig):
        return read_directory(cfg)
    fetched = fetch(cfg.name, cfg.url, state, cfg.timeout)
    if fetched.not_modified:
        return _with_validators(SourceResult(not_modified=True), fetched)
    if isinstance(cfg, FeedSourceConfig):
        result = parse_feed(cfg, fetched, settings)
    else:
        result = parse_listing(cfg, fetched)
    return _with_validators(result, fetched)


def _with_validators(result: SourceResult, fetched: Fetched) -> SourceResult:
    result.etag = fetched.etag
    result.last_modified = fetched.last_modified
    return result
