"""The web sign-up: ``/subscribe`` (form and POST) and ``/confirm/{token}`` (page and POST).

A GET or HEAD never changes anything (mail scanners open confirmation links): the
confirmation page shows a button, and only its POST confirms. Every POST carries a
CSRF token (:meth:`Publisher.form_token`, a stateless HMAC keyed with a secret the
store keeps, bound to the form and its time); a missing or wrong one is a 403 and
nothing is stored. The honeypot field ``website`` is invisible to people and to
assistive technology (``aria-hidden``, ``tabindex=-1``, a label saying to leave it
empty); a bot that fills it gets the usual "check your inbox" page and nothing happens
(on the confirmation page: the page with its button again, nothing confirmed).

The sign-up POST answers the same page (200, same bytes) for every well-formed address,
whatever the store knows of it; only a malformed form (422), a bad token (403) and the
per-client limit (429) differ, and none of them depends on the address. Nor does the
time the answer takes: the sign-up itself (look-ups and writes of the address, the
confirmation mail) runs after the answer went out.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from publisher.app import LinkState, Publisher
from publisher.errors import SubscriberError, TokenError
from publisher.web.languages import accepted_language
from publisher.web.subscribers import FORM_MAX_BYTES, as_form, page_response, read_small_body

TEMPLATE = "web/signup.html.j2"
#: Each language named in itself, for the language menu.
LANGUAGE_NAMES = (("en", "English"), ("fr", "Français"), ("es", "Español"))


def routes(publisher: Publisher) -> list[Route]:
    pages = SignupPages(publisher)
    return [
        Route("/subscribe", pages.subscribe, methods=["GET", "POST"]),
        Route("/confirm/{token}", pages.confirm, methods=["GET", "POST"]),
    ]


def _client(request: Request) -> str:
    return request.client.host if request.client else ""


class SignupPages:
    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher

    def _page(self, status: int, language: str, heading_key: str, **context: Any) -> Response:
        t = self.publisher.translator(language)
        full = {
            "heading": t(heading_key),
            "message": "",
            "action": "",
            "signup_url": "",
            "preferences_url": "",
            **context,
        }
        return page_response(self.publisher, TEMPLATE, status, language, full)

    def _message(
        self, status: int, language: str, title: str, text: str, *, form_link: bool = True
    ) -> Response:
        t = self.publisher.translator(language)
        return self._page(
            status, language, title, message=t(text), signup_url="/subscribe" if form_link else ""
        )

    def _form(
        self,
        status: int,
        language: str,
        *,
        email: str = "",
        name: str = "",
        chosen: set[str],
        error: str = "",
        error_field: str = "",
    ) -> Response:
        lists = [
            {"slug": slug, "name": name_, "checked": slug in chosen}
            for slug, name_ in self.publisher.public_lists.items()
        ]
        return self._page(
            status,
            language,
            "signup_title",
            action="subscribe",
            form_url="/subscribe",
            csrf=self.publisher.form_token("subscribe"),
            email=email,
            name=name,
            languages=LANGUAGE_NAMES,
            chosen_language=language,
            lists=lists,
            consent=self.publisher.consent_text(language),
            error=error,
            error_field=error_field,
        )

    async def subscribe(self, request: Request) -> Response:
        if request.method != "POST":  # GET or HEAD: show the form, change nothing
            query = request.query_params
            header = request.headers.get("accept-language", "")
            requested = query.get("lang") or accepted_language(header, (code for code, _ in LANGUAGE_NAMES))
            language = self.publisher.page_language(requested)
            return await asyncio.to_thread(self._form, 200, language, chosen=set(query.getlist("list")))
        form = await as_form(request, await read_small_body(request, FORM_MAX_BYTES, self._deadline))
        language = self.publisher.page_language(str(form.get("language") or ""))
        try:
            await asyncio.to_thread(self.publisher.check_form_token, "subscribe", str(form.get("csrf") or ""))
        except TokenError:
            return self._message(403, language, "form_expired_title", "form_expired_text")
        if str(form.get("website") or ""):  # the honeypot: a bot filled it
            return self._message(200, language, "check_inbox_title", "check_inbox_text", form_link=False)
        email, name = str(form.get("email") or ""), str(form.get("name") or "")
        chosen = [str(v) for v in form.getlist("list")]
        try:
            self.publisher.check_signup(email, name, chosen)
        except SubscriberError as e:
            field = e.where if e.where in ("email", "name", "list") else "email"
            t = self.publisher.translator(language)
            error = {"email": t("invalid_email"), "name": e.reason, "list": t("no_list_chosen")}[field]
            return await asyncio.to_thread(
                self._form,
                422,
                language,
                email=email,
                name=name,
                chosen=set(chosen),
                error=error,
                error_field=field,
            )
        client = _client(request)
        if await asyncio.to_thread(self.publisher.signup_limited, client):  # depends on the client only
            return self._message(429, language, "rate_limited_title", "rate_limited_text", form_link=False)
        answer = self._message(200, language, "check_inbox_title", "check_inbox_text", form_link=False)
        # Everything that depends on the address (the store's look-ups and writes, the
        # mail rendered, signed and sent) runs after the answer went out, so neither the
        # page nor the time it takes tells who subscribes.
        answer.background = BackgroundTask(
            self._sign_up, email=email, name=name, language=language, lists=chosen, client=client
        )
        return answer

    async def _sign_up(self, *, email: str, name: str, language: str, lists: list[str], client: str) -> None:
        """The sign-up and its confirmation mail; a client that went over its limit since
        :meth:`subscribe` checked gets nothing (``sign_up`` counts again), like the 429."""
        result = await asyncio.to_thread(
            functools.partial(
                self.publisher.sign_up, email=email, name=name, language=language, lists=lists, client=client
            )
        )
        await self.publisher.send_signup_mail(result)

    @property
    def _deadline(self) -> float:
        return self.publisher.settings.web.header_timeout

    async def confirm(self, request: Request) -> Response:
        token = request.path_params["token"]
        form = None
        if request.method == "POST":
            form = await as_form(request, await read_small_body(request, FORM_MAX_BYTES, self._deadline))
        try:
            link = await asyncio.to_thread(self.publisher.confirm_link, token)
        except TokenError:
            return self._message(
                400, self.publisher.page_language(), "invalid_link_title", "confirm_again_text"
            )
        language = link.language
        if link.state is not LinkState.READY:
            title = "confirm_used_title" if link.state is LinkState.USED else "confirm_expired_title"
            return self._message(410, language, title, "confirm_again_text")
        t = self.publisher.translator(language)
        names = ", ".join(self.publisher.list_names.get(slug, slug) for slug in link.lists)
        if form is not None:
            try:
                await asyncio.to_thread(
                    self.publisher.check_form_token, f"confirm:{token}", str(form.get("csrf") or "")
                )
            except TokenError:
                return self._message(
                    403, language, "form_expired_title", "form_expired_text", form_link=False
                )
            if str(form.get("website") or ""):  # the honeypot: the page again, nothing confirmed
                form = None
        if form is None:  # GET or HEAD (or a bot's POST): a button, nothing changes
            return self._page(
                200,
                language,
                "confirm_title",
                message=t("confirm_question", email=link.email, lists=names),
                action="confirm",
                form_url=str(request.url.path),
                csrf=await asyncio.to_thread(self.publisher.form_token, f"confirm:{token}"),
            )
        done = await asyncio.to_thread(self.publisher.confirm_signup, token, source=_client(request))
        if done.state is not LinkState.READY:  # used by a concurrent POST in the meantime
            return self._message(410, language, "confirm_used_title", "confirm_again_text")
        return self._page(
            200,
            language,
            "confirmed_title",
            message=t("confirmed_text", lists=names),
            preferences_url=f"/preferences/{done.preferences_token}",
        )
