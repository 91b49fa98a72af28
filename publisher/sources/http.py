"""Reading a source's bytes from an http(s) URL or a local file, the same way for every kind.

Feeds and listing pages are polled every few minutes, so fetching is polite: a
conditional GET with the validators the store kept from the last run, so an unchanged
page costs the remote server a 304 and us no parsing. Every transport failure becomes
one :class:`SourceError` naming the source and what went wrong, so ingest can report it
and go on with the other sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from publisher.errors import SourceError

USER_AGENT = "publisher/0.1"


@dataclass(slots=True)
class Fetched:
    """The body of a source and the validators to send next time.

    ``url`` is where the body finally came from (after redirects), the base for
    relative links; for a file it is the file's path. ``body`` is ``None`` when the
    server answered 304 Not Modified.
    """

    url: str
    body: bytes | None
    content_type: str = ""
    etag: str | None = None
    last_modified: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.body is None


def is_http_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def fetch(name: str, location: str, state: dict[str, Any], timeout: float) -> Fetched:
    """Read ``location`` (URL or file path); raise SourceError when it cannot be read."""
    if is_http_url(location):
        return _fetch_url(name, location, state, timeout)
    return _read_file(name, location)


def _read_file(name: str, location: str) -> Fetched:
    path = Path(location.removeprefix("file://"))
    try:
        body = path.read_bytes()
    except FileNotFoundError as e:
        raise SourceError(name, f"{path}: no such file") from e
    except OSError as e:
        raise SourceError(name, f"{path}: cannot read: {e.strerror}") from e
    return Fetched(url=str(path), body=body, content_type=_type_from_suffix(path))


def _type_from_suffix(path: Path) -> str:
    return {".json": "application/feed+json", ".html": "text/html", ".htm": "text/html"}.get(
        path.suffix.lower(), ""
    )


def conditional_headers(state: dict[str, Any]) -> dict[str, str]:
    """The If-None-Match / If-Modified-Since headers for the validators kept in ``state``."""
    headers = {"User-Agent": USER_AGENT}
    if state.get("etag"):
        headers["If-None-Match"] = str(state["etag"])
    if state.get("last_modified"):
        headers["If-Modified-Since"] = str(state["last_modified"])
    return headers


def _fetch_url(name: str, url: str, state: dict[str, Any], timeout: float) -> Fetched:
    try:
        response = httpx.get(url, headers=conditional_headers(state), timeout=timeout, follow_redirects=True)
    except httpx.TimeoutException as e:
        raise SourceError(name, f"timed out after {timeout:g} s fetching {url}") from e
    except httpx.HTTPError as e:
        raise SourceError(name, f"cannot fetch {url}: {e or type(e).__name__}") from e
    final_url = str(response.url)
    if response.status_code == 304:
        return Fetched(
            url=final_url,
            body=None,
            etag=response.headers.get("ETag") or state.get("etag"),
            last_modified=response.headers.get("Last-Modified") or state.get("last_modified"),
        )
    if response.status_code >= 400:
        raise SourceError(name, f"HTTP {response.status_code} {response.reason_phrase} from {final_url}")
    return Fetched(
        url=final_url,
        body=response.content,
        content_type=response.headers.get("Content-Type", ""),
        etag=response.headers.get("ETag"),
        last_modified=response.headers.get("Last-Modified"),
    )
