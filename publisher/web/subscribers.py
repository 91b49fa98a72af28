"""The pages that digest links lead to: unsubscribe and preferences.

A GET never changes anything: mail scanners and link previewers follow links, and
an unsubscribe must not happen because a security gateway fetched the page. A GET
shows a page with a button; the POST, including the RFC 8058 one-click POST that
mail clients send with body ``List-Unsubscribe=One-Click``, acts at once.
A forged, altered or unknown token gets a clear page and changes nothing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from publisher.app import Publisher
from publisher.errors import PublisherError, TokenError
from publisher.i18n import normalise_language
from publisher.models import SubscriptionStatus
from publisher.templating import make_environment, render_template, translator
from publisher.tokens import read_token, verify_token


@dataclass
class Holder:
    subscriber_id: int
    list_slug: str
    email: str
    language: str


def routes(publisher: Publisher) -> list[Route]:
    pages = SubscriberPages(publisher)
    return [
        Route("/unsubscribe/{token}", pages.unsubscribe, methods=["GET", "POST"]),
        Route("/preferences/{token}", pages.preferences, methods=["GET", "POST"]),
    ]


class SubscriberPages:
    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.env = make_environment(publisher.settings, sandboxed=False)
        self.list_names = {lst.slug: lst.name for lst in publisher.settings.lists}

    def _holder(self, token: str, purpose: str) -> Holder:
        """Verify ``token`` for ``purpose`` against the subscriber's own secret."""
        subscriber_id, list_slug, token_purpose = read_token(token)
        if token_purpose != purpose:
            raise TokenError(f"a {token_purpose} token used for {purpose}")
        sub = self.publisher.store.subscribers.get(subscriber_id)
        if sub is None or not sub.secret:
            raise TokenError("no such subscriber")
        verify_token(token, sub.secret)
        language = normalise_language(sub.language, self.publisher.settings.site.language)
        return Holder(subscriber_id, list_slug, sub.email or "", language)

    def _page(self, status: int, language: str, heading: str, **context: Any) -> HTMLResponse:
        """``language`` is already a catalogue language (see :meth:`_holder`)."""
        body = render_template(
            self.env,
            "web/subscription.html.j2",
            {
                "site": self.publisher.settings.site,
                "t": translator(language),
                "heading": heading,
                "message": "",
                "action": "",
                **context,
            },
        )
        return HTMLResponse(body, status_code=status, headers={"cache-control": "no-store"})

    def _invalid(self) -> HTMLResponse:
        language = normalise_language(self.publisher.settings.site.language)
        t = translator(language)
        return self._page(400, language, t("invalid_link_title"), message=t("invalid_link_text"))

    async def unsubscribe(self, request: Request) -> Response:
        from publisher.subscriptions import unsubscribe_by_id

        try:
            holder = await asyncio.to_thread(self._holder, request.path_params["token"], "unsubscribe")
        except PublisherError:
            return self._invalid()
        t = translator(holder.language)
        list_name = self.list_names.get(holder.list_slug, holder.list_slug)
        if request.method == "GET":
            return self._page(
                200,
                holder.language,
                t("unsubscribe_question", list=list_name),
                action="unsubscribe",
                form_url=str(request.url.path),
                address=holder.email,
            )
        body = (await request.body()).decode("utf-8", "replace")
        await asyncio.to_thread(
            unsubscribe_by_id,
            self.publisher.store,
            holder.subscriber_id,
            holder.list_slug,
            method="one-click" if "List-Unsubscribe=One-Click" in body else "web",
            source=request.client.host if request.client else "",
        )
        return self._page(
            200, holder.language, t("unsubscribed_title"), message=t("unsubscribed_text", list=list_name)
        )

    async def preferences(self, request: Request) -> Response:
        from publisher.subscriptions import preferences, update_preferences

        try:
            holder = await asyncio.to_thread(self._holder, request.path_params["token"], "preferences")
        except PublisherError:
            return self._invalid()
        store = self.publisher.store
        t = translator(holder.language)
        message = ""
        if request.method == "POST":
            chosen = {str(v) for v in (await request.form()).getlist("list")}
            current = await asyncio.to_thread(preferences, store, holder.subscriber_id)
            # Only configured lists the subscriber was ever on are offered, so only those change.
            choices = {slug: slug in chosen for slug in current if slug in self.list_names}
            await asyncio.to_thread(
                update_preferences,
                store,
                holder.subscriber_id,
                choices,
                source=request.client.host if request.client else "",
                lists=list(self.list_names),
            )
            message = t("preferences_saved")
        statuses = await asyncio.to_thread(preferences, store, holder.subscriber_id)
        rows = [
            {
                "slug": slug,
                "name": self.list_names[slug],
                "subscribed": status == SubscriptionStatus.CONFIRMED,
            }
            for slug, status in statuses.items()
            if slug in self.list_names
        ]
        return self._page(
            200,
            holder.language,
            t("preferences_title"),
            action="preferences",
            form_url=str(request.url.path),
            address=holder.email,
            lists=rows,
            message=message,
        )
