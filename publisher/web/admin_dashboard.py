"""The console's dashboard (``/admin/``): is everything fetching, sending and running?

Read-only: one :meth:`Publisher.dashboard` call. While a digest is being sent the page
asks the browser to reload itself every few seconds (a ``<meta http-equiv="refresh">``,
no script), so its counts are live.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from publisher.web.admin import PREFIX, AdminConsole, AdminContext

TEMPLATE = "web/admin/dashboard.html.j2"
#: Seconds between reloads while a digest is being sent.
REFRESH_SECONDS = 5


def routes(console: AdminConsole) -> list[Route]:
    return [
        console.page(PREFIX, to_dashboard),
        console.page(f"{PREFIX}/", dashboard),
    ]


async def to_dashboard(_request: Request, _ctx: AdminContext) -> Response:
    return RedirectResponse(f"{PREFIX}/", status_code=303)


async def dashboard(_request: Request, ctx: AdminContext) -> Response:
    data = await ctx.call(ctx.publisher.dashboard)
    return ctx.render(
        TEMPLATE,
        title="Dashboard",
        data=data,
        list_names=ctx.publisher.list_names,
        refresh=REFRESH_SECONDS if data.sending_now else 0,
    )
