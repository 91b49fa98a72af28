"""The web app: public/ at the root, the subscriber pages that mail links to, the admin console.

One Starlette application serves both ``publisher serve`` and ``publisher run``.

public/ is the router's default: it answers a path no route takes, with any method.
(A catch-all mount would also take a path whose route exists but not for the method,
so ``PUT /subscribe`` got public/'s ``405, Allow: GET, HEAD`` instead of the route's
own 405.) Errors are pages of the site, see :mod:`publisher.web.errors`.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from publisher.app import Publisher
from publisher.config import load_config
from publisher.errors import PublisherError
from publisher.web.admin import SECURITY_HEADERS, Reload, ReloadScope
from publisher.web.admin_console import routes as admin_routes
from publisher.web.errors import ErrorPages
from publisher.web.signup import routes as signup_routes
from publisher.web.static import FeedFiles
from publisher.web.subscribers import routes as subscriber_routes
from publisher.web.webhooks import routes as webhook_routes

log = logging.getLogger("publisher.web")


def create_app(
    publisher: Publisher, *, reload: Reload | None = None, reload_scope: ReloadScope = "daemon"
) -> Starlette:
    """Build the ASGI app for ``publisher``; public/ is created if missing.

    ``reload`` is how the admin console applies a config.toml it edited (the daemon's
    SIGHUP reload, or :class:`ServedApp`'s under ``publisher serve``); ``reload_scope``
    says which, so the console tells the admin whether the scheduler saw the change.
    """
    output_dir = publisher.settings.feeds.output_dir
    output_dir.mkdir(parents=True, exist_ok=True)

    async def healthz(_request: Request) -> Response:
        return PlainTextResponse("ok\n")

    public_files = FeedFiles(
        directory=output_dir,
        html=True,
        check_dir=False,
        languages=tuple(publisher.page_languages),
        site_language=publisher.page_language(),
        feed_page=publisher.feed_page_path,
    )
    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        *subscriber_routes(publisher),
        *signup_routes(publisher),
        *webhook_routes(publisher),
        *admin_routes(publisher, reload=reload, reload_scope=reload_scope),
    ]
    errors = ErrorPages(publisher, console_headers=SECURITY_HEADERS)
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: errors.http_exception, Exception: errors.server_error},
    )
    app.router.default = public_files
    # No "/subscribe/" -> "/subscribe" redirects: public/ answers such paths, as it did.
    app.router.redirect_slashes = False
    return app


class ServedApp:
    """``publisher serve``'s app: after the console edits config.toml, this server reloads it.

    Only this process's pages see the change; a ``publisher run`` daemon elsewhere reloads
    on SIGHUP, which the console says.
    """

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.app = create_app(publisher, reload=self.reload, reload_scope="server")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    async def reload(self) -> bool:
        path = self.publisher.settings.path
        if path is None:
            return False
        try:
            settings = await asyncio.to_thread(load_config, path)
            new = self.publisher.reconfigured(settings)
        except PublisherError as e:
            log.error("reloading %s failed; keeping the running configuration: %s", path, e)
            return False
        self.publisher = new
        self.app = create_app(new, reload=self.reload, reload_scope="server")
        log.info("configuration reloaded after an edit in the admin console")
        return True
