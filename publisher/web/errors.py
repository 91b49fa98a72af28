"""The web app's error answers: small HTML pages in the site's look, plain text for machines.

Every ``HTTPException`` (Starlette's 404 and 405, the 413 and 408 of a too big or too slow
body, a malformed form's 400) and every unhandled exception (500) is answered here:

- A page of the site (everything but the paths below) gets ``web/error.html.j2``: the
  site's layout and stylesheet (``web/base.html.j2``), the site's title with a link home,
  the catalogue's heading and text for the status in the site's language, and the
  status code. The request's path is never shown, so nothing from the address is
  reflected into the page. The template is overridable like every page; if it (or the
  layout it extends) cannot be rendered, a fixed page built here says the same.
- ``/admin`` pages, while the console is enabled, get ``web/admin/error.html.j2`` in the
  console's layout and headers. While it is disabled they get the site's 404 page, as
  any path that does not exist: a disabled console cannot be told from no console.
- Machine endpoints keep their plain-text contract: the bounce webhooks
  (``/webhooks/``) and ``/healthz`` answer errors as ``text/plain``.

A 405 names, in ``Allow``, the methods the path really takes: those of every route whose
path matches (``/subscribe``: ``GET, HEAD, POST``), else the ``GET, HEAD`` of public/.
A HEAD request gets the headers only (uvicorn sends no body for HEAD).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping
from http import HTTPStatus

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Match, Route

from publisher.app import Publisher
from publisher.errors import TemplateError

log = logging.getLogger("publisher.web")

TEMPLATE = "web/error.html.j2"
ADMIN_TEMPLATE = "web/admin/error.html.j2"
#: Paths whose clients are programs: their errors stay plain text.
PLAIN_PATHS = ("/webhooks/", "/healthz")
ADMIN_PREFIX = "/admin"
#: The order ``Allow`` lists methods in (others follow, sorted).
METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
#: Statuses with their own heading and text in the catalogue (``error_{status}_title``).
OWN_TEXTS = frozenset({400, 403, 404, 405, 408, 413, 500})
#: What a console error page says for a status, when the exception carries no detail.
ADMIN_TEXTS = {
    404: ("Not found", "There is no such page or record in the console."),
    405: ("Method not allowed", "This console address does not take this kind of request."),
    413: ("Too much data sent", "The form or file sent is larger than this page accepts."),
    408: ("The request took too long", "The form did not arrive in time. Go back and try again."),
    403: ("Forbidden", "This request is not allowed."),
    400: ("Bad request", "The request could not be read."),
    500: ("Something went wrong", "This page cannot be shown; the server log says why."),
}
NO_STORE = {"cache-control": "no-store"}


class ErrorPages:
    """The exception handlers of one app (``create_app`` passes them to Starlette).

    ``console_headers`` go with the console's error pages (the console's own security
    headers; passed in, since the console's module uses this one).
    """

    def __init__(self, publisher: Publisher, *, console_headers: Mapping[str, str] | None = None) -> None:
        self.publisher = publisher
        self.console_headers = dict(console_headers or {})

    async def http_exception(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        status = exc.status_code
        headers = dict(exc.headers or {})
        if status in (204, 304):  # no body by definition (Starlette's own rule)
            return Response(status_code=status, headers=headers)
        path = request.url.path
        if status == 405:
            if _is_admin(path) and not self.publisher.admin_enabled:
                return self.page(request, 404)  # as if there were no console
            headers["Allow"] = allowed_methods(request, headers.get("Allow", ""))
        return self.page(request, status, headers=headers, detail=exc.detail)

    async def server_error(self, request: Request, exc: Exception) -> Response:
        """An unhandled exception: a 500 page (the exception is logged by the server)."""
        return self.page(request, 500)

    def page(
        self,
        request: Request,
        status: int,
        *,
        headers: Mapping[str, str] | None = None,
        detail: str = "",
    ) -> Response:
        """The error answer for ``request``: plain, console or site page (see the module)."""
        path = request.url.path
        headers = dict(headers or {})
        if path.startswith(PLAIN_PATHS):
            return PlainTextResponse(f"{detail or _phrase(status)}\n", status_code=status, headers=headers)
        if _is_admin(path) and self.publisher.admin_enabled:
            return self._admin_page(status, headers, detail, path)
        return self.site_page(status, headers=headers)

    def site_page(
        self, status: int, *, headers: Mapping[str, str] | None = None, message_key: str = ""
    ) -> Response:
        """The site's error page for ``status`` in the site language (``message_key``: another text)."""
        language = self.publisher.page_language()
        t = self.publisher.translator(language)
        kind = str(status) if status in OWN_TEXTS else "other"
        heading = t(f"error_{kind}_title")
        message = t(message_key or f"error_{kind}_text")
        context = {"status": status, "heading": heading, "message": message}
        try:
            body = self.publisher.render_page(TEMPLATE, language, context)
        except TemplateError as e:
            log.error("cannot show the error page: %s", e)
            body = fallback_page(self.publisher, language, status, heading, message)
        return HTMLResponse(body, status_code=status, headers={**NO_STORE, **(headers or {})})

    def _admin_page(self, status: int, headers: dict[str, str], detail: str, path: str) -> Response:
        title, text = ADMIN_TEXTS.get(status, (_phrase(status), "This request could not be answered."))
        message = detail if detail and detail != _phrase(status) else text
        context = {
            "title": title,
            "message": message,
            "status": status,
            "nav": [],
            "user": "",
            "csrf_token": "",
            "notice": "",
            "current": path,
            "prefix": ADMIN_PREFIX,
        }
        try:
            body = self.publisher.render_page(ADMIN_TEMPLATE, "en", context)
        except TemplateError as e:
            log.error("cannot show the console's error page: %s", e)
            body = fallback_page(self.publisher, "en", status, title, message)
        return HTMLResponse(body, status_code=status, headers={**self.console_headers, **headers})


def allowed_methods(request: Request, default: str) -> str:
    """The ``Allow`` value for the request's path: the methods of every route matching it.

    No route matches a path of public/, whose files take ``default`` (``GET, HEAD``).
    """
    methods: set[str] = set()
    routes: list[BaseRoute] = list(getattr(request.app, "routes", []))
    for route in routes:
        if isinstance(route, Route) and route.methods:
            match, _scope = route.matches(request.scope)
            if match is not Match.NONE:
                methods |= route.methods
    if not methods:
        methods = {m.strip().upper() for m in default.split(",") if m.strip()} or {"GET", "HEAD"}
    ordered = [m for m in METHOD_ORDER if m in methods]
    return ", ".join(ordered + sorted(methods - set(METHOD_ORDER)))


def fallback_page(publisher: Publisher, language: str, status: int, heading: str, message: str) -> str:
    """The error page without any template: for when the template itself cannot be rendered."""
    site = publisher.settings.site
    t = publisher.translator(language)
    home = html.escape(f"{site.base_url}/")
    return (
        f'<!DOCTYPE html>\n<html lang="{html.escape(language)}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(heading)} · {html.escape(site.title)}</title>\n"
        "<style>body { margin: 0 auto; max-width: 48rem; padding: 1rem; font: 1rem/1.55 system-ui, "
        "sans-serif; overflow-wrap: anywhere; }</style>\n</head>\n<body>\n"
        f'<p><a href="{home}">{html.escape(site.title)}</a></p>\n<h1>{html.escape(heading)}</h1>\n'
        f"<p>{html.escape(message)}</p>\n"
        f'<p><a href="{home}">{html.escape(t("error_home"))}</a></p>\n'
        f"<p>{html.escape(t('error_code', status=status))}</p>\n</body>\n</html>\n"
    )


def _is_admin(path: str) -> bool:
    return path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
