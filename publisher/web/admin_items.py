"""The console's Items page (``/admin/items``): latest items, hide and unhide, ingest problems.

Hide and unhide are ``publisher items hide|unhide ID`` (:meth:`Publisher.hide_item`): the
flag is stored and the feeds, ``index.html`` and archive are rebuilt before the answer,
so the item is gone from every feed when the page comes back; issues created from then
on leave it out (issues already sent keep what they held). Item ids can be URLs, so
they travel in the form body, never in the path.

Below: the sources whose last read failed, with the error, and the items the last read
of each source rejected, with where they are and the fix.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from publisher.errors import ItemError
from publisher.web.admin import PREFIX, AdminConsole, AdminContext

TEMPLATE = "web/admin/items.html.j2"
BASE = f"{PREFIX}/items"
LIMIT = 100

NOTICES = {
    "item-hidden": "Hidden: {name}. The feeds are rebuilt without it; future issues leave it out.",
    "item-unhidden": "Shown again: {name}. The feeds are rebuilt with it.",
    "item-unchanged": "Nothing changed: {name}.",
    "item-unknown": "No stored item has that id.",
}


def routes(console: AdminConsole) -> list[Route]:
    return [
        console.page(BASE, overview),
        console.page(f"{BASE}/hide", hide, methods=["POST"]),
        console.page(f"{BASE}/unhide", unhide, methods=["POST"]),
    ]


async def overview(request: Request, ctx: AdminContext) -> Response:
    categories = {c.slug: c.title for c in ctx.publisher.settings.categories}
    wanted = request.query_params.get("category", "")
    category = wanted if wanted in categories else None
    listed = await ctx.call(ctx.publisher.items, LIMIT, category)
    problems = await ctx.call(ctx.publisher.ingest_problems)
    return ctx.render(
        TEMPLATE,
        title="Items",
        listed=listed,
        categories=categories,
        category=category or "",
        problems=problems,
        limit=LIMIT,
    )


async def hide(request: Request, ctx: AdminContext) -> Response:
    return await _set_hidden(ctx, hidden=True)


async def unhide(request: Request, ctx: AdminContext) -> Response:
    return await _set_hidden(ctx, hidden=False)


async def _set_hidden(ctx: AdminContext, *, hidden: bool) -> Response:
    item_id = ctx.field("id")[:2000]
    method = ctx.publisher.hide_item if hidden else ctx.publisher.unhide_item
    try:
        change = await ctx.call(method, item_id)
    except ItemError:
        return ctx.redirect(BASE, done="item-unknown")
    title = change.item.item.title[:80]
    if not change.changed:
        return ctx.redirect(BASE, done="item-unchanged", name=title)
    await ctx.audit("item hidden" if hidden else "item unhidden", f"{item_id} ({title})")
    return ctx.redirect(BASE, done="item-hidden" if hidden else "item-unhidden", name=title)
