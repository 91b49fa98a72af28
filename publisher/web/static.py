"""Serving public/: feed media types, ETag, Last-Modified and 304s.

Starlette's StaticFiles already answers conditional requests from the file's size and
mtime; since ``build`` rewrites a file only when its bytes change, those validators
stay true and feed readers polling every few minutes get cheap 304s. We only add the
feed media types that ``mimetypes`` does not know for our double extensions.
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
    ".html": "text/html; charset=utf-8",
}


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
        if media_type and response.status_code != 304:
            response.headers["content-type"] = media_type
        response.headers.setdefault("cache-control", "public, max-age=300")
        return response
