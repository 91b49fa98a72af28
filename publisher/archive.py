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

and the HTML page a browser gets for each list's feed (:mod:`publisher.feed_pages`),
``.feed-pages/archive/{list}/feed.atom.xml.html``, which belongs to the archive's build
like ``archive/`` itself: deleted with its feed when the list is no longer archived.

Every page exists once per catalogue language (:data:`publisher.i18n.LANGUAGES`): the
site language's is ``index.html`` (so the folder URL and every link ever mailed keep
working) and each other language's is a sibling file, ``index.fr.html``,
``index.es.html``. Sibling files rather than ``fr/`` folders, because a folder name
could collide with a list slug or an issue. An issue page in another language is the
same stored items and send time through the list's template in that language, with the
subject rendered for that language (the stored subject is the site language's). Each
page carries ``<html lang>``, a switcher of plain links to its siblings and
``<link rel="alternate" hreflang>``; its links to other archive pages name the file of
its own language, so a visitor's explicit choice sticks while browsing, while the folder
URLs (the entry points, the Atom feed's ids) are negotiated by ``Accept-Language`` in the
web app (:class:`publisher.web.static.FeedFiles`).

Only public lists (``[[lists]] public``) are archived, and only issues that reached at
least one reader. The ``archive/`` folder belongs to the build: any file the current
build did not write there (a list made private or removed, a page that no longer
exists) is deleted, so a private list's pages cannot linger on the web.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from feedgen.feed import FeedGenerator

import publisher
from publisher.config import ListConfig, Settings
from publisher.errors import PublisherError
from publisher.feed_extensions import with_stylesheet
from publisher.feed_pages import PAGES_DIR, page_path, render_feed_page
from publisher.feeds import (
    EMPTY_FEED_UPDATED,
    GENERATOR,
    PAGE_TEMPLATES,
    BuildReport,
    stylesheet_path,
    write_if_changed,
)
from publisher.i18n import LANGUAGE_NAMES, LANGUAGES, normalise_language
from publisher.messages import LanguageLink, render_subject, render_web_copy
from publisher.models import Item
from publisher.periods import period_label
from publisher.signups import public_lists
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
#: Beside archive/ (so archive/ holds only pages): for each issue page written, the
#: fingerprint of what it was rendered from and its subject, so a rebuild renders only
#: the pages whose inputs changed.
STATE_FILE = ".archive-state.json"


def build_templates(settings: Settings) -> list[str]:
    """Every template a build renders: the feeds' pages (index.html, feed.xsl, each
    feed's HTML page), the archive's index and list pages, and each public list's
    ``html_template``, whose output is the list's issue pages. Text templates, a private
    list's templates and the confirmation mail only shape mail: editing them needs no
    rebuild."""
    lists = [lst.html_template for lst in public_lists(settings)]
    return [*PAGE_TEMPLATES, INDEX_TEMPLATE, LIST_TEMPLATE, *dict.fromkeys(lists)]


def issue_slug(period_key: str) -> str:
    """The issue's folder name: its period key with every character but letters, digits
    and '-' made '-' (``2026-11-30T08:00:00Z`` -> ``2026-11-30T08-00-00Z``; an extra
    issue ``...#extra-1`` -> ``...-extra-1``). Stable across rebuilds and stores, unlike
    a row id, and readable in a link."""
    return _UNSAFE.sub("-", period_key).strip("-")


def archive_root(settings: Settings) -> str:
    return f"{settings.site.base_url}/{ARCHIVE_DIR}/"


def archive_languages(settings: Settings) -> list[str]:
    """The languages every archive page is written in: the site's first, then the others."""
    site = site_language(settings)
    return [site, *(language for language in LANGUAGES if language != site)]


def site_language(settings: Settings) -> str:
    """The catalogue language of ``index.html`` (English when the site's is not offered)."""
    return normalise_language(settings.site.language, settings.site.language)


def page_file(settings: Settings, language: str) -> str:
    """A page's file in its folder: ``index.html`` for the site language, else ``index.fr.html``."""
    language = normalise_language(language, settings.site.language)
    return "index.html" if language == site_language(settings) else f"index.{language}.html"


def issue_url(settings: Settings, list_cfg: ListConfig, period_key: str, language: str | None = None) -> str:
    """The issue's archive page; empty for a private list (no page).

    With ``language`` (the reader's, for "view in browser"): that language's file, so the
    page matches the mail whatever the browser asks for. Without: the folder URL, which
    the web app answers in the visitor's ``Accept-Language`` (the Atom feed's ids).
    """
    if not list_cfg.public:
        return ""
    folder = f"{archive_root(settings)}{list_cfg.slug}/{issue_slug(period_key)}/"
    return folder if language is None else folder + page_file(settings, language)


def language_links(settings: Settings, folder_url: str, current: str) -> list[LanguageLink]:
    """A page's siblings in every archive language, for its switcher and hreflang links."""
    return [
        LanguageLink(
            code, LANGUAGE_NAMES.get(code, code), folder_url + page_file(settings, code), code == current
        )
        for code in archive_languages(settings)
    ]


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
    """Write the archive of every public list in every language; delete what it no longer holds."""
    out = settings.feeds.output_dir / ARCHIVE_DIR
    report = BuildReport()
    keep: set[Path] = set()
    feed_pages: set[Path] = set()  # under .feed-pages/archive/, not archive/

    def emit(path: Path, data: bytes, kept: set[Path] = keep) -> None:
        kept.add(path)
        (report.written if write_if_changed(path, data) else report.unchanged).append(path)

    env = make_environment(settings)
    languages = archive_languages(settings)
    root = archive_root(settings)
    counts: dict[str, int] = {}
    cache = _PageCache(out, settings)
    for list_cfg in public_lists(settings):
        issues = store.issues.sent_issues(list_cfg.slug)
        counts[list_cfg.slug] = len(issues)
        base = f"{root}{list_cfg.slug}/"
        subjects: dict[str, list[str]] = {language: [] for language in languages}
        for issue in issues:
            folder = out / list_cfg.slug / issue_slug(issue.period_key)
            items = store.items.by_ids(store.issues.shown_item_ids(issue))
            for language in languages:
                path = folder / page_file(settings, language)
                key = cache.key(list_cfg, issue, items, language)
                subject = cache.subject(path, key)
                if subject is None:  # new or changed inputs: render
                    subject, page = _issue_page(settings, list_cfg, issue, items, language, languages[0])
                    emit(path, page)
                    cache.remember(path, key, subject)
                else:  # the file on disk is what these inputs render to
                    keep.add(path)
                    report.unchanged.append(path)
                subjects[language].append(subject)
        pages = max(1, math.ceil(len(issues) / PAGE_SIZE))
        for language in languages:
            name = page_file(settings, language)
            common = _common(settings, language, root)
            this_list = ListLink(list_cfg.slug, list_cfg.name, base + name, base + FEED_NAME, len(issues))
            links = [
                _issue_link(settings, list_cfg, issue, subject, language)
                for issue, subject in zip(issues, subjects[language], strict=True)
            ]
            for number in range(1, pages + 1):
                page_url = _page_url(base, number)
                context = {
                    **common,
                    "page_languages": language_links(settings, page_url, language),
                    "page_default_url": page_url,
                    "list": this_list,
                    "issues": links[(number - 1) * PAGE_SIZE : number * PAGE_SIZE],
                    "page": number,
                    "pages": pages,
                    "newer": _Page(number - 1, _page_url(base, number - 1) + name) if number > 1 else None,
                    "older": _Page(number + 1, _page_url(base, number + 1) + name)
                    if number < pages
                    else None,
                }
                folder = out / list_cfg.slug if number == 1 else out / list_cfg.slug / "page" / str(number)
                emit(folder / name, render_template(env, LIST_TEMPLATE, context).encode("utf-8"))
        feed_links = [
            _issue_link(settings, list_cfg, issue, subject, None)
            for issue, subject in zip(issues[:PAGE_SIZE], subjects[languages[0]], strict=False)
        ]
        feed = render_issue_feed(settings, list_cfg, feed_links)
        emit(out / list_cfg.slug / FEED_NAME, feed)
        feed_page = page_path(f"{ARCHIVE_DIR}/{list_cfg.slug}/{FEED_NAME}")
        emit(settings.feeds.output_dir / feed_page, render_feed_page(settings, feed), feed_pages)
    for language in languages:
        name = page_file(settings, language)
        lists = [
            ListLink(
                lst.slug,
                lst.name,
                f"{root}{lst.slug}/{name}",
                f"{root}{lst.slug}/{FEED_NAME}",
                counts[lst.slug],
            )
            for lst in public_lists(settings)
        ]
        context = {
            **_common(settings, language, root),
            "page_languages": language_links(settings, root, language),
            "page_default_url": root,
            "lists": lists,
        }
        emit(out / name, render_template(env, INDEX_TEMPLATE, context).encode("utf-8"))
    _remove_stale(out, keep)
    _remove_stale(settings.feeds.output_dir / PAGES_DIR / ARCHIVE_DIR, feed_pages)
    cache.save(keep)
    return report


class _PageCache:
    """Which issue pages a rebuild can leave as they are, and their subjects.

    Why: every build (each ingest that finds something, each send to a public list)
    rewrites the archive, and rendering an issue page (its template, CSS inlined) costs
    about 20 ms in each language, so the archive's cost grew with every issue sent. A
    page is rendered again only when its fingerprint changes: the issue (items with
    their content hashes, subject, send time, omitted count), the language, the list's
    config, and once per build everything else a page depends on: the whole settings,
    the template files (the override folder's and the built-in ones, by size and mtime)
    and the code that renders (the package version and its top-level modules' mtimes).

    The state also records each file's size, mtime and inode as they were after this
    build wrote or checked it, and a page is kept only while its file still has them:
    a build interrupted after rewriting pages but before saving the state (killed, or
    an error further on), a file truncated by a crash (pages are not fsynced) or
    edited by hand would otherwise be taken for what the old state's inputs render to,
    and a stale page would stay on the web. A page whose file is missing is rendered
    whatever the state says.
    """

    def __init__(self, out: Path, settings: Settings) -> None:
        self.path = out.parent / STATE_FILE
        self.out = out
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
            self.state: dict[str, list[str]] = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            self.state = {}
        self.new_state: dict[str, list[str]] = {}
        self.context = _context_fingerprint(settings)

    def key(self, list_cfg: ListConfig, issue: IssueRow, items: list[Item], language: str) -> str:
        data = [
            self.context,
            list_cfg.model_dump(mode="json"),
            issue.period_key,
            issue.subject,
            issue.created.isoformat(),
            issue.omitted,
            [[i.id, i.content_hash, i.updated.isoformat()] for i in items],
            language,
        ]
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()

    def subject(self, path: Path, key: str) -> str | None:
        """The page's subject if ``path`` holds what ``key`` renders to, else None."""
        entry = self.state.get(self._name(path))
        if isinstance(entry, list) and len(entry) == 3 and entry[0] == key and entry[2] == _file_id(path):
            self.new_state[self._name(path)] = entry
            return str(entry[1])
        return None

    def remember(self, path: Path, key: str, subject: str) -> None:
        """Record that ``path``, as it is on disk now, is what ``key`` renders to."""
        self.new_state[self._name(path)] = [key, subject, _file_id(path)]

    def save(self, keep: set[Path]) -> None:
        kept = {self._name(p) for p in keep}
        state = {name: entry for name, entry in sorted(self.new_state.items()) if name in kept}
        if state != self.state:
            write_if_changed(self.path, json.dumps(state, indent=0, sort_keys=True).encode("utf-8"))

    def _name(self, path: Path) -> str:
        return path.relative_to(self.out).as_posix()


def _file_id(path: Path) -> str:
    """Size, mtime and inode of ``path`` ("" when it is missing): changed by any rewrite,
    since :func:`write_if_changed` replaces a file by renaming a new one over it."""
    try:
        st = path.stat()
    except OSError:
        return ""
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"


def _context_fingerprint(settings: Settings) -> str:
    """What every archive page depends on beyond its issue (see :class:`_PageCache`)."""
    files: list[list[object]] = []
    folders = [Path(__file__).resolve().parent / "templates"]
    if settings.templates.path is not None:
        folders.insert(0, Path(settings.templates.path))
    for folder in folders:
        if folder.is_dir():
            for file in sorted(folder.rglob("*")):
                if file.is_file():
                    st = file.stat()
                    files.append([str(file), st.st_size, st.st_mtime_ns])
    # Every top-level module, not a list of the ones that render today: a page also
    # depends on periods.py (its date), text.py, config.py's defaults..., and a list
    # would go stale silently. About 60 stats a build.
    code = [[m.name, m.stat().st_mtime_ns] for m in sorted(Path(publisher.__file__).parent.glob("*.py"))]
    try:
        version = importlib.metadata.version("publisher")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout without installing
        version = ""
    data = [settings.model_dump_json(), files, code, version]
    return hashlib.sha256(json.dumps(data, default=str).encode()).hexdigest()


def _common(settings: Settings, language: str, root: str) -> dict[str, object]:
    """What every archive page of one language gets: the site, the language, its texts."""
    return {
        "site": settings.site,
        "language": language,
        "t": translator(language),
        "archive_url": root + page_file(settings, language),
    }


def _page_url(base: str, number: int) -> str:
    """The folder of page ``number`` of a list's archive (page 1 is the list's folder)."""
    return base if number == 1 else f"{base}page/{number}/"


def _issue_link(
    settings: Settings, list_cfg: ListConfig, issue: IssueRow, subject: str, language: str | None
) -> IssueLink:
    """An issue as a list page (``language``) or the Atom feed (None: the folder URL) shows it."""
    return IssueLink(
        subject=subject,
        url=issue_url(settings, list_cfg, issue.period_key, language),
        sent=issue.created,
        date_iso=issue.created.astimezone(settings.site.tz).date().isoformat(),
        label=period_label(settings, issue.created, language or site_language(settings)),
    )


def _issue_page(
    settings: Settings,
    list_cfg: ListConfig,
    issue: IssueRow,
    items: list[Item],
    language: str,
    site_language: str,
) -> tuple[str, bytes]:
    """The issue as its mail showed it (the same items, template and date), for nobody,
    in ``language``: (subject, page). In the site language the subject is the stored
    one; in the others it is rendered as their mail rendered it."""
    folder_url = issue_url(settings, list_cfg, issue.period_key)
    label = period_label(settings, issue.created, language)
    subject = issue.subject
    if language != site_language:
        subject = render_subject(
            settings,
            list_cfg,
            items,
            language=language,
            now=issue.created,
            period_label=label,
            more_items=issue.omitted,
        )
    html = render_web_copy(
        settings,
        list_cfg,
        items,
        subject=subject,
        period_label=label,
        now=issue.created,
        more_items=issue.omitted,
        language=language,
        page_languages=language_links(settings, folder_url, language),
        page_default_url=folder_url,
    )
    return subject, html.encode("utf-8")


def render_issue_feed(settings: Settings, list_cfg: ListConfig, links: list[IssueLink]) -> bytes:
    """Atom of the newest issues; ids are the pages' URLs and times the send times, so the
    bytes only change when an issue is added. Like every feed, it names ``feed.xsl``
    (written by the feeds' build), so a browser shows a page rather than raw XML, and its
    dates are in the site's zone so that page shows the site's day."""
    zone = settings.site.tz
    base = f"{archive_root(settings)}{list_cfg.slug}/"
    fg = FeedGenerator()
    fg.id(base + FEED_NAME)
    fg.title(xml_safe(f"{settings.site.title}: {list_cfg.name}"))
    fg.link(href=base + FEED_NAME, rel="self", type="application/atom+xml")
    fg.link(href=base, rel="alternate", type="text/html")
    fg.author(name=xml_safe(settings.site.title))
    fg.language(settings.site.language)
    fg.updated(max((link.sent for link in links), default=EMPTY_FEED_UPDATED).astimezone(zone))
    fg.generator(GENERATOR)
    for link in links:
        fe = fg.add_entry(order="append")
        fe.id(link.url)
        fe.title(xml_safe(link.subject))
        fe.link(href=link.url, rel="alternate", type="text/html")
        fe.published(link.sent.astimezone(zone))
        fe.updated(link.sent.astimezone(zone))
        fe.summary(xml_safe(f"{list_cfg.name}, {link.label}"), type="text")
    try:
        data: bytes = fg.atom_str(pretty=True, encoding="UTF-8", xml_declaration=True)
    except ValueError as e:  # lxml's refused characters
        raise PublisherError(f"cannot build {ARCHIVE_DIR}/{list_cfg.slug}/{FEED_NAME}: {e}") from e
    return with_stylesheet(data, stylesheet_path(settings))


def _remove_stale(out: Path, keep: set[Path]) -> None:
    """Delete files under ``out`` (archive/, or the archive's part of .feed-pages/) this
    build did not write, then the folders left empty."""
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
