"""Sources -> cleaned, validated items -> store, sorted into new, changed and unchanged.

Everything that reaches a feed or an email passes through here, so this is where an
item is made safe and complete: sanitised HTML (feeds and mail clients render it),
no XML-invalid characters (feedgen refuses them), aware dates, absolute links, and an
id that survives edits (feed readers and digests key on it). One bad item or one
broken source is reported and the run goes on; the report says exactly what to fix.

An upstream is not trusted with sizes or with what a reader sees: titles and
summaries longer than ``[items]`` ``max_title_length`` / ``max_summary_length`` are
cut at a word with an ellipsis, bidi controls are removed from titles and labels,
and a language that is not a well-formed BCP 47 tag is replaced by the source's (or
site's) language with a warning, since it is written into feeds and pages verbatim.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from urllib.parse import urljoin, urlsplit

import nh3
from bs4 import BeautifulSoup
from markdown_it import MarkdownIt

from publisher.config import DirectorySourceConfig, FeedSourceConfig, HtmlSourceConfig, Settings
from publisher.dates import parse_date
from publisher.errors import ItemError, SourceError
from publisher.media import alt_text, byte_length, media_type, media_url, pixels
from publisher.models import Item, RawItem, SourceResult
from publisher.sources import AnySourceConfig, fetch_source
from publisher.sources.http import StopCheck
from publisher.store import Store
from publisher.store.items import link_key
from publisher.text import canonical_link, cut_at_word, is_language_tag, strip_bidi, xml_safe

_SUMMARY_LIMIT = 500  # characters of a summary taken from the content's first paragraph
_LABEL_MAX_LENGTH = 200  # the store's label column
_LANGUAGE_MAX_LENGTH = 20  # the store's language column
# Dates outside these bounds are typos or placeholders (0001-01-01, 9999-12-31), never
# news: they would sort an item first or last for ever, and near year 1 or 9999 the
# conversion to UTC that storing and hashing need overflows.
EARLIEST_DATE = datetime(1900, 1, 1, tzinfo=UTC)
LATEST_AHEAD = timedelta(days=366)  # how far past the run's time a date may be

ALLOWED_TAGS = nh3.ALLOWED_TAGS - {
    "area", "map", "center", "nav", "header", "footer", "hgroup", "acronym", "strike", "tt",
    "rp", "rt", "rtc", "ruby", "bdo",
}  # fmt: skip
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "a": {"href", "title", "hreflang"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "ol": {"start"},
    "blockquote": {"cite"},
    "q": {"cite"},
    "time": {"datetime"},
    "abbr": {"title"},
}
URL_SCHEMES = {"http", "https", "mailto"}

_markdown = MarkdownIt("commonmark", {"html": True}).enable("table")


# -- the report ---------------------------------------------------------------------


@dataclass(slots=True)
class SourceCounts:
    """What one source contributed to a run."""

    new: int = 0
    changed: int = 0
    unchanged: int = 0
    rejected: int = 0
    left_out: int = 0  # past max_items_per_run
    duplicates: int = 0  # stories an earlier source (config order) already has: stored, not shown
    not_modified: bool = False
    error: str | None = None


@dataclass(slots=True)
class IngestReport:
    """The outcome of one ingest run: ids by fate, and every problem with where to fix it."""

    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    # ids stored but not shown: the same story as an earlier source's item
    duplicates: list[str] = field(default_factory=list)
    rejected: list[ItemError] = field(default_factory=list)
    failed: list[SourceError] = field(default_factory=list)
    warnings: list[ItemError] = field(default_factory=list)
    sources: dict[str, SourceCounts] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # sources not read: a stop was requested

    @property
    def ok(self) -> bool:
        """True when every source was read and every item accepted."""
        return not self.failed and not self.rejected

    @property
    def changed_anything(self) -> bool:
        """True when the store now holds something the feeds do not show yet."""
        return bool(self.new or self.changed)

    @property
    def new_count(self) -> int:
        return len(self.new)

    @property
    def changed_count(self) -> int:
        return len(self.changed)

    @property
    def unchanged_count(self) -> int:
        return len(self.unchanged)

    @property
    def duplicate_count(self) -> int:
        return len(self.duplicates)


# -- the run ------------------------------------------------------------------------


def ingest(
    settings: Settings, store: Store, now: datetime, should_stop: StopCheck | None = None
) -> IngestReport:
    """Read every configured source once and store what is new or changed.

    ``should_stop`` (the daemon's SIGTERM) is asked before each source and while one
    is fetched: once it answers True the fetch in progress is given up and no further
    source is started; those are listed in ``report.skipped``.
    """
    report = IngestReport()
    seen: dict[str, Claim] = {}  # id -> the item that claimed it in this run
    for cfg in settings.sources:
        if should_stop is not None and should_stop():
            report.skipped.append(cfg.name)
            continue
        _ingest_source(cfg, settings, store, now, report, seen, should_stop)
    return report


def _ingest_source(
    cfg: AnySourceConfig,
    settings: Settings,
    store: Store,
    now: datetime,
    report: IngestReport,
    seen: dict[str, Claim],
    should_stop: StopCheck | None,
) -> None:
    counts = report.sources[cfg.name] = SourceCounts()
    try:
        result = fetch_source(cfg, store.sources.get(cfg.name), settings, should_stop)
    except SourceError as e:
        counts.error = e.cause
        report.failed.append(e)
        store.sources.record(cfg.name, now, error=str(e))
        return
    if result.not_modified:
        counts.not_modified = True
        store.sources.record(cfg.name, now, etag=result.etag, last_modified=result.last_modified)
        return
    if result.left_out:
        counts.left_out = result.left_out
        report.warnings.append(_left_out_warning(cfg, result))
    before = len(report.rejected)
    cleaned = _cleaned(cfg, settings, result, report, now)
    # Read once: the ids' owners, the earlier-source check and the new/changed split
    # all compare with it. Both ids an item may have are looked up (see _item_id).
    ids = [c.item.id for c in cleaned]
    stored = {i.id: i for i in store.items.by_ids(ids + [namespaced_id(cfg.name, i) for i in ids])}
    candidates, same_id = _claimed(cfg.name, cleaned, stored, report, seen)
    store.sources.record_rejections(cfg.name, now, [(e.where, e.reason) for e in report.rejected[before:]])
    candidates, held = _held_by_earlier_source(settings, stored, cfg.name, candidates)
    same_id |= held
    new, changed, unchanged = classify(stored, candidates, now)
    if new or changed:
        store.items.save(new, changed, now)
    store.sources.record(
        cfg.name, now, etag=result.etag, last_modified=result.last_modified, item_count=len(candidates)
    )
    # Stored all the same (they are shown again if the earlier source goes), but counted
    # apart: readers will not see them.
    duplicate = duplicate_ids(settings, store, cfg.name, [c.item for c in candidates]) | same_id
    new, changed, unchanged = (
        [i for i in group if i.id not in duplicate] for group in (new, changed, unchanged)
    )
    counts.new, counts.changed, counts.unchanged = len(new), len(changed), len(unchanged)
    counts.duplicates = len(duplicate)
    counts.rejected = len(result.errors) + len(result.items) - len(candidates) - len(same_id)
    report.new += [i.id for i in new]
    report.changed += [i.id for i in changed]
    report.unchanged += [i.id for i in unchanged]
    report.duplicates += sorted(duplicate)


def _earlier_sources(settings: Settings, source: str) -> set[str]:
    names = settings.source_names
    return set(names[: names.index(source)]) if source in names else set()


def _held_by_earlier_source(
    settings: Settings, stored: dict[str, Item], source: str, candidates: list[Candidate]
) -> tuple[list[Candidate], set[str]]:
    """Leave out candidates whose id and story a configured earlier source's stored item has.

    Without an id of their own, two sources' copies of one story get the same id (the
    canonical link); the earlier source's stored copy must not be overwritten by the
    later one, even when the earlier source could not be read this run.
    """
    earlier = _earlier_sources(settings, source)
    if not earlier or not candidates:
        return candidates, set()
    held: set[str] = set()
    kept: list[Candidate] = []
    for cand in candidates:
        old = stored.get(cand.item.id)
        if old is not None and old.source in earlier and link_key(old.link) == link_key(cand.item.link):
            held.add(cand.item.id)
        else:
            kept.append(cand)
    return kept, held


def duplicate_ids(settings: Settings, store: Store, source: str, items: list[Item]) -> set[str]:
    """Ids of ``items`` whose canonical link a source earlier in config order also has.

    Asked after the source's items are saved, of the store: an earlier source that
    failed this run still has its stored items, and they still win.
    """
    earlier = _earlier_sources(settings, source)
    if not earlier or not items:
        return set()
    stories = store.items.story_sources([i.link for i in items])
    return {i.id for i in items if stories.get(link_key(i.link), set()) & earlier}


def _left_out_warning(cfg: AnySourceConfig, result: SourceResult) -> ItemError:
    where = str(cfg.path) if isinstance(cfg, DirectorySourceConfig) else cfg.url
    total = result.left_out + len(result.items) + len(result.errors)
    return ItemError(
        where,
        f"source {cfg.name!r} offered {total} items; only the newest max_items_per_run = "
        f"{cfg.max_items_per_run} were taken and {result.left_out} left out; raise max_items_per_run "
        "of this source to take more",
    )


def _cleaned(
    cfg: AnySourceConfig, settings: Settings, result: SourceResult, report: IngestReport, now: datetime
) -> list[Candidate]:
    """Clean every raw item; rejections and warnings go to the report."""
    report.rejected.extend(result.errors)
    cleaner = ItemCleaner(cfg, settings, now)
    cleaned: list[Candidate] = []
    for raw in result.items:
        try:
            cleaned.append(cleaner.clean(raw))
        except ItemError as e:
            report.rejected.append(e)
    report.warnings.extend(cleaner.warnings)
    return cleaned


def namespaced_id(source: str, item_id: str) -> str:
    """The id an item gets when another source's story already has its own id."""
    return f"{source}:{item_id}"


def _item_id(source: str, item: Item, stored: dict[str, Item], seen: dict[str, Claim]) -> str:
    """The item's own id, unless another source's different story holds it: then namespaced.

    Ids come from upstreams, and two of them may both say ``"id": "1"`` (or one may
    copy another's public guid). The first to be stored keeps the id for good; the
    other source's item becomes ``source:id``, so both stories are published and
    neither can overwrite the other, whether or not the first source was read this run.
    Once stored under the namespaced id, an item keeps it (ids never change: readers
    would show the item again). The same story (same canonical link) keeps the shared
    id: that is one story, shown once (see _held_by_earlier_source).
    """
    own = item.id
    alternative = namespaced_id(source, own)
    mine = stored.get(alternative)
    if mine is not None and mine.source == source:
        return alternative
    story = link_key(item.link)
    old = stored.get(own)
    if old is not None:
        taken = old.source != source and link_key(old.link) != story
    else:
        claim = seen.get(own)
        taken = claim is not None and claim.source != source and claim.link_key != story
    return alternative if taken else own


def _claimed(
    source: str,
    cleaned: list[Candidate],
    stored: dict[str, Item],
    report: IngestReport,
    seen: dict[str, Claim],
) -> tuple[list[Candidate], set[str]]:
    """Give each cleaned item its id (see _item_id) and claim it for this run.

    Also answers the ids an earlier source claimed in this run for the same story
    (same canonical link): duplicates, not errors. The same id twice in one source is
    rejected, and so is a namespaced id that yet another source's story holds.
    """
    accepted: list[Candidate] = []
    duplicates: set[str] = set()
    for cand in cleaned:
        item = cand.item
        item.id = _item_id(source, item, stored, seen)
        story = link_key(item.link)
        first = seen.get(item.id)
        if first is not None:
            if first.source != source and first.link_key == story:
                duplicates.add(item.id)
            else:
                report.rejected.append(
                    ItemError(cand.origin, f"duplicate id {item.id!r}: {first.origin} already uses it")
                )
            continue
        old = stored.get(item.id)
        if old is not None and old.source != source and link_key(old.link) != story:
            report.rejected.append(
                ItemError(
                    cand.origin,
                    f"id {item.id!r} is taken by another story of source {old.source!r} ({old.link}): "
                    "give this item an id of its own",
                )
            )
            continue
        seen[item.id] = Claim(cand.origin, source, story)
        accepted.append(cand)
    return accepted, duplicates


@dataclass(frozen=True, slots=True)
class Claim:
    """Which item took an id first in a run: where it came from, its source and its story."""

    origin: str
    source: str
    link_key: str


# -- new, changed or unchanged ------------------------------------------------------


Sorted = tuple[list[Item], list[Item], list[Item]]  # new, changed, unchanged


@dataclass(slots=True)
class Candidate:
    """A cleaned item plus what the source said about its dates, before comparing."""

    item: Item
    origin: str
    published_given: bool
    source_updated: datetime | None


def classify(stored: dict[str, Item], candidates: list[Candidate], now: datetime) -> Sorted:
    """Split candidates into (new, changed, unchanged) against ``stored`` (id -> stored item)."""
    new: list[Item] = []
    changed: list[Item] = []
    unchanged: list[Item] = []
    for cand in candidates:
        item, old = cand.item, stored.get(cand.item.id)
        if old is not None and not cand.published_given:
            item.published = old.published
        item.content_hash = content_hash(item)
        if old is None:
            item.updated = max(cand.source_updated or item.published, item.published)
            new.append(item)
        elif old.content_hash != item.content_hash:
            given = cand.source_updated
            item.updated = given if given is not None and given != old.updated else now
            changed.append(item)
        elif (old.category, old.source) != (item.category, item.source):
            item.updated = old.updated  # re-mapped by a config change: same content, same date
            changed.append(item)
        else:
            unchanged.append(old)
    return new, changed, unchanged


def content_hash(item: Item) -> str:
    """sha256 over what readers see, so any visible edit (and nothing else) is a change."""
    fields: list[object] = [
        item.title,
        item.summary,
        item.content,
        item.link,
        item.published.astimezone(UTC).isoformat(),
        item.label,
        item.image,
        item.language,
    ]
    # Media fields join the hash only when present, so items stored before they existed
    # keep their hash (and their ``updated``) when nothing a reader sees changed.
    media = [
        item.image_alt,
        item.image_width,
        item.image_height,
        item.enclosure_url,
        item.enclosure_type,
        item.enclosure_length,
    ]
    if any(value is not None for value in media):
        fields += media
    return hashlib.sha256(json.dumps(fields, ensure_ascii=False).encode("utf-8")).hexdigest()


# -- cleaning one item --------------------------------------------------------------


class ItemCleaner:
    """Turns one source's RawItems into Items; collects warnings that do not reject."""

    def __init__(self, cfg: AnySourceConfig, settings: Settings, now: datetime) -> None:
        self.cfg = cfg
        self.settings = settings
        self.latest_date = now + LATEST_AHEAD
        self.tz: tzinfo = settings.site.tz
        self.base = cfg.url if isinstance(cfg, FeedSourceConfig | HtmlSourceConfig) else None
        if self.base is not None and not self.base.startswith(("http://", "https://")):
            self.base = None
        self.warnings: list[ItemError] = []

    def clean(self, raw: RawItem) -> Candidate:
        """Validate and clean ``raw``; raise ItemError saying what is missing and how to fix it."""
        title = strip_bidi(_one_line(raw.title))
        if not title:
            raise ItemError(raw.origin, f"missing title: {self._hint('title')}")
        title = self._cut(raw, "title", title, self.settings.items.max_title_length)
        link = self._link(raw)
        published = self._date(raw, "published", raw.published)
        updated = self._date(raw, "updated", raw.updated)
        first = published or updated
        if first is None:
            raise ItemError(raw.origin, f"missing date: {self._hint('date')}")
        content = self._content(raw, link)
        label = cut_at_word(strip_bidi(_one_line(raw.label)), _LABEL_MAX_LENGTH) or None
        item = Item(
            id=self._stable_id(raw, link),
            source=self.cfg.name,
            title=title,
            link=link,
            published=first,
            updated=updated or first,
            language=self._language(raw),
            summary=self._summary(raw, content, link),
            content=content,
            label=label,
            category=self._category(raw, label),
        )
        for problem in raw.problems:
            self.warnings.append(ItemError(raw.origin, problem))
        self._media(raw, item)
        return Candidate(item, raw.origin, published is not None, updated)

    # - fields -

    def _link(self, raw: RawItem) -> str:
        text = _one_line(raw.link)
        if not text:
            raise ItemError(raw.origin, f"missing link: {self._hint('link')}")
        link = urljoin(self.base, text) if self.base else text
        parts = urlsplit(link)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise ItemError(
                raw.origin, f"link {text!r} is not an absolute http(s) URL: write it as https://host/path"
            )
        return link

    def _date(self, raw: RawItem, name: str, value: datetime | str | None) -> datetime | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        parsed = parse_date(value, self.tz)
        key = "date" if name == "published" else name
        shown = xml_safe(value.isoformat() if isinstance(value, datetime) else str(value))[:100]
        if parsed is None:
            raise ItemError(
                raw.origin,
                f"{key} {shown!r} is not a date I can read: "
                "write ISO 8601, e.g. 2020-07-15 or 2020-07-15T09:30:00+02:00",
            )
        try:
            in_utc = parsed.astimezone(UTC)  # what storing and hashing do; overflows near year 1 or 9999
        except (OverflowError, ValueError):
            in_utc = None
        if in_utc is None or not EARLIEST_DATE <= in_utc <= self.latest_date:
            raise ItemError(
                raw.origin,
                f"{key} {shown!r} is out of range: a date must fall between "
                f"{EARLIEST_DATE:%Y-%m-%d} and {self.latest_date:%Y-%m-%d} (a year after this run); "
                f"correct this item's {key} where it is written, e.g. 2020-07-15",
            )
        return parsed

    def _content(self, raw: RawItem, link: str) -> str:
        text = xml_safe(raw.content or "").strip()
        if not text:
            return ""
        rendered = _markdown.render(text) if raw.content_type == "markdown" else text
        return sanitize(rendered, link).strip()

    def _summary(self, raw: RawItem, content: str, link: str) -> str:
        """Sanitised HTML; over ``max_summary_length`` characters, its text cut and re-escaped.

        Cutting the plain text (and dropping the over-long summary's formatting) rather
        than the HTML means a cut can never leave an unclosed tag or half an entity.
        """
        text = xml_safe(raw.summary or "").strip()
        if not text:
            return first_paragraph(content)
        rendered = _markdown.renderInline(text) if raw.content_type == "markdown" else text
        summary = normalise_space(sanitize(rendered, link))
        limit = self.settings.items.max_summary_length
        if len(summary) <= limit:
            return summary
        plain = " ".join(BeautifulSoup(summary, "html.parser").get_text(" ").split())
        return html.escape(self._cut(raw, "summary", plain, limit), quote=False)

    def _cut(self, raw: RawItem, what: str, text: str, limit: int) -> str:
        """``text`` cut at a word to ``limit`` characters, with a warning when it was cut."""
        cut = cut_at_word(text, limit)
        if cut != text:
            key = f"max_{what}_length"
            self.warnings.append(
                ItemError(
                    raw.origin,
                    f"{what} of {len(text)} characters cut to {len(cut)} "
                    f"(the limit is [items] {key} = {limit} in config.toml)",
                )
            )
        return cut

    def _language(self, raw: RawItem) -> str:
        """The item's language if it is a well-formed BCP 47 tag, else the source's or site's."""
        fallback = self.cfg.language or self.settings.site.language
        value = _one_line(raw.language)
        if not value:
            return fallback
        if is_language_tag(value) and len(value) <= _LANGUAGE_MAX_LENGTH:
            return value
        self.warnings.append(
            ItemError(
                raw.origin,
                f"language {value[:100]!r} is not a language tag such as 'en' or 'fr-CH' "
                f"(BCP 47, at most {_LANGUAGE_MAX_LENGTH} characters): {fallback!r} used instead",
            )
        )
        return fallback

    def _media(self, raw: RawItem, item: Item) -> None:
        """The picture and the enclosure; a bad one is dropped with a warning, the item kept.

        URLs resolve against the item's link (where a reader would meet them), not the
        feed's or page's address: readers and mail clients have only the item.
        """
        if _one_line(raw.image):
            try:
                item.image = media_url(raw.image or "", item.link)
                item.image_alt = alt_text(raw.image_alt)
                item.image_width = pixels(raw.image_width, "width")
                item.image_height = pixels(raw.image_height, "height")
            except ValueError as e:
                self._drop(raw, "image", raw.image, e)
                item.image = item.image_alt = item.image_width = item.image_height = None
        if _one_line(raw.enclosure_url):
            try:
                item.enclosure_url = media_url(raw.enclosure_url or "", item.link)
                if not _one_line(raw.enclosure_type):
                    raise ValueError("it has no type: add one such as 'type: video/mp4'")
                item.enclosure_type = media_type(raw.enclosure_type or "")
                item.enclosure_length = byte_length(raw.enclosure_length)
            except ValueError as e:
                self._drop(raw, "enclosure", raw.enclosure_url, e)
                item.enclosure_url = item.enclosure_type = item.enclosure_length = None

    def _drop(self, raw: RawItem, what: str, value: str | None, problem: ValueError) -> None:
        shown = _one_line(value)[:200]
        self.warnings.append(ItemError(raw.origin, f"{what} {shown!r} dropped, the item is kept: {problem}"))

    def _category(self, raw: RawItem, label: str | None) -> str | None:
        slug = self.settings.category_for_label(label)
        if slug is None:
            what = f"label {label!r} matches no category" if label else "no category label"
            self.warnings.append(
                ItemError(
                    raw.origin,
                    f"{what}: the item is only in the all-items feed; "
                    "add the label to the 'labels' of a [[categories]] table in config.toml",
                )
            )
        return slug

    def _stable_id(self, raw: RawItem, link: str) -> str:
        """The source's own id, else the canonical link (every stored item has one).

        Never derived from the title or date, so editing those keeps the id.
        """
        return _one_line(raw.id) or canonical_link(link)

    def _hint(self, key: str) -> str:
        """How to supply ``key`` for this kind of source."""
        cfg = self.cfg
        if isinstance(cfg, DirectorySourceConfig):
            example = {"title": "My news", "date": "2020-07-15", "link": "https://www.example.org/news/1"}
            return f"add a '{key}:' line to the front matter, e.g. '{key}: {example[key]}'"
        if isinstance(cfg, HtmlSourceConfig):
            selector = {"title": cfg.title, "date": cfg.date, "link": cfg.link}[key]
            return f"selector {selector!r} found nothing in this item; check '{key}' in config.toml"
        element = {"title": "<title>", "date": "<pubDate>/<published>", "link": "<link>"}[key]
        return f"the feed entry has no {element}"


# -- helpers ------------------------------------------------------------------------


def sanitize(fragment: str, base_url: str) -> str:
    """Keep a safe tag set; drop scripts, styles, event handlers and javascript: URLs.

    Relative URLs are resolved against the item's link: feed readers and mail clients
    have no page to resolve them against.
    """
    return nh3.clean(
        fragment,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        url_relative=("rewrite_with_base", base_url),
    )


_SPACE = re.compile(r"\s+")


def normalise_space(fragment: str) -> str:
    """Runs of whitespace (a scraped page's line breaks and indentation) as one space.

    HTML shows them as one space anyway, but feeds' plain-text summaries, digests'
    text parts and readers that show the source do not. Left alone when the fragment
    has a ``<pre>``, whose spacing is its content.
    """
    if "<pre" in fragment.lower():
        return fragment.strip()
    return _SPACE.sub(" ", fragment).strip()


def first_paragraph(content: str) -> str:
    """The first paragraph of sanitised HTML as escaped text: the default summary."""
    if not content:
        return ""
    soup = BeautifulSoup(content, "html.parser")
    block = soup.find("p") or soup
    text = " ".join(block.get_text(" ").split())
    return html.escape(cut_at_word(text, _SUMMARY_LIMIT), quote=False)


def _one_line(text: str | None) -> str:
    """Trimmed single-line text without XML-invalid characters ('' when absent)."""
    if text is None:
        return ""
    return " ".join(xml_safe(str(text)).split())
