"""The admin console's framework: sign-in, sessions, CSRF, page rendering, the audit log call.

Every console page is a handler ``async def page(request, ctx) -> Response`` wrapped by
:meth:`AdminConsole.page`, which guarantees, before the handler runs:

- the console is enabled (a user of ``[admin] users`` has a hash in the environment);
  otherwise every ``/admin`` path answers the site's 404 page, as if there were no console;
- the request has a live session (signed cookie, server-side row, 12 h idle limit);
  otherwise 303 to ``/admin/login?next=PATH`` (the path only if it is a local console
  path; a POST's ``next`` is the dashboard, since a redirect cannot repeat a POST);
- a POST carries the session's ``csrf_token`` in its (bounded) form body; otherwise 403
  and the handler never runs, so nothing changes.

Errors (a 404 of a record that does not exist, that 403, a 413 of a too big upload) are
raised as ``HTTPException`` and answered by :mod:`publisher.web.errors` with a page in
the console's layout and headers.

The handler gets an :class:`AdminContext`: the signed-in user, the parsed form,
``render`` (a template through :meth:`Publisher.render_page`, so sandboxed and
overridable), ``audit`` (one line in the audit log) and ``redirect`` (303 with an
optional notice). GET and HEAD handlers must not change anything; the only write a GET
makes is the session's idle-expiry touch, done here.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, ParamSpec, TypeVar
from urllib.parse import quote, unquote, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from publisher.app import AdminSession, LoginOutcome, Publisher
from publisher.errors import PublisherError, TemplateError, TokenError
from publisher.web.errors import fallback_page
from publisher.web.subscribers import as_form, read_small_body

log = logging.getLogger("publisher.web.admin")

PREFIX = "/admin"
COOKIE = "publisher_admin"
LOGIN_TEMPLATE = "web/admin/login.html.j2"
STYLESHEET = "web/admin/admin.css"
#: A console form (not an upload) sends a few hundred bytes; uploads pass their own limit.
FORM_MAX_BYTES = 64 * 1024
LOGIN_FORM = "admin-login"
#: Sent with every console response: never cached, never framed, no script at all by default.
SECURITY_HEADERS = {
    "cache-control": "no-store",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class NavEntry:
    """One link of the console's navigation bar."""

    label: str
    path: str


@dataclass
class AdminContext:
    """What a console handler works with; made by :meth:`AdminConsole.page` for one request."""

    console: AdminConsole
    request: Request
    session: AdminSession
    form: FormData = field(default_factory=FormData)

    @property
    def publisher(self) -> Publisher:
        return self.console.publisher

    @property
    def user(self) -> str:
        return self.session.username

    @property
    def csrf_token(self) -> str:
        return self.session.csrf

    @property
    def client(self) -> str:
        return client_address(self.request)

    def field(self, name: str) -> str:
        """A form field as text ('' when absent)."""
        value = self.form.get(name)
        return value if isinstance(value, str) else ""

    async def call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run a (blocking) Publisher method off the event loop."""
        return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))

    async def audit(self, action: str, detail: str = "") -> None:
        """Record an admin action: who (the session's user), when, what, from where."""
        await self.call(self.publisher.audit, self.user, action, detail, client=self.client)

    def render(self, template: str, *, title: str, status: int = 200, **context: Any) -> Response:
        """A console page: ``template`` extends ``web/admin/base.html.j2``."""
        return self.console.render(
            template,
            status=status,
            context={
                "title": title,
                "user": self.user,
                "csrf_token": self.csrf_token,
                "notice": self.console.notice(self.request),
                "current": self.request.url.path,
                **context,
            },
        )

    def redirect(self, path: str, *, done: str = "", **params: str) -> Response:
        """303 to a console ``path``; ``done`` names a notice the next page shows (see NOTICES)."""
        query = {"done": done, **params} if done else params
        return RedirectResponse(f"{path}?{urlencode(query)}" if query else path, status_code=303)


Handler = Callable[[Request, AdminContext], Awaitable[Response]]
#: Loads config.toml again and swaps it in (the daemon's SIGHUP reload); True if it worked.
Reload = Callable[[], Awaitable[bool]]
#: Whose reload it is: the daemon's (the scheduler sees the change) or only this server's.
ReloadScope = Literal["daemon", "server"]


class AdminConsole:
    """The routes' shared state: the publisher, the navigation and the notices pages can show."""

    def __init__(
        self,
        publisher: Publisher,
        nav: Sequence[NavEntry],
        notices: Mapping[str, str] | None = None,
        *,
        reload: Reload | None = None,
        reload_scope: ReloadScope = "daemon",
    ) -> None:
        self.publisher = publisher
        self.nav = list(nav)
        self.notices = dict(notices or {})
        self.reload = reload
        self.reload_scope = reload_scope
        self.secure = publisher.settings.site.base_url.startswith("https://")
        self.zone = publisher.settings.site.tz
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self, work: Coroutine[Any, Any, Any], what: str) -> None:
        """Run ``work`` after the answer (e.g. "run now"), kept referenced; a crash is logged."""
        task = asyncio.create_task(work)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            error = None if t.cancelled() else t.exception()
            if isinstance(error, PublisherError):  # e.g. the fire time is being served elsewhere
                log.error("%s failed: %s", what, error)
            elif error is not None:
                log.error("%s failed", what, exc_info=error)

        task.add_done_callback(done)

    # -- rendering -------------------------------------------------------------------------

    def when(self, value: datetime | None, zone: str | None = None) -> str:
        """A time for a console page: ``2026-11-30 09:00 CET`` in the site's (or ``zone``'s) zone."""
        if value is None:
            return "-"
        local = value.astimezone(ZoneInfo(zone) if zone else self.zone)
        return local.strftime("%Y-%m-%d %H:%M %Z")

    def notice(self, request: Request) -> str:
        """The sentence for ``?done=KEY`` (only known keys; ``{name}`` filled, escaped by the page)."""
        text = self.notices.get(request.query_params.get("done", ""))
        if text is None:
            return ""
        return text.format(name=request.query_params.get("name", "")[:100])

    def render(self, template: str, *, status: int = 200, context: Mapping[str, Any]) -> Response:
        full = {"nav": self.nav, "when": self.when, "prefix": PREFIX, **context}
        try:
            body = self.publisher.render_page(template, "en", full)
        except TemplateError as e:
            log.error("cannot show an admin page: %s", e)
            message = f"This page cannot be shown: its template has an error. {e}"
            body = fallback_page(self.publisher, "en", 500, "Template error", message)
            return HTMLResponse(body, status_code=500, headers=SECURITY_HEADERS)
        return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)

    # -- the wrapper every page goes through ------------------------------------------------

    def page(
        self,
        path: str,
        handler: Handler,
        *,
        methods: Sequence[str] = ("GET",),
        max_body: int = FORM_MAX_BYTES,
    ) -> Route:
        """A console route: enabled, signed in and (for a POST) CSRF-checked before ``handler``."""

        async def endpoint(request: Request) -> Response:
            if not self.publisher.admin_enabled:
                raise not_found()
            session = await self._session(request)
            if session is None:
                return to_login(request)
            ctx = AdminContext(self, request, session)
            if request.method == "POST":
                deadline = self.publisher.settings.web.header_timeout
                ctx.form = await as_form(request, await read_small_body(request, max_body, deadline))
                if not self.publisher.admin_csrf_ok(session, ctx.field("csrf_token")):
                    raise forbidden()
            return await handler(request, ctx)

        return Route(path, endpoint, methods=list(methods))

    async def _session(self, request: Request) -> AdminSession | None:
        cookie = request.cookies.get(COOKIE, "")
        if not cookie:
            return None
        return await asyncio.to_thread(self.publisher.admin_session, cookie)

    # -- sign-in and sign-out --------------------------------------------------------------

    def routes(self) -> list[Route]:
        """The framework's own routes: the stylesheet, sign-in and sign-out."""
        return [
            Route(f"{PREFIX}/admin.css", self.stylesheet, methods=["GET"]),
            Route(f"{PREFIX}/login", self.login, methods=["GET", "POST"]),
            self.page(f"{PREFIX}/logout", self.logout, methods=["POST"]),
        ]

    async def stylesheet(self, _request: Request) -> Response:
        if not self.publisher.admin_enabled:
            raise not_found()
        try:
            css = self.publisher.render_page(STYLESHEET, "en", {})
        except TemplateError as e:
            log.error("cannot serve the admin stylesheet: %s", e)
            css = ""
        return Response(css, media_type="text/css", headers={"cache-control": "max-age=300"})

    def _login_page(self, status: int, next_path: str, *, error: str = "", username: str = "") -> Response:
        return self.render(
            LOGIN_TEMPLATE,
            status=status,
            context={
                "title": "Sign in",
                "user": "",
                "csrf_token": self.publisher.form_token(LOGIN_FORM),
                "notice": "",
                "current": f"{PREFIX}/login",
                "next": next_path,
                "error": error,
                "username": username,
            },
        )

    async def login(self, request: Request) -> Response:
        if not self.publisher.admin_enabled:
            raise not_found()
        if request.method != "POST":
            next_path = safe_next(request.query_params.get("next", ""))
            return await asyncio.to_thread(self._login_page, 200, next_path)
        deadline = self.publisher.settings.web.header_timeout
        form = await as_form(request, await read_small_body(request, FORM_MAX_BYTES, deadline))

        def text(name: str) -> str:
            value = form.get(name)
            return value if isinstance(value, str) else ""

        next_path = safe_next(text("next"))
        try:
            await asyncio.to_thread(self.publisher.check_form_token, LOGIN_FORM, text("csrf_token"))
        except TokenError:
            raise forbidden() from None
        username = text("username")[:100]
        result = await asyncio.to_thread(
            functools.partial(
                self.publisher.admin_sign_in,
                username,
                text("password")[:1000],
                client=client_address(request),
                old_cookie=request.cookies.get(COOKIE, ""),
            )
        )
        if result.outcome is LoginOutcome.LOCKED:
            return await asyncio.to_thread(
                self._login_page,
                429,
                next_path,
                error="Too many failed sign-ins. Try again in 15 minutes.",
                username=username,
            )
        if result.outcome is LoginOutcome.WRONG:
            if result.username:  # a known user: worth a line in the audit log
                await asyncio.to_thread(
                    functools.partial(
                        self.publisher.audit,
                        result.username,
                        "sign-in failed",
                        client=client_address(request),
                    )
                )
            return await asyncio.to_thread(
                self._login_page, 401, next_path, error="Wrong user name or password.", username=username
            )
        await asyncio.to_thread(
            functools.partial(
                self.publisher.audit, result.username, "sign-in", client=client_address(request)
            )
        )
        answer = RedirectResponse(next_path, status_code=303)
        answer.set_cookie(
            COOKIE, result.cookie, path=PREFIX, httponly=True, samesite="strict", secure=self.secure
        )
        return answer

    async def logout(self, request: Request, ctx: AdminContext) -> Response:
        await ctx.call(self.publisher.admin_sign_out, request.cookies.get(COOKIE, ""))
        await ctx.audit("sign-out")
        answer = RedirectResponse(f"{PREFIX}/login", status_code=303)
        answer.delete_cookie(COOKIE, path=PREFIX, httponly=True, samesite="strict", secure=self.secure)
        return answer


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def page_number(request: Request, last: int = 99_999) -> int:
    """``?page=N`` as 1..``last``; anything else is page 1.

    A huge N would overflow SQL's OFFSET, and ``"²".isdigit()`` holds but int() refuses it:
    both were a 500.
    """
    raw = request.query_params.get("page", "1")
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < int(raw) <= last else 1


def safe_next(value: str) -> str:
    """``value`` if it is a console path on this site, else the dashboard.

    Refused: anything not starting with ``/admin`` (so no ``//host``, ``/\\host``,
    ``https:``, ``javascript:``), backslashes (browsers read them as slashes), control
    characters and whitespace (browsers strip some, which can turn ``/\\t/host`` into
    ``//host``), and anything urlsplit sees a scheme or host in. The prefix is checked
    on the path as the browser will resolve it: dot segments, encoded ones too (``%2e``,
    which browsers read as a dot), are resolved first, so ``/admin/../evil`` is
    ``/evil`` and refused; a segment hiding an encoded slash or backslash is refused.
    """
    home = f"{PREFIX}/"
    if not value or len(value) > 2000:
        return home
    if any(ord(c) < 33 or ord(c) == 127 or c == "\\" for c in value):
        return home
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or value.startswith("//"):
        return home
    path = _resolved_path(parts.path)
    if path is None or not (path == PREFIX or path.startswith(home)):
        return home
    return urlunsplit(("", "", path, parts.query, parts.fragment))


def _resolved_path(path: str) -> str | None:
    """``path`` with its dot segments resolved (RFC 3986 5.2.4, ``%2e`` read as ``.``).

    None when a segment, percent-decoded (twice, for a proxy that decodes once more),
    holds a slash or backslash: no console path does, and what a server makes of one
    is its own choice.
    """
    out: list[str] = []
    segments = path.split("/")
    for i, segment in enumerate(segments):
        decoded = unquote(unquote(segment))
        if "/" in decoded or "\\" in decoded:
            return None
        last = i == len(segments) - 1
        if decoded == ".":
            if last:
                out.append("")
        elif decoded == "..":
            if len(out) > 1:
                out.pop()
            if last:
                out.append("")
        else:
            out.append(segment)
    return "/".join(out) if out and out[0] == "" else None


def to_login(request: Request) -> Response:
    """303 to the sign-in page, remembering where a GET wanted to go."""
    wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    next_path = safe_next(wanted) if request.method in ("GET", "HEAD") else f"{PREFIX}/"
    return RedirectResponse(f"{PREFIX}/login?next={quote(next_path, safe='/')}", status_code=303)


def not_found() -> HTTPException:
    """``raise not_found()``: the console's 404 page, or the site's while the console is off."""
    return HTTPException(404)


def forbidden() -> HTTPException:
    """``raise forbidden()``: a POST without the session's (or the sign-in form's) CSRF token."""
    return HTTPException(
        403,
        "This form has expired or did not come from this console (its csrf_token is missing or wrong). "
        "Go back, reload the page and try again.",
    )
