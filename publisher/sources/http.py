"""Reading a source's bytes from an http(s) URL or a local file, the same way for every kind.

Feeds and listing pages are polled every few minutes, so fetching is polite: a
conditional GET with the validators the store kept from the last run, so an unchanged
page costs the remote server a 304 and us no parsing. Every transport failure becomes
one :class:`SourceError` naming the source and what went wrong, so ingest can report it
and go on with the other sources.

An upstream is not trusted, so one fetch is bounded in every direction:

* time: one deadline for the whole response (connect, headers and body). httpx's
  timeouts are per socket operation, so a server dripping a byte every few seconds
  would never trip them; the blocking read therefore runs in a daemon thread that the
  caller waits on with the deadline, and abandons (it has a cancel flag checked between
  chunks and its own per-operation timeouts, so it ends by itself). The same wait polls
  ``should_stop``, so SIGTERM does not wait for a stuck upstream.
* size: the *decoded* body is counted while it is inflated, a bounded piece at a time,
  so a small gzip body that inflates to gigabytes stops at ``max_bytes`` with memory
  near the cap.
* place: redirects are followed by hand, at most :data:`MAX_REDIRECTS`, http(s) only,
  and to another origin only when the admin listed it in ``follow_redirects_to``.
  Otherwise a feed we trust by name could send us to ``http://127.0.0.1:5432/`` or a
  cloud metadata address, and we would publish what an internal service answers.
"""

from __future__ import annotations

import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx

from publisher.errors import SourceError
from publisher.models import SourceState

USER_AGENT = "publisher/0.1"
MAX_REDIRECTS = 5
# How often the caller looks at the deadline and the stop flag while a fetch runs.
POLL_SECONDS = 0.2
# Largest piece inflated at once: bounds memory whatever the compression ratio.
_PIECE = 64 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Encodings we ask for and can inflate with a bound (httpx's own decoders inflate a
# whole network chunk at once: 64 KiB of gzip can become 64 MiB in one call).
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}

StopCheck = Callable[[], bool]


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


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds of one fetch, from the source's config (see the module docstring)."""

    timeout: float = 30.0
    max_bytes: int = 10 * 1024 * 1024
    follow_redirects_to: Sequence[str] = ()


def is_http_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def fetch(
    name: str,
    location: str,
    state: SourceState,
    limits: Limits,
    should_stop: StopCheck | None = None,
) -> Fetched:
    """Read ``location`` (URL or file path); raise SourceError when it cannot be read."""
    if is_http_url(location):
        return _fetch_url(name, location, state, limits, should_stop or _never)
    return _read_file(name, location, limits.max_bytes)


def _never() -> bool:
    return False


# -- files --------------------------------------------------------------------------


def _read_file(name: str, location: str, max_bytes: int) -> Fetched:
    path = Path(location.removeprefix("file://"))
    try:
        with path.open("rb") as f:
            body = f.read(max_bytes + 1)  # bounded even for /dev/zero or a growing file
    except FileNotFoundError as e:
        raise SourceError(name, f"{path}: no such file") from e
    except OSError as e:
        raise SourceError(name, f"{path}: cannot read: {e.strerror}") from e
    if len(body) > max_bytes:
        raise SourceError(name, too_big(str(path), max_bytes))
    return Fetched(url=str(path), body=body, content_type=_type_from_suffix(path))


def _type_from_suffix(path: Path) -> str:
    return {".json": "application/feed+json", ".html": "text/html", ".htm": "text/html"}.get(
        path.suffix.lower(), ""
    )


def too_big(where: str, max_bytes: int) -> str:
    return (
        f"{where} is larger than max_bytes = {max_bytes} bytes ({max_bytes / 1024**2:.3g} MiB); "
        "raise max_bytes if this source is really that big"
    )


# -- http(s) ------------------------------------------------------------------------


def conditional_headers(state: SourceState) -> dict[str, str]:
    """The If-None-Match / If-Modified-Since headers for the validators kept in ``state``."""
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"}
    if state.etag:
        headers["If-None-Match"] = state.etag
    if state.last_modified:
        headers["If-Modified-Since"] = state.last_modified
    return headers


@dataclass
class _Attempt:
    """What the fetching thread and its waiting caller share."""

    url: str
    deadline: float
    cancel: threading.Event = field(default_factory=threading.Event)
    result: Fetched | None = None
    error: BaseException | None = None


def _fetch_url(name: str, url: str, state: SourceState, limits: Limits, should_stop: StopCheck) -> Fetched:
    """Run the fetch in a daemon thread; wait for it until the deadline or a stop request."""
    attempt = _Attempt(url, time.monotonic() + limits.timeout)
    worker = threading.Thread(
        target=_run, args=(attempt, name, state, limits), name=f"fetch {name}", daemon=True
    )
    worker.start()
    while worker.is_alive():
        if should_stop():
            attempt.cancel.set()
            raise SourceError(name, f"stopped before {attempt.url} was read (the publisher is stopping)")
        left = attempt.deadline - time.monotonic()
        if left <= 0:
            attempt.cancel.set()
            raise SourceError(name, _timed_out(limits, attempt.url))
        worker.join(min(POLL_SECONDS, left))
    if attempt.error is not None:
        raise attempt.error
    assert attempt.result is not None
    return attempt.result


def _timed_out(limits: Limits, url: str) -> str:
    return f"timed out after {limits.timeout:g} s fetching {url}; raise timeout if it is just slow"


def _run(attempt: _Attempt, name: str, state: SourceState, limits: Limits) -> None:
    try:
        attempt.result = _get(attempt, name, state, limits)
    except BaseException as e:  # handed to the waiting caller, which raises it
        attempt.error = e


def _get(attempt: _Attempt, name: str, state: SourceState, limits: Limits) -> Fetched:
    headers = conditional_headers(state)
    try:
        with httpx.Client(timeout=limits.timeout, follow_redirects=False) as client:
            for _hop in range(MAX_REDIRECTS + 1):
                with client.stream("GET", attempt.url, headers=headers) as response:
                    if not response.has_redirect_location:
                        return _response(attempt, name, state, limits, response)
                    target = urljoin(attempt.url, response.headers["Location"])
                check_redirect(name, attempt.url, target, limits.follow_redirects_to)
                attempt.url = target
    except httpx.TimeoutException as e:
        raise SourceError(name, _timed_out(limits, attempt.url)) from e
    except httpx.HTTPError as e:
        raise SourceError(name, f"cannot fetch {attempt.url}: {_cause(e)}") from e
    raise SourceError(
        name, f"more than {MAX_REDIRECTS} redirects, the last to {attempt.url}; set url to the final address"
    )


def _response(
    attempt: _Attempt, name: str, state: SourceState, limits: Limits, response: httpx.Response
) -> Fetched:
    url = attempt.url
    if response.status_code == 304:
        return Fetched(
            url=url,
            body=None,
            etag=response.headers.get("ETag") or state.etag,
            last_modified=response.headers.get("Last-Modified") or state.last_modified,
        )
    if response.status_code >= 400:
        raise SourceError(name, f"HTTP {response.status_code} {response.reason_phrase} from {url}")
    length = response.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > limits.max_bytes:
        raise SourceError(name, too_big(f"{url} (Content-Length {length})", limits.max_bytes))
    body = bytearray()
    for piece in _decoded(name, url, response.headers.get("Content-Encoding", ""), response.iter_raw()):
        if attempt.cancel.is_set() or time.monotonic() > attempt.deadline:
            raise SourceError(name, _timed_out(limits, url))  # the caller has given up already
        body += piece
        if len(body) > limits.max_bytes:
            raise SourceError(name, too_big(url, limits.max_bytes))
    return Fetched(
        url=url,
        body=bytes(body),
        content_type=response.headers.get("Content-Type", ""),
        etag=response.headers.get("ETag"),
        last_modified=response.headers.get("Last-Modified"),
    )


def _decoded(name: str, url: str, encoding: str, raw: Iterable[bytes]) -> Iterator[bytes]:
    """The body as sent, inflated at most :data:`_PIECE` bytes at a time."""
    coding = encoding.strip().lower()
    if coding in ("", "identity"):
        yield from raw
        return
    if coding not in _WBITS:
        raise SourceError(name, f"{url} is sent with Content-Encoding {encoding!r}, which we did not ask for")
    inflater = zlib.decompressobj(_WBITS[coding])
    try:
        for chunk in raw:
            data = chunk
            while data:
                yield inflater.decompress(data, _PIECE)
                data = inflater.unconsumed_tail
        yield inflater.flush()
    except zlib.error as e:
        raise SourceError(name, f"{url}: the {coding} body is corrupt: {e}") from e


# -- which redirects are followed ---------------------------------------------------


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) with the default port filled in, as browsers compare them."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme, 0)


def origin_text(url: str) -> str:
    scheme, host, port = origin(url)
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}" + ("" if _DEFAULT_PORTS.get(scheme) == port else f":{port}")


def same_origin(source: str, target: str) -> bool:
    """Same scheme, host and port; http -> https on the same host (default ports) counts too."""
    a, b = origin(source), origin(target)
    return a == b or (a == ("http", b[1], 80) and b == ("https", a[1], 443))


def check_redirect(name: str, source: str, target: str, allowed: Sequence[str]) -> None:
    """Raise SourceError unless a redirect from ``source`` to ``target`` may be followed."""
    if urlsplit(target).scheme.lower() not in _DEFAULT_PORTS:
        raise SourceError(name, f"{source} redirects to {target}, which is not an http(s) URL; refused")
    if same_origin(source, target) or origin(target) in {origin(o) for o in allowed}:
        return
    raise SourceError(
        name,
        f"{source} redirects to {target}, on another origin; refused. If {origin_text(target)} is "
        f'trusted, add it to this source\'s follow_redirects_to = ["{origin_text(target)}"], '
        "or set url to the new address",
    )


def _cause(error: httpx.HTTPError) -> str:
    """The transport's cause in plain words: a name that does not resolve says so."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, socket.gaierror):  # its errno is the resolver's, not the OS's
            return f"the host name does not resolve ({cause.strerror}); check url"
        cause = cause.__cause__ or cause.__context__
    return str(error) or type(error).__name__
