"""Serving public/: feed media types, ETag, Last-Modified and 304s; the archive's languages.

Starlette's StaticFiles already answers conditional requests from the file's size and
mtime; since ``build`` rewrites a file only when its bytes change, those validators
stay true and feed readers polling every few minutes get cheap 304s. We add the feed
media types that ``mimetypes`` does not know for our double extensions.

The archive (``/archive/``, a public route) is written once per catalogue language:
``index.html`` in the site language and ``index.fr.html``... beside it. A folder URL
there is answered in the visitor's ``Accept-Language`` when the folder has that
language's file, with ``Vary: Accept-Language`` (so caches keep one copy per language)
and ``Content-Location`` naming the file. A file URL (``index.fr.html``, the switcher's
links) is the visitor's explicit choice and is served as it is, whatever the header.
A language file's ETag also covers its name: siblings written in the same clock tick
with the same size would otherwise share one, and a cache could then revalidate one
language's copy with another's.

A browser opening an RSS or Atom link should see a page, not raw XML. A request whose
``Accept`` names ``text/html`` and neither feed type (a browser's navigation) gets the
HTML page the build wrote for that feed (:mod:`publisher.feed_pages`, in the dot folder
``.feed-pages/``, which is never served by its own URL) as ``text/html``, with its own
ETag and Last-Modified (the ETag also names it, so a cache never revalidates one with
the other's). Feed readers, which name the feed types or send ``*/*``, get the feed's
bytes and media type. ``Vary: Accept`` keeps caches from mixing the two. When the page
is missing (an output folder built by an older version) the browser gets the feed's
bytes as ``application/xml`` instead, so it can apply the feed's ``xml-stylesheet``
(``feed.xsl``) while browsers still have XSLT: browsers apply one only to documents
served as XML and show ``application/atom+xml`` as raw text.

Files take GET and HEAD only: another method gets 405 with ``Allow: GET, HEAD`` when the
path has a file (or a folder page), else 404. The app serves public/ as its router's
default, so a route's own path never comes here (publisher.web.app).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Callable, Sequence

import anyio.to_thread
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, Response
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import Scope

from publisher.web.languages import accepted_language

FEED_MEDIA_TYPES = {
    ".rss.xml": "application/rss+xml; charset=utf-8",
    ".atom.xml": "application/atom+xml; charset=utf-8",
    ".json": "application/feed+json; charset=utf-8",
    ".opml": "text/x-opml; charset=utf-8",
    ".xsl": "application/xml; charset=utf-8",  # feed.xsl: browsers need an XML type
    ".html": "text/html; charset=utf-8",
}
#: The folder whose folder URLs are answered by Accept-Language (the archive's route).
NEGOTIATED_FOLDER = "archive"
_LANGUAGE_FILE = re.compile(r"index\.[a-z]{2,3}\.html")


_XML_FEEDS = (".rss.xml", ".atom.xml")
_FEED_TYPES = ("application/atom+xml", "application/rss+xml")


def media_type_for(path: str) -> str | None:
    for suffix, media_type in FEED_MEDIA_TYPES.items():
        if path.endswith(suffix):
            return media_type
    return None


class FeedFiles(StaticFiles):
    """StaticFiles with feed media types, a short cache lifetime for readers, and the
    archive's folder URLs answered in the visitor's language.

    ``languages`` are the languages pages are offered in and ``site_language`` the one
    written as ``index.html`` (``Publisher.page_languages`` and ``page_language()``).
    ``feed_page`` maps a feed file's path to its HTML page's, or None
    (``Publisher.feed_page_path``); without it browsers get feeds as XML.
    Dot files (the build's state and lock files, the feeds' pages) are not served by
    their own URL.
    """

    def __init__(
        self,
        *,
        directory: str | os.PathLike[str],
        html: bool = False,
        check_dir: bool = True,
        languages: Sequence[str] = (),
        site_language: str = "",
        feed_page: Callable[[str], str | None] | None = None,
    ) -> None:
        super().__init__(directory=directory, html=html, check_dir=check_dir)
        self.languages = tuple(languages)
        self.site_language = site_language
        self.feed_page = feed_page

    async def get_response(self, path: str, scope: Scope) -> Response:
        if any(part.startswith(".") and part != "." for part in path.split(os.sep)):
            raise HTTPException(status_code=404)
        if scope["method"] not in ("GET", "HEAD"):
            # Files take GET and HEAD only; a path with no file is not found, whatever the method.
            if not await self._exists(path):
                raise HTTPException(status_code=404)
            raise HTTPException(status_code=405, headers={"Allow": "GET, HEAD"})
        if self._negotiated(path, scope):
            response = await self._language_response(path, scope)
            if response is not None:
                return response
        if self.feed_page is not None and path.endswith(_XML_FEEDS) and _is_browser(scope):
            response = await self._feed_page_response(path, scope)
            if response is not None:
                return response
        return await super().get_response(path, scope)

    async def _feed_page_response(self, path: str, scope: Scope) -> Response | None:
        """The HTML page of the feed at ``path``; None when the feed or its page is
        missing (then the feed itself is answered, or 404, as usual)."""
        assert self.feed_page is not None
        page = self.feed_page(path.replace(os.sep, "/"))
        if page is None:
            return None
        try:
            _feed_path, feed = await anyio.to_thread.run_sync(self.lookup_path, path)
            full_path, found = await anyio.to_thread.run_sync(self.lookup_path, page)
        except (OSError, ValueError):  # a name too long, a NUL byte: no such file
            return None
        if feed is None or found is None or not stat.S_ISREG(feed.st_mode) or not stat.S_ISREG(found.st_mode):
            return None
        return self.file_response(full_path, found, scope, feed_page=True)

    async def _exists(self, path: str) -> bool:
        """Whether a GET of ``path`` would find a file (a folder: its ``index.html``)."""
        try:
            _full, found = await anyio.to_thread.run_sync(self.lookup_path, path)
            if found is not None and stat.S_ISDIR(found.st_mode) and self.html:
                _full, found = await anyio.to_thread.run_sync(
                    self.lookup_path, os.path.join(path, "index.html")
                )
        except (OSError, ValueError):  # a name too long, a NUL byte: no such file
            return False
        return found is not None and stat.S_ISREG(found.st_mode)

    def _negotiated(self, path: str, scope: Scope) -> bool:
        """A folder URL (with its slash) under the archive: its page depends on the language."""
        under = path == NEGOTIATED_FOLDER or path.startswith(NEGOTIATED_FOLDER + os.sep)
        return under and str(scope["path"]).endswith("/")

    async def _language_response(self, path: str, scope: Scope) -> Response | None:
        """The folder's page in the visitor's language, else the site language's; None when
        the folder has no page (StaticFiles then answers 404 as usual)."""
        header = Headers(scope=scope).get("accept-language", "")
        wanted = accepted_language(header, self.languages)
        names = ["index.html"]
        if wanted and wanted != self.site_language:
            names.insert(0, f"index.{wanted}.html")
        for name in names:
            full_path, stat_result = await anyio.to_thread.run_sync(
                self.lookup_path, os.path.join(path, name)
            )
            if stat_result is not None and stat.S_ISREG(stat_result.st_mode):
                return self.file_response(full_path, stat_result, scope, negotiated=name)
        return None

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
        *,
        negotiated: str | None = None,
        feed_page: bool = False,
    ) -> Response:
        """The file with our headers; ``negotiated``: the file chosen by Accept-Language;
        ``feed_page``: the file is a feed's HTML page, answered at the feed's URL."""
        response = FileResponse(full_path, status_code=status_code, stat_result=stat_result)
        media_type = media_type_for(str(full_path))
        if feed_page:
            response.headers["vary"] = "Accept"
            response.headers["etag"] = _named_etag(stat_result, "feed-page")
        elif str(full_path).endswith(_XML_FEEDS):
            response.headers["vary"] = "Accept"
            if _is_browser(scope):
                media_type = "application/xml; charset=utf-8"
        if media_type and response.status_code != 304:
            response.headers["content-type"] = media_type
        response.headers.setdefault("cache-control", "public, max-age=300")
        name = os.path.basename(full_path)
        if _LANGUAGE_FILE.fullmatch(name):
            response.headers["etag"] = _named_etag(stat_result, name)
        if negotiated is not None:
            response.headers["vary"] = "Accept-Language"
            response.headers["content-location"] = negotiated
        if self.is_not_modified(response.headers, Headers(scope=scope)):
            return NotModifiedResponse(response.headers)
        return response


def _named_etag(stat_result: os.stat_result, name: str) -> str:
    """StaticFiles' ETag (size and mtime) with a name in it: two files answered at one URL
    (a feed and its page) or written in one clock tick with one size (language siblings)
    never share one, so a cache cannot revalidate one's copy with the other's."""
    base = f"{stat_result.st_mtime}-{stat_result.st_size}-{name}"
    return f'"{hashlib.md5(base.encode(), usedforsecurity=False).hexdigest()}"'


def _is_browser(scope: Scope) -> bool:
    """Whether the request is a browser's navigation (wants HTML, names no feed type)."""
    accept = b",".join(v for k, v in scope.get("headers", []) if k == b"accept").decode("latin-1").lower()
    return "text/html" in accept and not any(t in accept for t in _FEED_TYPES)
