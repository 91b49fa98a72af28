"""Serving public/: feed media types, ETag, Last-Modified and 304s.

Starlette's StaticFiles already answers conditional requests from the file's size and
mtime; since ``build`` rewrites a file only when its bytes change, those validators
stay true and feed readers polling every few minutes get cheap 304s. We only add the
feed media types that ``mimetypes`` does not know for our double extensions.

A browser opening an RSS or Atom link should see the page ``feed.xsl`` makes of it, but
browsers apply an ``xml-stylesheet`` only to documents served as XML (``application/xml``),
and show ``application/atom+xml`` as raw text. So a request whose ``Accept`` names
``text/html`` and neither feed type (a browser's navigation) gets the same bytes as
``application/xml``; feed readers, which name the feed types or send ``*/*``, get the
feed media type. ``Vary: Accept`` keeps caches from mixing the two.
"""

from __future__ import annotations

import os

from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

FEED_MEDIA_TYPES = {
    ".rss.xml": "application/rss+xml; charset=utf-8",
    ".atom.xml": "application/atom+xml; charset=utf-8",
    ".json": "application/feed+json; charset=utf-8",
    ".opml": "text/x-opml; charset=utf-8",
    ".xsl": "application/xml; charset=utf-8",  # feed.xsl: browsers need an XML type
    ".html": "text/html; charset=utf-8",
}


_XML_FEEDS = (".rss.xml", ".atom.xml")
_FEED_TYPES = ("application/atom+xml", "application/rss+xml")


def media_type_for(path: str) -> str | None:
    for suffix, media_type in FEED_MEDIA_TYPES.items():
        if path.endswith(suffix):
            return media_type
    return None


class FeedFiles(StaticFiles):
    """StaticFiles with feed media types and a short cache lifetime for readers.

    Dot files (the build's state and lock files) are not served.
    """

    async def get_response(self, path: str, scope: Scope) -> Response:
        if any(part.startswith(".") and part != "." for part in path.split(os.sep)):
            raise HTTPException(status_code=404)
        return await super().get_response(path, scope)

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        media_type = media_type_for(str(full_path))
        if str(full_path).endswith(_XML_FEEDS):
            response.headers["vary"] = "Accept"
            if _is_browser(scope):
                media_type = "application/xml; charset=utf-8"
        if media_type and response.status_code != 304:
            response.headers["content-type"] = media_type
        response.headers.setdefault("cache-control", "public, max-age=300")
        return response


def _is_browser(scope: Scope) -> bool:
    """Whether the request is a browser's navigation (wants HTML, names no feed type)."""
    accept = b",".join(v for k, v in scope.get("headers", []) if k == b"accept").decode("latin-1").lower()
    return "text/html" in accept and not any(t in accept for t in _FEED_TYPES)
