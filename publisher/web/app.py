"""The web app: public/ at the root, plus the subscriber pages that mail links to.

One Starlette application serves both ``publisher serve`` and ``publisher run``.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route

from publisher.app import Publisher
from publisher.web.signup import routes as signup_routes
from publisher.web.static import FeedFiles
from publisher.web.subscribers import routes as subscriber_routes
from publisher.web.webhooks import routes as webhook_routes


def create_app(publisher: Publisher) -> Starlette:
    """Build the ASGI app for ``publisher``; public/ is created if missing."""
    output_dir = publisher.settings.feeds.output_dir
    output_dir.mkdir(parents=True, exist_ok=True)

    async def healthz(_request: Request) -> Response:
        return PlainTextResponse("ok\n")

    routes = [
        Route("/healthz", healthz),
        *subscriber_routes(publisher),
        *signup_routes(publisher),
        *webhook_routes(publisher),
        Mount("/", app=FeedFiles(directory=output_dir, html=True, check_dir=False), name="public"),
    ]
    return Starlette(routes=routes)
