"""The admin console assembled: its navigation, its notices and every page module's routes.

To add a page: write ``web/admin_NAME.py`` with ``routes(console) -> list[Route]`` (each
route made by ``console.page``), add its ``NavEntry`` to :data:`NAV` and its ``NOTICES``
to :data:`NOTICES`, and list its routes in :func:`routes`. See docs/architecture.md.
"""

from __future__ import annotations

from starlette.routing import Route

from publisher.app import Publisher
from publisher.web import (
    admin_audit,
    admin_dashboard,
    admin_items,
    admin_jobs,
    admin_lists,
    admin_schedules,
    admin_subscribers,
)
from publisher.web.admin import PREFIX, AdminConsole, NavEntry, Reload, ReloadScope

NAV = (
    NavEntry("Dashboard", f"{PREFIX}/"),
    NavEntry("Schedules", f"{PREFIX}/schedules"),
    NavEntry("Lists", f"{PREFIX}/lists"),
    NavEntry("Subscribers", f"{PREFIX}/subscribers"),
    NavEntry("Items", f"{PREFIX}/items"),
    NavEntry("Jobs", f"{PREFIX}/jobs"),
    NavEntry("Audit log", f"{PREFIX}/audit"),
)
NOTICES = {
    **admin_schedules.NOTICES,
    **admin_lists.NOTICES,
    **admin_subscribers.NOTICES,
    **admin_items.NOTICES,
}


def routes(
    publisher: Publisher, *, reload: Reload | None = None, reload_scope: ReloadScope = "daemon"
) -> list[Route]:
    """Every ``/admin`` route; they answer 404 while no admin can sign in (the start banner says why)."""
    console = AdminConsole(publisher, NAV, NOTICES, reload=reload, reload_scope=reload_scope)
    return [
        *console.routes(),
        *admin_dashboard.routes(console),
        *admin_schedules.routes(console),
        *admin_lists.routes(console),
        *admin_subscribers.routes(console),
        *admin_items.routes(console),
        *admin_jobs.routes(console),
        *admin_audit.routes(console),
    ]
