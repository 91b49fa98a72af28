"""The pages that digest links lead to: unsubscribe and preferences.

A GET or HEAD never changes anything: mail scanners, link checkers and previewers
follow links (``curl -I`` sends HEAD, which Starlette routes to the GET handler), and
an unsubscribe must not happen because a security gateway fetched the page. A GET
shows a page with a button; only a POST acts.
A forged, altered, out-of-range or unknown token, or one of a forgotten subscriber,
gets a clear "invalid link" page (400) and changes nothing.

Every form on these pages carries a CSRF token and an empty honeypot field
``website``, like the sign-up form. The token is :meth:`Publisher.form_token` for a
form name made of the route and the page's own link token (:func:`form_name`), so a
token shown on one subscriber's page is refused on every other page, and a request
forged from another site, which cannot read the page, has none. A missing, wrong or
day-old token is a 403 page and nothing changes. A filled honeypot gets, like the
sign-up, a plain 200 page that does not say it was caught, and nothing changes: here
the page as a GET shows it (never a false "you are unsubscribed").

The one exception is RFC 8058's one-click POST, which mail providers send to the
``List-Unsubscribe`` URL with the body ``List-Unsubscribe=One-Click`` (urlencoded,
multipart or bare) and nothing else: the mailed token is its proof. Such a body only
ever unsubscribes, whatever other fields it carries, and only on
``/unsubscribe/{token}``; every other action needs the form's token.

The forms are tiny, so a POST body is read only up to :data:`FORM_MAX_BYTES` and
within ``[web] header_timeout``: a huge or trickling body is refused, not buffered.
Pages render in the template sandbox like every template; a broken or refused admin
override is logged and answered with the site's 500 page, never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message

from publisher.app import LinkHolder, Publisher
from publisher.errors import SubscriberError, TemplateError, TokenError
from publisher.models import ADMIN_ONLY, SubscriptionStatus
from publisher.web.errors import ErrorPages

log = logging.getLogger("publisher.web")

#: The unsubscribe and preferences forms send a few dozen bytes per list.
FORM_MAX_BYTES = 8 * 1024
PAGE_TEMPLATE = "web/subscription.html.j2"
PREFERENCES_TEMPLATE = "web/preferences.html.j2"


def routes(publisher: Publisher) -> list[Route]:
    pages = SubscriberPages(publisher)
    return [
        Route("/unsubscribe/{token}", pages.unsubscribe, methods=["GET", "POST"]),
        Route("/preferences/{token}", pages.preferences, methods=["GET", "POST"]),
        Route("/preferences/{token}/export", pages.export, methods=["GET"]),
        Route("/preferences/{token}/forget", pages.forget, methods=["GET", "POST"]),
    ]


def form_name(route: str, link_token: str) -> str:
    """The name a page's CSRF token is made for: its route and the link token in its URL.

    The link token is in the MAC, so a form token taken from one subscriber's page (or
    one list's link) is refused on another's, though all are signed with one secret.
    """
    return f"{route}:{link_token}"


def is_one_click(form: FormData, body: bytes) -> bool:
    """An RFC 8058 one-click POST: ``List-Unsubscribe=One-Click``, as a form or a bare body."""
    return form.get("List-Unsubscribe") == "One-Click" or body.strip() == b"List-Unsubscribe=One-Click"


def honeypot_filled(form: FormData) -> bool:
    """True when the invisible ``website`` field has a value: a bot filled the form."""
    return bool(form.get("website"))


class SubscriberPages:
    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.list_names = publisher.list_names

    def _page(self, status: int, language: str, heading: str, **context: Any) -> Response:
        """``language`` is already a catalogue language (see :meth:`Publisher.page_language`)."""
        return page_response(
            self.publisher,
            PAGE_TEMPLATE,
            status,
            language,
            {
                "heading": heading,
                "message": "",
                "action": "",
                "preferences_url": "",
                "csrf": "",
                "form_again_url": "",
                **context,
            },
        )

    def _text_page(self, status: int, language: str, title: str, text: str) -> Response:
        t = self.publisher.translator(language)
        return self._page(status, language, t(title), message=t(text))

    def _invalid(self) -> Response:
        return self._text_page(400, self.publisher.page_language(), "invalid_link_title", "invalid_link_text")

    def _refused(self, language: str, form_again_url: str) -> Response:
        """The 403 page of a POST without this page's CSRF token: nothing was changed."""
        t = self.publisher.translator(language)
        return self._page(
            403,
            language,
            t("form_expired_title"),
            message=t("form_expired_text"),
            form_again_url=form_again_url,
        )

    async def _verified(self, request: Request, purpose: str) -> LinkHolder | None:
        """The holder of the path's token, or None when the link is not valid."""
        try:
            return await asyncio.to_thread(self.publisher.link_holder, request.path_params["token"], purpose)
        except TokenError:
            return None

    async def _small_body(self, request: Request) -> bytes:
        return await read_small_body(request, FORM_MAX_BYTES, self.publisher.settings.web.header_timeout)

    async def _csrf(self, route: str, request: Request) -> str:
        """A CSRF token for the form posting to ``route`` of this page's link."""
        name = form_name(route, request.path_params["token"])
        return await asyncio.to_thread(self.publisher.form_token, name)

    async def _csrf_ok(self, route: str, request: Request, form: FormData) -> bool:
        """Whether the POSTed ``csrf`` field is this page's token for ``route``, made within a day."""
        name = form_name(route, request.path_params["token"])
        sent = form.get("csrf")
        if not isinstance(sent, str) or not sent:
            return False
        try:
            await asyncio.to_thread(self.publisher.check_form_token, name, sent)
        except TokenError:
            return False
        return True

    async def unsubscribe(self, request: Request) -> Response:
        body = await self._small_body(request) if request.method == "POST" else b""
        form = await as_form(request, body) if body else FormData()
        holder = await self._verified(request, "unsubscribe")
        if holder is None:
            return self._invalid()
        if holder.test_copy:  # a link of `digest send --to`: nobody to unsubscribe
            return self._text_page(200, holder.language, "test_copy_title", "test_copy_text")
        t = self.publisher.translator(holder.language)
        list_name = self.list_names.get(holder.list_slug, holder.list_slug)
        base = self.publisher.settings.site.base_url
        path = str(request.url.path)
        links = {
            "form_url": path,
            "preferences_url": f"{base}/preferences/{holder.preferences_token}",
        }
        source = request.client.host if request.client else ""
        act = request.method == "POST"
        one_click = act and is_one_click(form, body)
        if act and not one_click:
            # Our own form: it must carry this page's token; a bot's filled honeypot
            # gets the page as it is, unchanged.
            if not await self._csrf_ok("unsubscribe", request, form):
                return self._refused(holder.language, path)
            act = not honeypot_filled(form)
        if act and not one_click and form.get("action") == "resubscribe":
            # The address is proven by its own link: no second confirmation.
            try:
                joined = await asyncio.to_thread(self.publisher.resubscribe, holder, source=source)
            except SubscriberError:  # forgotten or removed since the token was checked
                return self._invalid()
            if joined:
                return self._page(200, holder.language, t("resubscribed_title", list=list_name), **links)
            # A private list or a stopped address (a forged or stale form): nothing changed.
            heading = t("not_subscribed_title", list=list_name)
            refusal = await self._rejoin_refusal(holder)
            return self._page(200, holder.language, heading, message=t(refusal) if refusal else "", **links)
        csrf = await self._csrf("unsubscribe", request)
        # "Subscribe again" is offered only where it would work.
        refusal = await self._rejoin_refusal(holder)
        why_not = t(refusal) if refusal else ""
        again = {"action": "", "csrf": ""} if refusal else {"action": "resubscribe", "csrf": csrf}
        if act:  # a one-click POST (its mailed token is the proof), or our form's button
            try:
                await asyncio.to_thread(
                    self.publisher.unsubscribe,
                    holder,
                    method="one-click" if one_click else "web",
                    source=source,
                )
            except SubscriberError:  # forgotten or removed since the token was checked
                return self._invalid()
            left = t("unsubscribed_text", list=list_name)
            return self._page(
                200,
                holder.language,
                t("unsubscribed_title"),
                message=f"{left} {why_not}".strip(),
                **again,
                **links,
            )
        # A GET, a HEAD (Starlette routes it here and uvicorn drops the body), or a
        # POST whose honeypot was filled: the page as it is.
        if not await asyncio.to_thread(self.publisher.is_subscribed, holder):
            # A used link: say so instead of offering the same button again.
            heading = t("not_subscribed_title", list=list_name)
            return self._page(200, holder.language, heading, message=why_not, **again, **links)
        return self._page(
            200,
            holder.language,
            t("unsubscribe_question", list=list_name),
            action="unsubscribe",
            address=holder.email,
            csrf=csrf,
            **links,
        )

    async def _rejoin_refusal(self, holder: LinkHolder) -> str:
        """The catalogue key saying why the link's list cannot be joined here, or "" if it can."""
        if holder.list_slug not in self.publisher.public_lists:
            return "rejoin_private_text"  # "can be left, never joined from the web"
        if await asyncio.to_thread(self.publisher.join_blocked, holder):
            return "rejoin_blocked_text"
        return ""

    async def _preferences_holder(self, request: Request) -> LinkHolder | Response:
        """The preferences link's holder, or the page to answer instead (invalid, test copy)."""
        holder = await self._verified(request, "preferences")
        if holder is None:
            return self._invalid()
        if holder.test_copy:
            return self._text_page(200, holder.language, "test_copy_title", "test_copy_text")
        return holder

    async def preferences(self, request: Request) -> Response:
        form = await as_form(request, await self._small_body(request)) if request.method == "POST" else None
        holder = await self._preferences_holder(request)
        if isinstance(holder, Response):
            return holder
        path = str(request.url.path)
        t = self.publisher.translator(holder.language)
        message = error = ""
        language = holder.language
        if form is not None and not await self._csrf_ok("preferences", request, form):
            return self._refused(language, path)
        if form is not None and not honeypot_filled(form):  # a POST of our form, by a person
            source = request.client.host if request.client else ""
            try:
                if form.get("action") == "leave_all":
                    await asyncio.to_thread(self.publisher.leave_all_lists, holder, source=source)
                    message = t("left_all")
                else:
                    chosen = {str(v) for v in form.getlist("list")}
                    await asyncio.to_thread(
                        self.publisher.update_subscriptions, holder, chosen, source=source
                    )
                    requested = str(form.get("language") or "")
                    if requested:
                        try:
                            language = await asyncio.to_thread(
                                self.publisher.set_subscriber_language, holder, requested
                            )
                        except SubscriberError:
                            error = self.publisher.translator(language)("invalid_language")
                    t = self.publisher.translator(language)
                    message = "" if error else t("preferences_saved")
            except SubscriberError:  # forgotten or removed since the token was checked
                return self._invalid()
        statuses = await asyncio.to_thread(self.publisher.subscriptions_of, holder)
        public = self.publisher.public_lists
        # A bounce or complaint stops the address, not one list: nothing can be joined,
        # so no box that could only pretend to join is left enabled.
        stopped = await asyncio.to_thread(self.publisher.join_blocked, holder)
        rows = [
            {
                "slug": slug,
                "name": name,
                "subscribed": statuses.get(slug) == SubscriptionStatus.CONFIRMED,
                "blocked": statuses.get(slug) in ADMIN_ONLY
                or (stopped and statuses.get(slug) != SubscriptionStatus.CONFIRMED),
            }
            for slug, name in self.list_names.items()
            if slug in public or statuses.get(slug) == SubscriptionStatus.CONFIRMED
        ]
        return page_response(
            self.publisher,
            PREFERENCES_TEMPLATE,
            400 if error else 200,
            language,
            {
                "heading": t("preferences_title"),
                "action": "preferences",
                "message": message,
                "error": error,
                "form_url": path,
                "csrf": await self._csrf("preferences", request),
                "export_url": f"{path}/export",
                "forget_url": f"{path}/forget",
                "forget_csrf": await self._csrf("forget", request),
                "address": holder.email,
                "lists": rows,
                "languages": list(self.publisher.page_languages.items()),
                "chosen_language": language,
            },
        )

    async def export(self, request: Request) -> Response:
        """The subscriber's own data as a JSON download; a GET (or HEAD) that changes nothing."""
        holder = await self._preferences_holder(request)
        if isinstance(holder, Response):
            return holder
        try:
            data = await asyncio.to_thread(self.publisher.subscriber_data, holder)
        except SubscriberError:  # forgotten since the token was checked
            return self._invalid()
        return JSONResponse(
            data,
            headers={
                "content-disposition": 'attachment; filename="my-subscription-data.json"',
                "cache-control": "no-store",
            },
        )

    async def forget(self, request: Request) -> Response:
        """The "Erase my data" button: a GET or a first POST asks; ``confirm=yes`` erases.

        Both POSTs carry the ``forget`` CSRF token of this link (the preferences page's
        button and the question's). Erasure is ``subscribers forget``'s: the address
        survives only as a hash, so the link is invalid afterwards and no import brings
        the address back.
        """
        form = await as_form(request, await self._small_body(request)) if request.method == "POST" else None
        holder = await self._preferences_holder(request)
        if isinstance(holder, Response):
            return holder
        path = str(request.url.path)
        preferences = path.removesuffix("/forget")
        t = self.publisher.translator(holder.language)
        if form is not None:
            if not await self._csrf_ok("forget", request, form):
                return self._refused(holder.language, preferences)
            if form.get("confirm") == "yes" and not honeypot_filled(form):
                await asyncio.to_thread(self.publisher.forget_subscriber, holder.email)
                return self._text_page(200, holder.language, "forgotten_title", "forgotten_text")
        return page_response(
            self.publisher,
            PREFERENCES_TEMPLATE,
            200,
            holder.language,
            {
                "heading": t("forget_question"),
                "action": "forget",
                "message": "",
                "error": "",
                "address": holder.email,
                "forget_url": path,
                "forget_csrf": await self._csrf("forget", request),
                "form_url": preferences,
            },
        )


def page_response(
    publisher: Publisher, template: str, status: int, language: str, context: dict[str, Any]
) -> Response:
    """A page from ``template``, never cached; a broken admin override gives the site's 500
    page (saying the template has an error; the log says which), never a traceback."""
    try:
        body = publisher.render_page(template, language, context)
    except TemplateError as e:
        log.error("cannot show a subscriber page: %s", e)
        return ErrorPages(publisher).site_page(500, message_key="error_template_text")
    return HTMLResponse(body, status_code=status, headers={"cache-control": "no-store"})


async def read_small_body(request: Request, limit: int, deadline: float) -> bytes:
    """The request body if it is at most ``limit`` bytes and arrives within ``deadline`` s.

    Otherwise 413 or 408, with ``Connection: close`` so the rest is not read either.
    """
    close = {"connection": "close"}
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"The request body is larger than {limit} bytes.", headers=close)
    body = bytearray()
    try:
        async with asyncio.timeout(deadline):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise HTTPException(413, f"The request body is larger than {limit} bytes.", headers=close)
    except TimeoutError as e:
        raise HTTPException(408, "The request body did not arrive in time.", headers=close) from e
    return bytes(body)


async def as_form(request: Request, body: bytes) -> FormData:
    """Parse an already read ``body`` as the form it is (urlencoded or multipart)."""

    async def replay() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    return await Request(request.scope, replay).form()
