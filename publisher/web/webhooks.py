"""``POST /webhooks/bounces/{provider}``: bounce and complaint notifications from mail providers.

The handler only reads the body, bounded, and hands it to
:meth:`Publisher.handle_bounce_webhook`, which authenticates it (SNS signature and
topic, or the generic bearer secret) before anything is recorded; see
publisher.bounces.webhooks for the rules. Only a POST acts: any other method, GET and HEAD
included, gets 405 with ``Allow: POST`` (plain text, as every error here: see
publisher.web.errors) and changes nothing.

The body is read up to :data:`WEBHOOK_MAX_BYTES` within ``[web] header_timeout``; a
larger one is refused with 413 before it is read. SNS messages are at most 256 KiB,
and JSON escaping of the SES notification inside one can nearly double that.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from publisher.app import Publisher
from publisher.web.subscribers import read_small_body

WEBHOOK_MAX_BYTES = 512 * 1024


def routes(publisher: Publisher) -> list[Route]:
    async def bounce_webhook(request: Request) -> Response:
        body = await read_small_body(request, WEBHOOK_MAX_BYTES, publisher.settings.web.header_timeout)
        provider = request.path_params["provider"]
        result = await asyncio.to_thread(
            publisher.handle_bounce_webhook, provider, dict(request.headers), body
        )
        headers = {"WWW-Authenticate": 'Bearer realm="bounces"'} if result.status == 401 else None
        return JSONResponse(result.as_json(), status_code=result.status, headers=headers)

    return [Route("/webhooks/bounces/{provider}", bounce_webhook, methods=["POST"])]
