"""The uvicorn settings both ``publisher serve`` and ``publisher run`` use.

Why a module of its own: a slow or idle client must not hold a connection (each one
costs a socket and memory; a few hundred trickling clients, the "slowloris" attack,
would starve the server). uvicorn closes a connection that stays idle after a response
(``timeout_keep_alive``), but any byte cancels that timer and nothing limits how long
a request's headers may take, so a client sending one header byte every few seconds,
or connecting and sending nothing, was held for minutes. uvicorn has no setting for a
header deadline; :class:`HeaderDeadlineProtocol` adds one to its h11 protocol (always
used, even where httptools is installed). Both fronts build their server with
:func:`server_config`, so they cannot drift apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
import threading
from collections.abc import Iterator
from typing import Any

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from publisher.config import WebConfig
from publisher.errors import PublisherError

log = logging.getLogger("publisher.web")


class WebServerConfig(uvicorn.Config):
    """uvicorn's Config plus the deadline for a request's headers, in seconds."""

    def __init__(self, app: ASGIApp, *, header_timeout: float, **options: Any) -> None:
        super().__init__(app, **options)
        self.header_timeout = header_timeout


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol that closes a connection whose request headers are late.

    The deadline starts when the connection opens and again when a response is complete
    (the connection then waits for the next request); it is not moved by data that
    arrives, so trickling bytes do not extend it. It ends once the headers are parsed:
    reading the body and running the app are not limited here.
    """

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not isinstance(config, WebServerConfig):
            raise TypeError("HeaderDeadlineProtocol needs a WebServerConfig: build it with server_config()")
        super().__init__(config, server_state, app_state, _loop)
        self.header_timeout = config.header_timeout
        self.header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch_headers()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_headers()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _waiting_for_headers(self) -> bool:
        # h11 leaves the client's state IDLE until a request's headers are complete.
        return self.conn.their_state is h11.IDLE and not self.transport.is_closing()

    def _watch_headers(self) -> None:
        if not self._waiting_for_headers():
            self._cancel_header_timer()
        elif self.header_timer is None:
            self.header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _cancel_header_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _headers_late(self) -> None:
        self.header_timer = None
        if self._waiting_for_headers():
            log.debug(
                "closing the connection from %s: no complete request headers within %g s",
                self.client, self.header_timeout,
            )  # fmt: skip
            self.transport.close()


def server_config(
    app: ASGIApp,
    web: WebConfig,
    *,
    host: str | None = None,
    port: int | None = None,
    graceful_shutdown: int | None = None,
) -> WebServerConfig:
    """The uvicorn Config for ``app`` under ``[web]``; ``host``/``port`` override it (CLI flags)."""
    return WebServerConfig(
        app,
        header_timeout=web.header_timeout,
        host=host or web.host,
        port=web.port if port is None else port,
        http=HeaderDeadlineProtocol,
        ws="none",  # no page uses WebSockets: an upgrade is refused rather than served
        timeout_keep_alive=web.keep_alive_timeout,
        # Explicit, so uvicorn's FORWARDED_ALLOW_IPS environment variable cannot widen it.
        proxy_headers=bool(web.forwarded_allow_ips),
        forwarded_allow_ips=list(web.forwarded_allow_ips),
        timeout_graceful_shutdown=graceful_shutdown,
        log_level="warning",
    )


class StoppableServer(uvicorn.Server):
    """uvicorn's server that ends on SIGTERM or Ctrl-C as a stop asked for, exit status 0.

    uvicorn re-raises the signal after its graceful shutdown, so ``publisher serve``
    died "killed by SIGTERM" (exit 143) with no last line, which a supervisor and an
    admin read as a crash.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def check_port(host: str, port: int) -> None:
    """Raise PublisherError, naming ``[web] port``, when ``host:port`` cannot be listened on.

    Checked before anything is printed, so a busy port is one clear line instead of
    a banner followed by uvicorn's ``[Errno 98]``.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise PublisherError(f"[web] host {host!r} does not resolve ({e.strerror}); fix [web] host") from e
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise PublisherError(
                    f"port {port} on {host} is in use by another program: stop it, or set [web] port "
                    "(or --port) to a free one"
                ) from e
            raise PublisherError(
                f"cannot listen on {host}:{port}: {e.strerror}; check [web] host and port"
            ) from e
