"""The console's Subscribers pages (``/admin/subscribers``).

Search by address or name (paged); a subscriber's page by id (an address never goes
into a URL, so it stays out of access logs and browser history): lists and statuses,
the consent record, deliveries, bounce and complaint reports, and the audit lines about
them; add, unsubscribe from a list, suppress and unsuppress, forget (after a confirm
page). Each action is the CLI's Publisher method (``subscribers add|remove|suppress|
unsuppress|forget``) and writes an audit line naming the address and ``(#id)``; forget
replaces the address in earlier audit lines by "forgotten".

Import is two steps. The upload (``POST /admin/subscribers/import``) is kept on the
server under a random id and checked exactly as the import will read it; the next page
says "import N rows, M rejected: commit?" with every rejected row's line and reason,
and only its "Commit" (``POST .../import/{upload}/commit``) imports the held bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from publisher.app import HeldImport
from publisher.errors import ConfigError, PublisherError, SubscriberError
from publisher.models import SubscriptionStatus
from publisher.web.admin import PREFIX, AdminConsole, AdminContext, not_found, page_number

if TYPE_CHECKING:
    from publisher.store.subscribers import SubscriberRecord

SEARCH_TEMPLATE = "web/admin/subscribers.html.j2"
SUBSCRIBER_TEMPLATE = "web/admin/subscriber.html.j2"
FORGET_TEMPLATE = "web/admin/subscriber_forget.html.j2"
IMPORT_TEMPLATE = "web/admin/subscriber_import.html.j2"
BASE = f"{PREFIX}/subscribers"
PER_PAGE = 50
UPLOAD_MAX_BYTES = 20 * 1024 * 1024

NOTICES = {
    "subscriber-added": "{name} is subscribed.",
    "subscriber-removed": "Unsubscribed from {name}.",
    "subscriber-not-on": "The address was not on {name}; nothing changed.",
    "subscriber-suppressed": "Suppressed ({name}) on every list.",
    "subscriber-unsuppressed": "Suppression lifted: {name}.",
    "subscriber-forgotten": (
        "The subscriber's personal data is erased; a hash keeps imports from adding them again."
    ),
    "subscriber-unknown": "There is no such subscriber.",
    "import-done": "Imported: {name}.",
    "import-discarded": "The upload was discarded; nothing was imported.",
    "import-gone": "That upload is unknown or expired (uploads are kept one hour); upload the file again.",
}


def routes(console: AdminConsole) -> list[Route]:
    return [
        console.page(BASE, search),
        console.page(f"{BASE}/add", add, methods=["POST"]),
        console.page(f"{BASE}/import", upload, methods=["POST"], max_body=UPLOAD_MAX_BYTES),
        console.page(f"{BASE}/import/{{upload}}", held),
        console.page(f"{BASE}/import/{{upload}}/commit", commit, methods=["POST"]),
        console.page(f"{BASE}/import/{{upload}}/discard", discard, methods=["POST"]),
        console.page(f"{BASE}/{{id:int}}", show),
        console.page(f"{BASE}/{{id:int}}/unsubscribe", unsubscribe, methods=["POST"]),
        console.page(f"{BASE}/{{id:int}}/suppress", suppress, methods=["POST"]),
        console.page(f"{BASE}/{{id:int}}/unsuppress", unsuppress, methods=["POST"]),
        console.page(f"{BASE}/{{id:int}}/forget", forget, methods=["GET", "POST"]),
    ]


def who(email: str | None, subscriber_id: int) -> str:
    """How an audit line names a subscriber: the address and the id (the id outlives a forget)."""
    return f"{email or 'forgotten'} (#{subscriber_id})"


# -- search, add, import ----------------------------------------------------------------


async def search(
    request: Request,
    ctx: AdminContext,
    *,
    error: str = "",
    status: int = 200,
    form: dict[str, str] | None = None,
) -> Response:
    text = request.query_params.get("q", "")[:200]
    found = await ctx.call(ctx.publisher.search_subscribers, text, page_number(request), PER_PAGE)
    wanted = request.query_params.get("list", "")
    return ctx.render(
        SEARCH_TEMPLATE,
        title="Subscribers",
        status=status,
        found=found,
        lists=ctx.publisher.list_names,
        chosen_list=wanted if wanted in ctx.publisher.list_names else "",
        languages=list(ctx.publisher.page_languages),
        error=error,
        form=form or {},
    )


async def add(request: Request, ctx: AdminContext) -> Response:
    form = {k: ctx.field(k).strip() for k in ("list", "email", "name", "language")}
    slug = form["list"]
    if slug not in ctx.publisher.list_names:
        return await search(request, ctx, error="Choose a list.", status=422, form=form)
    try:
        added = await ctx.call(
            ctx.publisher.add_subscriber, slug, form["email"], form["name"], form["language"] or None
        )
    except PublisherError as e:
        return await search(request, ctx, error=f"Not added: {e}", status=422, form=form)
    await ctx.audit("subscriber added", f"{who(added.email, added.id)} to {slug}")
    return ctx.redirect(f"{BASE}/{added.id}", done="subscriber-added", name=f"{added.email} on {slug}")


async def upload(request: Request, ctx: AdminContext) -> Response:
    slug = ctx.field("list")
    file = ctx.form.get("file")
    if slug not in ctx.publisher.list_names:
        return await search(request, ctx, error="Choose the list to import into.", status=422)
    if not isinstance(file, UploadFile) or not file.filename:
        return await search(request, ctx, error="Choose a CSV file to upload.", status=422)
    data = await file.read()
    try:
        found = await ctx.call(ctx.publisher.hold_import, slug, file.filename, data, ctx.user)
    except (SubscriberError, ConfigError) as e:
        return await search(request, ctx, error=f"This file cannot be imported: {e}", status=422)
    await ctx.audit("import uploaded", f"{found.check.file_name} for {slug}: {found.check.rows} rows")
    return ctx.redirect(f"{BASE}/import/{found.id}")


def _render_held(ctx: AdminContext, found: HeldImport) -> Response:
    return ctx.render(
        IMPORT_TEMPLATE,
        title="Import subscribers",
        found=found,
        list_name=ctx.publisher.list_names.get(found.list_slug, found.list_slug),
    )


async def held(request: Request, ctx: AdminContext) -> Response:
    try:
        found = await ctx.call(ctx.publisher.held_import, str(request.path_params["upload"]), ctx.user)
    except SubscriberError:
        return ctx.redirect(BASE, done="import-gone")
    return _render_held(ctx, found)


async def commit(request: Request, ctx: AdminContext) -> Response:
    upload_id = str(request.path_params["upload"])
    try:
        found = await ctx.call(ctx.publisher.held_import, upload_id, ctx.user)
        report = await ctx.call(ctx.publisher.commit_import, upload_id, ctx.user)
    except SubscriberError:
        return ctx.redirect(BASE, done="import-gone")
    summary = (
        f"{found.check.file_name} into {found.list_slug}: {report.added} added, "
        f"{report.updated} updated, {report.unchanged} unchanged, "
        f"{report.suppressed_kept} kept suppressed, {len(report.rejected)} rejected"
    )
    await ctx.audit("subscribers imported", summary)
    return ctx.redirect(BASE, done="import-done", name=summary, list=found.list_slug)


async def discard(request: Request, ctx: AdminContext) -> Response:
    try:
        slug = await ctx.call(ctx.publisher.discard_import, str(request.path_params["upload"]), ctx.user)
    except SubscriberError:
        return ctx.redirect(BASE, done="import-gone")
    await ctx.audit("import discarded", slug)
    return ctx.redirect(BASE, done="import-discarded")


# -- one subscriber ------------------------------------------------------------------------


async def _record(request: Request, ctx: AdminContext) -> SubscriberRecord | None:
    subscriber_id = int(request.path_params["id"])
    if subscriber_id >= 2**31:  # no such row, and SQL would refuse the number (a 500)
        return None
    return await ctx.call(ctx.publisher.subscriber_record, subscriber_id)


async def show(request: Request, ctx: AdminContext, *, error: str = "", status: int = 200) -> Response:
    record = await _record(request, ctx)
    if record is None:
        return ctx.redirect(BASE, done="subscriber-unknown")
    deliveries = await ctx.call(ctx.publisher.subscriber_deliveries, record.id)
    audit = await ctx.call(ctx.publisher.audit_mentioning, f"(#{record.id})")
    return ctx.render(
        SUBSCRIBER_TEMPLATE,
        title=record.email or f"Forgotten subscriber #{record.id}",
        status=status,
        record=record,
        deliveries=deliveries,
        audit=audit,
        lists=ctx.publisher.list_names,
        error=error,
        suppressed=any(s.status.value in ("bounced", "complained") for s in record.lists),
    )


async def unsubscribe(request: Request, ctx: AdminContext) -> Response:
    record = await _record(request, ctx)
    slug = ctx.field("list")
    if record is None or record.email is None or slug not in ctx.publisher.list_names:
        raise not_found()
    removed = await ctx.call(ctx.publisher.remove_subscriber, slug, record.email)
    if not removed.changed:  # not on the list, or unsubscribed already
        return ctx.redirect(f"{BASE}/{record.id}", done="subscriber-not-on", name=slug)
    await ctx.audit("subscriber unsubscribed", f"{who(record.email, record.id)} from {slug}")
    return ctx.redirect(f"{BASE}/{record.id}", done="subscriber-removed", name=slug)


async def suppress(request: Request, ctx: AdminContext) -> Response:
    record = await _record(request, ctx)
    if record is None or record.email is None:
        raise not_found()
    wanted = ctx.field("status")
    if wanted not in ("bounced", "complained"):
        return await show(request, ctx, error="Choose bounced or complained.", status=422)
    note = ctx.field("note").strip()[:200] or f"console: {ctx.user}"
    try:
        changed = await ctx.call(
            ctx.publisher.suppress_subscriber, record.email, SubscriptionStatus(wanted), note
        )
    except PublisherError as e:
        return await show(request, ctx, error=f"Not suppressed: {e}", status=422)
    await ctx.audit(
        "subscriber suppressed",
        f"{who(record.email, record.id)} as {wanted}: {', '.join(changed) or 'no list changed'}",
    )
    return ctx.redirect(f"{BASE}/{record.id}", done="subscriber-suppressed", name=wanted)


async def unsuppress(request: Request, ctx: AdminContext) -> Response:
    record = await _record(request, ctx)
    if record is None or record.email is None:
        raise not_found()
    note = ctx.field("note").strip()[:200] or f"console: {ctx.user}"
    try:
        now = await ctx.call(ctx.publisher.unsuppress_subscriber, record.email, note)
    except PublisherError as e:
        return await show(request, ctx, error=f"Not lifted: {e}", status=422)
    result = ", ".join(f"{slug} {status.value}" for slug, status in now.items()) or "no list"
    await ctx.audit("subscriber unsuppressed", f"{who(record.email, record.id)}: {result}")
    return ctx.redirect(f"{BASE}/{record.id}", done="subscriber-unsuppressed", name=result)


async def forget(request: Request, ctx: AdminContext) -> Response:
    record = await _record(request, ctx)
    if record is None:
        return ctx.redirect(BASE, done="subscriber-unknown")
    if record.email is None:
        return ctx.redirect(f"{BASE}/{record.id}")
    if request.method != "POST":
        return ctx.render(FORGET_TEMPLATE, title=f"Forget {record.email}?", record=record)
    if ctx.field("confirm") != "yes":
        return ctx.render(FORGET_TEMPLATE, title=f"Forget {record.email}?", record=record, status=422)
    await ctx.call(ctx.publisher.forget_subscriber, record.email)
    await ctx.audit("subscriber forgotten", who(None, record.id))
    return ctx.redirect(f"{BASE}/{record.id}", done="subscriber-forgotten")
