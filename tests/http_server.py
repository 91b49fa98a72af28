"""A real HTTP server on loopback for tests, scripted to be a hostile upstream.

Fetch limits are only trustworthy when tested against a server that really misbehaves:
one that drips a byte at a time, serves a gzip bomb, streams hundreds of megabytes or
redirects somewhere it should not. :class:`Upstream` is a ``ThreadingHTTPServer`` on
127.0.0.1 with a free port whose paths map to :data:`Route` functions writing the reply
(HTTP/1.0, so a body without Content-Length ends when the connection closes). Bodies
are generated while they are sent, never built whole. ``stop()`` (or leaving the
``with`` block) ends every route that is still sending. The fixture ``upstream`` is
registered for every test module in ``tests/conftest.py``.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import pytest

Route = Callable[["_Handler"], None]
_MIB = 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    upstream: Upstream

    def do_POST(self) -> None:
        """A POST is recorded with its body (a WebSub hub test reads the pings), then routed."""
        length = int(self.headers.get("Content-Length") or 0)
        self.upstream.posts.append((self.path, self.headers.get("Content-Type", ""), self.rfile.read(length)))
        self.do_GET()

    def do_GET(self) -> None:
        self.upstream.requests.append(self.path)
        route = self.upstream.routes.get(self.path)
        try:
            if route is None:
                self.head(404, "text/plain")
                self.wfile.write(b"not found")
            else:
                route(self)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up: what a fetch limit is supposed to do

    def head(
        self, status: int = 200, content_type: str = "text/html", headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()

    def send(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()
        self.upstream.sent += len(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Upstream:
    """The server: ``routes`` by path, every requested path, bytes of body sent."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[str] = []
        self.posts: list[tuple[str, str, bytes]] = []  # path, Content-Type, body
        self.sent = 0
        self.stopping = threading.Event()
        handler = type("Handler", (_Handler,), {"upstream": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True
        self._thread.start()

    def url(self, path: str) -> str:
        return self.origin + path

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Upstream:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()


# -- routes -------------------------------------------------------------------------


def page(body: bytes, content_type: str = "text/html; charset=utf-8") -> Route:
    def route(h: _Handler) -> None:
        h.head(200, content_type, {"Content-Length": str(len(body))})
        h.send(body)

    return route


def drip(every: float, byte: bytes = b" ") -> Route:
    """A 200 whose body comes one byte every ``every`` seconds, for ever (until stop)."""

    def route(h: _Handler) -> None:
        h.head()
        while not h.upstream.stopping.wait(every):
            h.send(byte)

    return route


def zeros(size: int, *, gzip: bool = False, announce: bool = False) -> Route:
    """``size`` zero bytes, streamed 1 MiB at a time, gzip-compressed on the fly if asked.

    A gzip of zeros shrinks about 1000:1, so ``zeros(1024**3, gzip=True)`` is a 1 MB bomb
    that inflates to 1 GiB. ``announce`` sends the Content-Length of what is sent.
    """

    def route(h: _Handler) -> None:
        headers = {"Content-Encoding": "gzip"} if gzip else {}
        if announce and not gzip:
            headers["Content-Length"] = str(size)
        h.head(200, "application/rss+xml", headers)
        deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        block = bytes(_MIB)
        left = size
        while left > 0 and not h.upstream.stopping.is_set():
            chunk = block[: min(left, _MIB)]
            left -= len(chunk)
            h.send(deflate.compress(chunk) if gzip else chunk)
        if gzip:
            h.send(deflate.flush())

    return route


def failing_first(failures: int, status: int = 503, then: int = 204) -> Route:
    """``status`` for the first ``failures`` requests, then ``then`` (a hub that recovers)."""
    seen = [0]

    def route(h: _Handler) -> None:
        seen[0] += 1
        code = status if seen[0] <= failures else then
        h.head(code, "text/plain", {"Content-Length": "0"})

    return route


def redirect(location: str, status: int = 302) -> Route:
    def route(h: _Handler) -> None:
        h.head(status, "text/plain", {"Location": location, "Content-Length": "0"})

    return route


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    """A fresh scripted upstream; stopped (ending any drip) after the test."""
    with Upstream() as server:
        yield server
