"""Items scraped from a listing page that offers no feed, by CSS selectors from config.

The department's own news page is the case in point: a list of items, each with a
type label, a date, a linked title and a teaser. Selectors live in config.toml so an
admin can follow a redesign without code. A page on which the item selector matches
nothing is refused as a whole (the layout changed; publishing "no news" would be
wrong), while one odd item is reported and skipped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, tzinfo
from urllib.parse import urljoin

from bs4 import BeautifulSoup, Tag

from publisher.config import HtmlSourceConfig
from publisher.dates import newest
from publisher.errors import ItemError, SourceError
from publisher.models import RawItem, SourceResult
from publisher.selectors import split_selector
from publisher.sources.http import Fetched

# "25-28 November 2019" or "06 - 08 February 2019": an event's range starts on its first day.
_DAY_RANGE = re.compile(r"^(\d{1,2})\s*[-–]\s*\d{1,2}(\s+\S.*)$")
_LABEL_PUNCTUATION = " .:|"


def parse_listing(cfg: HtmlSourceConfig, fetched: Fetched, tz: tzinfo) -> SourceResult:
    """Every element matching ``cfg.item`` becomes one RawItem (or one ItemError).

    Only the ``max_items_per_run`` newest elements (by their date, read in ``tz`` when
    it has no zone) are built: building an item costs several selector matches, so on a
    page of 100k items this is most of the work saved.
    """
    soup = BeautifulSoup(fetched.body or b"", "lxml")
    elements = soup.select(cfg.item)  # every selector was compiled when the config was read
    if not elements:
        raise SourceError(
            cfg.name, f"item selector {cfg.item!r} matched nothing on {fetched.url}; has the page changed?"
        )
    result = SourceResult()
    # A page read from a file has no web address of its own: links resolve against
    # ``base_url`` when the admin gives one (where the page is really published).
    page_url = cfg.base_url or fetched.url
    kept: Sequence[int] = range(len(elements))
    if len(elements) > cfg.max_items_per_run:
        dates = [_date_or_none(cfg, page_url, element) for element in elements]
        kept = newest(dates, cfg.max_items_per_run, tz)
        result.left_out = len(elements) - len(kept)
    for index in kept:
        try:
            result.items.append(_element_item(cfg, page_url, index + 1, elements[index]))
        except ItemError as e:
            result.errors.append(e)
    return result


def _date_or_none(cfg: HtmlSourceConfig, page_url: str, element: Tag) -> datetime | str | None:
    """The element's date for ranking; an unreadable one ranks last (and is rejected later)."""
    _remove_excluded(cfg, element)
    try:
        return _date(cfg, page_url, select_value(cfg, element, cfg.date))
    except ItemError:
        return None


def _remove_excluded(cfg: HtmlSourceConfig, element: Tag) -> None:
    """Drop the ``exclude`` matches ("Read more" links, share buttons) from the item."""
    for selector in cfg.exclude:
        for found in element.select(selector):
            found.decompose()


def _element_item(cfg: HtmlSourceConfig, page_url: str, position: int, element: Tag) -> RawItem:
    origin = f"{page_url}#{position}"
    _remove_excluded(cfg, element)
    link = select_value(cfg, element, cfg.link)
    image = select_value(cfg, element, cfg.image) if cfg.image else None
    picture = _find(element, split_selector(cfg.image)[0]) if cfg.image else None
    label = select_value(cfg, element, cfg.category) if cfg.category else None
    return RawItem(
        source=cfg.name,
        origin=origin,
        title=select_value(cfg, element, cfg.title),
        link=urljoin(page_url, link) if link else None,
        published=_date(cfg, origin, select_value(cfg, element, cfg.date)),
        label=_clean_label(label) or cfg.default_category,
        summary=select_html(cfg, element, cfg.summary) if cfg.summary else None,
        language=cfg.language,
        image=urljoin(page_url, image) if image else None,
        # The picture's own alt text and size, when the image selector names an <img>.
        image_alt=_attribute(picture, "alt") if image else None,
        image_width=_attribute(picture, "width") if image else None,
        image_height=_attribute(picture, "height") if image else None,
    )


def _attribute(found: Tag | None, name: str) -> str | None:
    if found is None:
        return None
    value = found.get(name)
    text = " ".join(value) if isinstance(value, list) else (value or "")
    return text.strip() or None


def _find(element: Tag, selector: str) -> Tag | None:
    """The first match inside ``element``; an empty selector means the element itself."""
    if not selector.strip():
        return element
    return element.select_one(selector)


def select_value(cfg: HtmlSourceConfig, element: Tag, spec: str) -> str | None:
    """Text of ``selector``, or an attribute with ``selector@attribute``; None when absent."""
    selector, attribute = split_selector(spec)
    found = _find(element, selector)
    if found is None:
        return None
    if attribute is None:
        value = " ".join(found.get_text(" ").split())
    else:
        raw = found.get(attribute)
        value = " ".join(raw) if isinstance(raw, list) else (raw or "")
        value = value.strip()
    return value or None


def select_html(cfg: HtmlSourceConfig, element: Tag, selector: str) -> str | None:
    """Inner HTML of the match, so a teaser keeps its links (ingest sanitises it)."""
    found = _find(element, selector)
    if found is None:
        return None
    inner = found.decode_contents().strip()
    return inner or None


def _clean_label(label: str | None) -> str | None:
    """'Press release ' and 'Conference paper.' are the labels 'Press release', 'Conference paper'."""
    if label is None:
        return None
    return label.strip(_LABEL_PUNCTUATION) or None


def _date(cfg: HtmlSourceConfig, origin: str, text: str | None) -> datetime | str | None:
    """Apply ``date_format`` here; without one, ingest reads the text as ISO 8601."""
    if text is None or cfg.date_format is None:
        return text
    for candidate in (text, _DAY_RANGE.sub(r"\1\2", text)):
        try:
            return datetime.strptime(candidate, cfg.date_format)
        except ValueError:
            continue
    example = datetime(2020, 7, 15).strftime(cfg.date_format)
    raise ItemError(
        origin, f"date {text!r} does not match date_format {cfg.date_format!r} (e.g. {example!r})"
    )
