"""The console's Schedules page: pause, resume, run now, and edit a trigger in config.toml.

Pause and resume are :meth:`Publisher.pause_schedule`/``resume_schedule``, the CLI's
own: a flag in the store that a running daemon polls every few seconds. "Run now" is
``schedules run``'s :meth:`Publisher.arun_schedule_now`, started after the answer so
the page does not wait for a whole ingest or send; its run shows on the Jobs page.

Editing goes through a preview: ``GET /admin/schedules/{name}/edit?kind=..&value=..``
shows what config.toml would say, the problems config loading would report, and the
next five fire times in the schedule's zone, all without writing anything. Only the
preview's "Save" (a POST carrying the digest of the file it was computed from) writes
config.toml, atomically; then the daemon reloads the file as on SIGHUP.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from publisher.app import ScheduleEdit
from publisher.errors import ConfigError, SchedulerError
from publisher.web.admin import PREFIX, AdminConsole, AdminContext, not_found

LIST_TEMPLATE = "web/admin/schedules.html.j2"
EDIT_TEMPLATE = "web/admin/schedule_edit.html.j2"
BASE = f"{PREFIX}/schedules"

NOTICES = {
    "paused": "Schedule {name} is paused; a running daemon stops firing it within seconds.",
    "resumed": "Schedule {name} is resumed.",
    "started": "Schedule {name} is running now; its run appears on the Jobs page.",
    "edited": "Schedule {name} is saved in config.toml and the daemon reloaded it.",
    "edited-here": (
        "Schedule {name} is saved in config.toml and this server (publisher serve) reloaded it. "
        "A publisher run daemon in another process applies it after `systemctl reload publisher` (SIGHUP)."
    ),
    "edited-unloaded": (
        "Schedule {name} is saved in config.toml, but it could not be reloaded here (see the log). "
        "Reload the daemon (`systemctl reload publisher`, SIGHUP) or restart it to apply the change."
    ),
    "unchanged": "Schedule {name} already says that; config.toml was not touched.",
}


def routes(console: AdminConsole) -> list[Route]:
    pages = SchedulePages(console)
    return [
        console.page(BASE, pages.overview),
        console.page(f"{BASE}/{{name}}/pause", pages.pause, methods=["POST"]),
        console.page(f"{BASE}/{{name}}/resume", pages.resume, methods=["POST"]),
        console.page(f"{BASE}/{{name}}/run", pages.run, methods=["POST"]),
        console.page(f"{BASE}/{{name}}/edit", pages.edit, methods=["GET", "POST"]),
    ]


class SchedulePages:
    def __init__(self, console: AdminConsole) -> None:
        self.console = console

    async def overview(self, _request: Request, ctx: AdminContext) -> Response:
        infos = await ctx.call(ctx.publisher.schedules)
        return ctx.render(LIST_TEMPLATE, title="Schedules", schedules=infos)

    @staticmethod
    def _known(request: Request, ctx: AdminContext) -> str | None:
        name = str(request.path_params["name"])
        return name if name in ctx.publisher.settings.schedules else None

    async def pause(self, request: Request, ctx: AdminContext) -> Response:
        return await self._set_paused(request, ctx, paused=True)

    async def resume(self, request: Request, ctx: AdminContext) -> Response:
        return await self._set_paused(request, ctx, paused=False)

    async def _set_paused(self, request: Request, ctx: AdminContext, *, paused: bool) -> Response:
        name = self._known(request, ctx)
        if name is None:
            raise not_found()
        try:
            await ctx.call(ctx.publisher.pause_schedule if paused else ctx.publisher.resume_schedule, name)
        except SchedulerError:
            raise not_found() from None
        await ctx.audit("schedule paused" if paused else "schedule resumed", name)
        return ctx.redirect(BASE, done="paused" if paused else "resumed", name=name)

    async def run(self, request: Request, ctx: AdminContext) -> Response:
        name = self._known(request, ctx)
        if name is None:
            raise not_found()
        self.console.start(ctx.publisher.arun_schedule_now(name), f"schedule {name} (run now)")
        await ctx.audit("schedule run now", name)
        return ctx.redirect(BASE, done="started", name=name)

    async def edit(self, request: Request, ctx: AdminContext) -> Response:
        name = self._known(request, ctx)
        if name is None:
            raise not_found()
        cfg = ctx.publisher.schedule_config(name)
        current_kind = "cron" if cfg.cron is not None else "every"
        current_value = cfg.cron if cfg.cron is not None else str(cfg.every)
        current = {"kind": current_kind, "value": current_value, "timezone": cfg.timezone or ""}
        if request.method == "POST":
            return await self._save(ctx, name, current)
        query = request.query_params
        if "kind" not in query:  # the form, filled with what config.toml says now
            return self._page(ctx, name, current, None)
        wanted = {k: query.get(k, "") for k in ("kind", "value", "timezone")}
        try:
            edit = await ctx.call(
                ctx.publisher.plan_schedule_edit, name, wanted["kind"], wanted["value"], wanted["timezone"]
            )
        except ConfigError as e:
            return self._page(ctx, name, wanted, None, problems=e.problems, status=409)
        return self._page(ctx, name, wanted, edit, status=200 if edit.ok else 422)

    async def _save(self, ctx: AdminContext, name: str, current: dict[str, str]) -> Response:
        wanted = {k: ctx.field(k) for k in ("kind", "value", "timezone")}
        try:
            edit = await ctx.call(
                ctx.publisher.save_schedule_edit,
                name,
                wanted["kind"],
                wanted["value"],
                wanted["timezone"],
                base_digest=ctx.field("base_digest"),
            )
        except ConfigError as e:  # invalid, or config.toml changed since the preview: nothing written
            preview = await ctx.call(
                ctx.publisher.plan_schedule_edit, name, wanted["kind"], wanted["value"], wanted["timezone"]
            )
            problems = [str(e).splitlines()[0]] if e.problems == [str(e)] else e.problems
            return self._page(
                ctx, name, wanted, preview, problems=problems, status=409 if preview.ok else 422
            )
        if not edit.changed:
            return ctx.redirect(BASE, done="unchanged", name=name)
        before = f"{current['kind']} {current['value']!r}, timezone {current['timezone'] or '(site)'!r}"
        after = f"{edit.kind} {edit.value!r}, timezone {edit.timezone or '(site)'!r}"
        await ctx.audit("schedule edited", f"{name}: {before} -> {after}")
        if self.console.reload is None or not await self.console.reload():
            return ctx.redirect(BASE, done="edited-unloaded", name=name)
        return ctx.redirect(
            BASE, done="edited" if self.console.reload_scope == "daemon" else "edited-here", name=name
        )

    def _page(
        self,
        ctx: AdminContext,
        name: str,
        values: dict[str, str],
        edit: ScheduleEdit | None,
        *,
        problems: list[str] | None = None,
        status: int = 200,
    ) -> Response:
        return ctx.render(
            EDIT_TEMPLATE,
            title=f"Edit schedule {name}",
            status=status,
            name=name,
            values=values,
            edit=edit,
            problems=problems if problems is not None else (edit.problems if edit else []),
            site_zone=ctx.publisher.settings.site.timezone,
            job=ctx.publisher.schedule_config(name).job.value,
        )
