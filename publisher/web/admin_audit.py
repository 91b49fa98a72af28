"""The console's audit log page (``/admin/audit``): who did what, when, from where.

Read-only, newest first, paged. Entries are written by handlers through
:meth:`AdminContext.audit` (and by the sign-in itself); nothing here edits them.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from publisher.web.admin import PREFIX, AdminConsole, AdminContext, page_number

TEMPLATE = "web/admin/audit.html.j2"
PAGE_SIZE = 100


def routes(console: AdminConsole) -> list[Route]:
    return [console.page(f"{PREFIX}/audit", audit)]


async def audit(request: Request, ctx: AdminContext) -> Response:
    page = page_number(request)
    entries = await ctx.call(ctx.publisher.audit_log, PAGE_SIZE, (page - 1) * PAGE_SIZE)
    total = await ctx.call(ctx.publisher.audit_count)
    return ctx.render(
        TEMPLATE,
        title="Audit log",
        entries=entries,
        page=page,
        has_next=page * PAGE_SIZE < total,
        total=total,
    )
