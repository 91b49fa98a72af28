"""The console's Lists and digests pages (``/admin/lists``).

Per list: subscribers by status, past issues with their delivery counts and archive
page, the next issue previewed in any catalogue language, a test copy to one address
(``digest send LIST --to``, the same :meth:`Publisher.send_test_copy`) and the CSV export
(``subscribers export``, formula-escaped like the CLI's).

The preview's HTML is the mail's own HTML, which the console's CSP (no inline style)
would break and which must never run script or reach the console's cookies: it is
served by a separate URL, ``/admin/lists/{slug}/preview.html?language=fr``, with a CSP
of its own (``sandbox``, no script, images only from https and data:) and shown in a
``<iframe sandbox>``; the text part, subject and size are on the page itself.
"""

from __future__ import annotations

import html
import io
import logging

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from publisher.errors import ConfigError, IssueError, PublisherError, TemplateError
from publisher.models import NOT_SENT, WHY_STATUSES, DeliveryStatus
from publisher.web.admin import PREFIX, SECURITY_HEADERS, AdminConsole, AdminContext, not_found

log = logging.getLogger("publisher.web.admin")

OVERVIEW_TEMPLATE = "web/admin/lists.html.j2"
LIST_TEMPLATE = "web/admin/list.html.j2"
ISSUE_TEMPLATE = "web/admin/issue.html.j2"
BASE = f"{PREFIX}/lists"
#: The deliveries an issue's page lists (latest attempt first); the reasons count them all.
ISSUE_ROWS = 100

NOTICES = {
    "test-sent": "A test copy of {name} was sent.",
    "issue-unknown": "That issue is not one of this list's; its past issues are below.",
}

#: The preview page: it may be framed by the console only, and what it shows is inert.
PREVIEW_HEADERS = {
    **SECURITY_HEADERS,
    "x-frame-options": "SAMEORIGIN",
    "content-security-policy": (
        "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
        "frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
    ),
}
#: The list page frames the preview (and nothing else).
LIST_CSP = SECURITY_HEADERS["content-security-policy"] + "; frame-src 'self'"


def routes(console: AdminConsole) -> list[Route]:
    return [
        console.page(BASE, overview),
        console.page(f"{BASE}/{{slug}}", show),
        console.page(f"{BASE}/{{slug}}/preview.html", preview_html),
        console.page(f"{BASE}/{{slug}}/issues/{{id:int}}", issue),
        console.page(f"{BASE}/{{slug}}/test", send_test, methods=["POST"]),
        console.page(f"{BASE}/{{slug}}/export", export, methods=["POST"]),
    ]


def _slug(request: Request, ctx: AdminContext) -> str | None:
    slug = str(request.path_params["slug"])
    return slug if slug in ctx.publisher.list_names else None


def _language(request: Request, ctx: AdminContext) -> str:
    wanted = request.query_params.get("language", "")
    return wanted if wanted in ctx.publisher.page_languages else ctx.publisher.settings.site.language


async def overview(_request: Request, ctx: AdminContext) -> Response:
    lists = await ctx.call(ctx.publisher.lists_overview, 5)
    return ctx.render(OVERVIEW_TEMPLATE, title="Lists and digests", lists=lists)


async def show(request: Request, ctx: AdminContext, *, error: str = "", address: str = "") -> Response:
    slug = _slug(request, ctx)
    if slug is None:
        raise not_found()
    language = _language(request, ctx)
    (found,) = await ctx.call(ctx.publisher.lists_overview, 50, slug)
    preview, problem = None, ""
    try:
        preview = await ctx.call(ctx.publisher.preview_issue, slug, language)
    except (IssueError, TemplateError, ConfigError) as e:
        problem = str(e)
    answer = ctx.render(
        LIST_TEMPLATE,
        title=found.name,
        status=422 if error else 200,
        lst=found,
        language=language,
        languages=ctx.publisher.page_languages,
        preview=preview,
        problem=problem,
        error=error,
        address=address,
        statuses=["confirmed", "pending", "unsubscribed", "bounced", "complained"],
    )
    answer.headers["content-security-policy"] = LIST_CSP
    return answer


async def issue(request: Request, ctx: AdminContext) -> Response:
    """One issue: its counts and why its deliveries were not sent (``digest failures --issue``).

    ``?status=failed`` narrows it to one status. Replies are shown through
    :attr:`FailedDelivery.shown_text` (one line, controls escaped, cut), then HTML-escaped.
    """
    slug = _slug(request, ctx)
    if slug is None:
        raise not_found()
    wanted = request.query_params.get("status", "")
    statuses = tuple(s for s in WHY_STATUSES if s.value == wanted) or NOT_SENT
    try:
        report = await ctx.call(
            ctx.publisher.delivery_failures,
            slug,
            issue_id=int(request.path_params["id"]),
            statuses=statuses,
            limit=ISSUE_ROWS,
        )
    except IssueError:  # no such issue, or another list's: back to the list's issues
        return ctx.redirect(f"{BASE}/{slug}", done="issue-unknown")
    (summary,) = report.issues
    return ctx.render(
        ISSUE_TEMPLATE,
        title=f"{ctx.publisher.list_names[slug]}: issue {summary.period_key}",
        slug=slug,
        issue=summary,
        report=report,
        status_filter=statuses[0].value if len(statuses) == 1 else "",
        choices=[s.value for s in WHY_STATUSES],
    )


async def preview_html(request: Request, ctx: AdminContext) -> Response:
    slug = _slug(request, ctx)
    if slug is None:
        raise not_found()
    try:
        preview = await ctx.call(ctx.publisher.preview_issue, slug, _language(request, ctx))
    except (IssueError, TemplateError, ConfigError) as e:
        return HTMLResponse(f"<p>{html.escape(str(e))}</p>", headers=PREVIEW_HEADERS)
    return HTMLResponse(preview.html, headers=PREVIEW_HEADERS)


async def send_test(request: Request, ctx: AdminContext) -> Response:
    slug = _slug(request, ctx)
    if slug is None:
        raise not_found()
    address = ctx.field("address").strip()[:320]
    language = ctx.field("language")
    if language not in ctx.publisher.page_languages:
        language = ctx.publisher.settings.site.language
    try:
        result = await ctx.publisher.send_test_copy(slug, address, language)
    except PublisherError as e:
        return await show(request, ctx, error=f"No test copy was sent: {e}", address=address)
    if result is None or result.status is not DeliveryStatus.SENT:
        reason = " ".join(str(p) for p in (result.status, result.code, result.text) if p) if result else ""
        return await show(
            request, ctx, error=f"The test copy was not sent: {reason or 'no answer'}", address=address
        )
    await ctx.audit("test copy sent", f"{slug} ({language}) to {address}")
    return ctx.redirect(f"{BASE}/{slug}", done="test-sent", name=slug, language=language)


async def export(request: Request, ctx: AdminContext) -> Response:
    """``subscribers export LIST`` as a download; a POST so it is audited (personal data left)."""
    slug = _slug(request, ctx)
    if slug is None:
        raise not_found()
    out = io.StringIO()
    rows = await ctx.call(ctx.publisher.export_subscribers, slug, out)
    await ctx.audit("subscribers exported", f"{slug}: {rows} rows")
    return Response(
        out.getvalue().encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={**SECURITY_HEADERS, "content-disposition": f'attachment; filename="{slug}.csv"'},
    )
