"""The pages that digest links lead to: unsubscribe and preferences.

A GET or HEAD never changes anything: mail scanners, link checkers and previewers
follow links (``curl -I`` sends HEAD, which Starlette routes to the GET handler), and
an unsubscribe must not happen because a security gateway fetched the page. A GET
shows a page with a button; only a POST, including the RFC 8058 one-click POST that
mail clients send with body ``List-Unsubscribe=One-Click``, acts, and at once.
A forged, altered, out-of-range or unknown token, or one of a forgotten subscriber,
gets a clear "invalid link" page (400) and changes nothing.

The forms are tiny, so a POST body is read only up to :data:`FORM_MAX_BYTES` and
within ``[web] header_timeout``: a huge or trickling body is refused, not buffered.
Pages render in the template sandbox like every template; a broken or refused admin
override is logged and answered with a short error page, never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Message

from publisher.app import LinkHolder, Publisher
from publisher.errors import SubscriberError, TemplateError, TokenError
from publisher.models import ADMIN_ONLY, SubscriptionStatus

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
            {"heading": heading, "message": "", "action": "", "preferences_url": "", **context},
        )

    def _text_page(self, status: int, language: str, title: str, text: str) -> Response:
        t = self.publisher.translator(language)
        return self._page(status, language, t(title), message=t(text))

    def _invalid(self) -> Response:
        return self._text_page(400, self.publisher.page_language(), "invalid_link_title", "invalid_link_text")

    async def _verified(self, request: Request, purpose: str) -> LinkHolder | None:
        """The holder of the path's token, or None when the link is not valid."""
        try:
            return await asyncio.to_thread(self.publisher.link_holder, request.path_params["token"], purpose)
        except TokenError:
            return None

    async def _small_body(self, request: Request) -> bytes:
        return await read_small_body(request, FORM_MAX_BYTES, self.publisher.settings.web.header_timeout)

    async def unsubscribe(self, request: Request) -> Response:
        body = await self._small_body(request) if request.method == "POST" else b""
        form = await as_form(request, body) if body else FormData()
        # RFC 8058 lets a mail client send "List-Unsubscribe=One-Click" urlencoded or as
        # multipart; some send it with no content type at all.
        one_click = (
            form.get("List-Unsubscribe") == "One-Click" or body.strip() == b"List-Unsubscribe=One-Click"
        )
        holder = await self._verified(request, "unsubscribe")
        if holder is None:
            return self._invalid()
        if holder.test_copy:  # a link of `digest send --to`: nobody to unsubscribe
            return self._text_page(200, holder.language, "test_copy_title", "test_copy_text")
        t = self.publisher.translator(holder.language)
        list_name = self.list_names.get(holder.list_slug, holder.list_slug)
        base = self.publisher.settings.site.base_url
        links = {
            "form_url": str(request.url.path),
            "preferences_url": f"{base}/preferences/{holder.preferences_token}",
        }
        source = request.client.host if request.client else ""
        if request.method == "POST" and form.get("action") == "resubscribe":
            # The address is proven by its own link: no second confirmation.
            try:
                await asyncio.to_thread(self.publisher.resubscribe, holder, source=source)
            except SubscriberError:  # forgotten or removed since the token was checked
                return self._invalid()
            return self._page(200, holder.language, t("resubscribed_title", list=list_name), **links)
        if request.method == "POST":
            try:
                await asyncio.to_thread(
                    self.publisher.unsubscribe,
                    holder,
                    method="one-click" if one_click else "web",
                    source=source,
                )
            except SubscriberError:  # forgotten or removed since the token was checked
                return self._invalid()
            return self._page(
                200,
                holder.language,
                t("unsubscribed_title"),
                message=t("unsubscribed_text", list=list_name),
                action="resubscribe",
                **links,
            )
        # A GET, or a HEAD: Starlette routes it here and uvicorn drops the body.
        if not await asyncio.to_thread(self.publisher.is_subscribed, holder):
            # A used link: say so instead of offering the same button again.
            heading = t("not_subscribed_title", list=list_name)
            return self._page(200, holder.language, heading, action="resubscribe", **links)
        return self._page(
            200,
            holder.language,
            t("unsubscribe_question", list=list_name),
            action="unsubscribe",
            address=holder.email,
            **links,
        )

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
        t = self.publisher.translator(holder.language)
        message = error = ""
        language = holder.language
        if form is not None:  # a POST
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
        rows = [
            {
                "slug": slug,
                "name": name,
                "subscribed": statuses.get(slug) == SubscriptionStatus.CONFIRMED,
                "blocked": statuses.get(slug) in ADMIN_ONLY,
            }
            for slug, name in self.list_names.items()
            if slug in public or statuses.get(slug) == SubscriptionStatus.CONFIRMED
        ]
        path = str(request.url.path)
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
                "export_url": f"{path}/export",
                "forget_url": f"{path}/forget",
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

        Erasure is ``subscribers forget``'s: the address survives only as a hash, so
        the link is invalid afterwards and no import brings the address back.
        """
        form = await as_form(request, await self._small_body(request)) if request.method == "POST" else None
        holder = await self._preferences_holder(request)
        if isinstance(holder, Response):
            return holder
        t = self.publisher.translator(holder.language)
        if form is not None and form.get("confirm") == "yes":
            await asyncio.to_thread(self.publisher.forget_subscriber, holder.email)
            return self._text_page(200, holder.language, "forgotten_title", "forgotten_text")
        path = str(request.url.path)
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
                "form_url": path.removesuffix("/forget"),
            },
        )


def page_response(
    publisher: Publisher, template: str, status: int, language: str, context: dict[str, Any]
) -> Response:
    """A page from ``template``, never cached; a broken admin override gives a short 500, logged."""
    try:
        body = publisher.render_page(template, language, context)
    except TemplateError as e:
        log.error("cannot show a subscriber page: %s", e)
        return PlainTextResponse(
            "This page cannot be shown: its template has an error. The site's administrator "
            "can see why in the server log.\n",
            status_code=500,
            headers={"cache-control": "no-store"},
        )
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
