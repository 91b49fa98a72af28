"""The web archive of sent issues: static pages and an Atom feed under ``feeds.output_dir``.

Written by ``build`` (and again by ``Publisher.send_digest`` once an issue has reached
a reader), so the web server serves it like the feeds: plain files with ETag,
Last-Modified and 304s, no database read per request. Like the feeds, every file is a
pure function of the store and the settings (no build time anywhere) and is replaced
only when its bytes change, so a rebuild touches nothing and validators stay true.

Layout (``{issue}`` is :func:`issue_slug` of the issue's period key)::

    archive/index.html                  the public lists
    archive/{list}/index.html           the list's sent issues, newest first, PAGE_SIZE a page
    archive/{list}/page/{n}/index.html  the older pages, n >= 2
    archive/{list}/{issue}/index.html   one issue as sent: the mail's HTML, for nobody
    archive/{list}/feed.atom.xml        the newest PAGE_SIZE issues as Atom

Only public lists (``[[lists]] public``) are archived, and only issues that reached at
least one reader. The ``archive/`` folder belongs to the build: any file the current
build did not write there (a list made private or removed, a page that no longer
exists) is deleted, so a private list's pages cannot linger on the web.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from feedgen.feed import FeedGenerator

from publisher.config import ListConfig, Settings
from publisher.errors import PublisherError
from publisher.feeds import EMPTY_FEED_UPDATED, GENERATOR, BuildReport, write_if_changed
from publisher.i18n import normalise_language
from publisher.messages import render_web_copy
from publisher.periods import period_label
from publisher.store import Store
from publisher.store.issues import IssueRow
from publisher.templating import make_environment, render_template, translator
from publisher.text import xml_safe

#: Issues on one page of a list's archive, and entries in its Atom feed.
PAGE_SIZE = 50
ARCHIVE_DIR = "archive"
FEED_NAME = "feed.atom.xml"
INDEX_TEMPLATE = "web/archive_index.html.j2"
LIST_TEMPLATE = "web/archive_list.html.j2"

_UNSAFE = re.compile(r"[^A-Za-z0-9-]+")


def issue_slug(period_key: str) -> str:
    """The issue's folder name: its period key with every character but letters, digits
    and '-' made '-' (``2026-11-30T08:00:00Z`` -> ``2026-11-30T08-00-00Z``; an extra
    issue ``...#extra-1`` -> ``...-extra-1``). Stable across rebuilds and stores, unlike
    a row id, and readable in a link."""
    return _UNSAFE.sub("-", period_key).strip("-")


def archive_root(settings: Settings) -> str:
    return f"{settings.site.base_url}/{ARCHIVE_DIR}/"


def issue_url(settings: Settings, list_cfg: ListConfig, period_key: str) -> str:
    """The issue's archive page, for "view in browser"; empty for a private list (no page)."""
    if not list_cfg.public:
        return ""
    return f"{archive_root(settings)}{list_cfg.slug}/{issue_slug(period_key)}/"


def public_lists(settings: Settings) -> list[ListConfig]:
    return [lst for lst in settings.lists if lst.public]


@dataclass(frozen=True, slots=True)
class IssueLink:
    """One issue as a list page shows it."""

    subject: str
    url: str
    sent: datetime
    date_iso: str  # the send day in the site's zone, for <time datetime>
    label: str  # the send day in the site language


@dataclass(frozen=True, slots=True)
class ListLink:
    """One public list as the archive index shows it."""

    slug: str
    name: str
    url: str
    feed_url: str
    issues: int


@dataclass(frozen=True, slots=True)
class _Page:
    number: int
    url: str


def build_archive(settings: Settings, store: Store) -> BuildReport:
    """Write the archive of every public list; delete what the archive no longer holds."""
    out = settings.feeds.output_dir / ARCHIVE_DIR
    report = BuildReport()
    keep: set[Path] = set()

    def emit(path: Path, data: bytes) -> None:
        keep.add(path)
        (report.written if write_if_changed(path, data) else report.unchanged).append(path)

    env = make_environment(settings)
    language = normalise_language(settings.site.language, settings.site.language)
    common = {
        "site": settings.site,
        "language": settings.site.language,
        "t": translator(language),
        "archive_url": archive_root(settings),
    }
    lists: list[ListLink] = []
    for list_cfg in public_lists(settings):
        issues = store.issues.sent_issues(list_cfg.slug)
        base = f"{archive_root(settings)}{list_cfg.slug}/"
        lists.append(ListLink(list_cfg.slug, list_cfg.name, base, base + FEED_NAME, len(issues)))
        links = [_issue_link(settings, list_cfg, issue) for issue in issues]
        for issue in issues:
            page = _issue_page(settings, store, list_cfg, issue)
            emit(out / list_cfg.slug / issue_slug(issue.period_key) / "index.html", page)
        pages = max(1, math.ceil(len(links) / PAGE_SIZE))
        for number in range(1, pages + 1):
            context = {
                **common,
                "list": lists[-1],
                "issues": links[(number - 1) * PAGE_SIZE : number * PAGE_SIZE],
                "page": number,
                "pages": pages,
                "newer": _page(base, number - 1) if number > 1 else None,
                "older": _page(base, number + 1) if number < pages else None,
            }
            folder = out / list_cfg.slug if number == 1 else out / list_cfg.slug / "page" / str(number)
            emit(folder / "index.html", render_template(env, LIST_TEMPLATE, context).encode("utf-8"))
        emit(out / list_cfg.slug / FEED_NAME, render_issue_feed(settings, list_cfg, links[:PAGE_SIZE]))
    emit(out / "index.html", render_template(env, INDEX_TEMPLATE, {**common, "lists": lists}).encode("utf-8"))
    _remove_stale(out, keep)
    return report


def _page(base: str, number: int) -> _Page:
    return _Page(number, base if number == 1 else f"{base}page/{number}/")


def _issue_link(settings: Settings, list_cfg: ListConfig, issue: IssueRow) -> IssueLink:
    return IssueLink(
        subject=issue.subject,
        url=issue_url(settings, list_cfg, issue.period_key),
        sent=issue.created,
        date_iso=issue.created.astimezone(settings.site.tz).date().isoformat(),
        label=period_label(settings, issue.created, settings.site.language),
    )


def _issue_page(settings: Settings, store: Store, list_cfg: ListConfig, issue: IssueRow) -> bytes:
    """The issue as its mail showed it (the same items, template and date), for nobody."""
    html = render_web_copy(
        settings,
        list_cfg,
        store.items.by_ids(store.issues.shown_item_ids(issue)),
        subject=issue.subject,
        period_label=period_label(settings, issue.created, settings.site.language),
        now=issue.created,
        more_items=issue.omitted,
    )
    return html.encode("utf-8")


def render_issue_feed(settings: Settings, list_cfg: ListConfig, links: list[IssueLink]) -> bytes:
    """Atom of the newest issues; ids are the pages' URLs and times the send times, so the
    bytes only change when an issue is added."""
    base = f"{archive_root(settings)}{list_cfg.slug}/"
    fg = FeedGenerator()
    fg.id(base + FEED_NAME)
    fg.title(xml_safe(f"{settings.site.title}: {list_cfg.name}"))
    fg.link(href=base + FEED_NAME, rel="self", type="application/atom+xml")
    fg.link(href=base, rel="alternate", type="text/html")
    fg.author(name=xml_safe(settings.site.title))
    fg.language(settings.site.language)
    fg.updated(max((link.sent for link in links), default=EMPTY_FEED_UPDATED))
    fg.generator(GENERATOR)
    for link in links:
        fe = fg.add_entry(order="append")
        fe.id(link.url)
        fe.title(xml_safe(link.subject))
        fe.link(href=link.url, rel="alternate", type="text/html")
        fe.published(link.sent)
        fe.updated(link.sent)
        fe.summary(xml_safe(f"{list_cfg.name}, {link.label}"), type="text")
    try:
        data: bytes = fg.atom_str(pretty=True, encoding="UTF-8", xml_declaration=True)
    except ValueError as e:  # lxml's refused characters
        raise PublisherError(f"cannot build {ARCHIVE_DIR}/{list_cfg.slug}/{FEED_NAME}: {e}") from e
    return data


def _remove_stale(out: Path, keep: set[Path]) -> None:
    """Delete files under archive/ this build did not write, then the folders left empty."""
    if not out.is_dir():
        return
    try:
        for path in sorted(out.rglob("*"), reverse=True):  # children before their folders
            if path.is_dir():
                if not any(path.iterdir()):
                    path.rmdir()
            elif path not in keep and not path.name.startswith("."):
                path.unlink()
    except OSError as e:
        raise PublisherError(f"cannot clean {out}: {e.strerror or e}") from e
