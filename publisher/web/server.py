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
import logging
from typing import Any

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from publisher.config import WebConfig

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
        timeout_graceful_shutdown=graceful_shutdown,
        log_level="warning",
    )
