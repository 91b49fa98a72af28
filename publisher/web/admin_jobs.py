"""The console's Jobs page (``/admin/jobs``): the job-run history ``publisher status`` shows.

Read-only. Each run with its schedule, fire time, start, duration, outcome, counts and
error; ``?schedule=NAME`` narrows to one schedule.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from publisher.web.admin import PREFIX, AdminConsole, AdminContext

TEMPLATE = "web/admin/jobs.html.j2"
LIMIT = 100


def routes(console: AdminConsole) -> list[Route]:
    return [console.page(f"{PREFIX}/jobs", jobs)]


async def jobs(request: Request, ctx: AdminContext) -> Response:
    wanted = request.query_params.get("schedule", "")
    schedule = wanted if wanted in ctx.publisher.settings.schedules else None
    runs = await ctx.call(ctx.publisher.job_runs, LIMIT, schedule)
    return ctx.render(
        TEMPLATE,
        title="Jobs",
        runs=runs,
        schedule=schedule or "",
        schedules=sorted(ctx.publisher.settings.schedules),
        limit=LIMIT,
    )
