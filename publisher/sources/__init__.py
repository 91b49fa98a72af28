"""Where items come from: one module per kind of source, one entry point for ingest.

Ingest must not care whether items were read from Markdown files, a feed or a
scraped page, so every kind answers the same call with the same
:class:`~publisher.models.SourceResult`. A whole source failing raises
:class:`~publisher.errors.SourceError`; one bad item is an
:class:`~publisher.errors.ItemError` in ``SourceResult.errors`` and the rest still count.
"""

from __future__ import annotations

from datetime import tzinfo

from publisher.config import (
    DirectorySourceConfig,
    FeedSourceConfig,
    HtmlSourceConfig,
    Settings,
)
from publisher.dates import newest
from publisher.errors import ItemError, SourceError
from publisher.models import SourceResult, SourceState
from publisher.sources.directory import read_directory
from publisher.sources.feed import parse_feed
from publisher.sources.html import parse_listing
from publisher.sources.http import Fetched, Limits, StopCheck, fetch

__all__ = ["ItemError", "SourceError", "fetch_source"]

AnySourceConfig = DirectorySourceConfig | FeedSourceConfig | HtmlSourceConfig


def fetch_source(
    cfg: AnySourceConfig,
    state: SourceState,
    settings: Settings,
    should_stop: StopCheck | None = None,
) -> SourceResult:
    """Read one source; ``state`` holds the validators of its last fetch (etag, last_modified).

    At most ``cfg.max_items_per_run`` items are returned, the newest; ``left_out``
    counts the others. ``should_stop`` is polled while a URL is fetched: when it answers
    True the fetch is given up with a SourceError.

    Whatever goes wrong while reading is this source's failure, never the run's: bodies
    come from outside, and feedparser, lxml, BeautifulSoup, json and YAML each have their
    own ways to fail on hostile input (json.loads raises RecursionError on a document
    nested 100k deep). This is the one place that turns any of them into a SourceError.
    """
    where = str(cfg.path) if isinstance(cfg, DirectorySourceConfig) else cfg.url
    try:
        result = _read(cfg, state, settings, should_stop)
    except SourceError:
        raise
    except RecursionError as e:
        raise SourceError(cfg.name, f"{where} is nested too deeply to be read") from e
    except Exception as e:
        raise SourceError(cfg.name, f"{where} could not be read: {type(e).__name__}: {e}") from e
    return _capped(result, cfg.max_items_per_run, settings.site.tz)


def _read(
    cfg: AnySourceConfig, state: SourceState, settings: Settings, should_stop: StopCheck | None
) -> SourceResult:
    if isinstance(cfg, DirectorySourceConfig):
        return read_directory(cfg)
    limits = Limits(cfg.timeout, cfg.max_bytes, tuple(cfg.follow_redirects_to))
    fetched = fetch(cfg.name, cfg.url, state, limits, should_stop)
    if fetched.not_modified:
        return _with_validators(SourceResult(not_modified=True), fetched)
    if isinstance(cfg, FeedSourceConfig):
        result = parse_feed(cfg, fetched, settings)
    else:
        result = parse_listing(cfg, fetched, settings.site.tz)
    return _with_validators(result, fetched)


def _capped(result: SourceResult, limit: int, tz: tzinfo) -> SourceResult:
    """Keep the ``limit`` newest items (by the source's own date), in source order."""
    keep = newest([raw.published or raw.updated for raw in result.items], limit, tz)
    if len(keep) < len(result.items):
        result.left_out += len(result.items) - len(keep)
        result.items = [result.items[i] for i in keep]
    return result


def _with_validators(result: SourceResult, fetched: Fetched) -> SourceResult:
    result.etag = fetched.etag
    result.last_modified = fetched.last_modified
    return result
