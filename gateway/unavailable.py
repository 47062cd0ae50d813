"""A database that is away or locked is a 503 with `Retry-After`, never a 500.

GraphQL requests answer it themselves (`gateway.graphql`, `schema.extensions.coded`);
`UnavailableMiddleware` catches it on every other route (OAuth, ...) and anything that
escapes: a GraphQL error body on `/graphql`, an OAuth-style one elsewhere. Other
exceptions pass through untouched, to be the 500 they are.
"""

from __future__ import annotations

import logging

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger.db import is_unavailable
from resolvers.errors import SERVICE_UNAVAILABLE, UNAVAILABLE_MESSAGE

log = logging.getLogger("loyalty.gateway")

RETRY_AFTER_SECONDS = 2
MESSAGE = UNAVAILABLE_MESSAGE
HEADERS = {"Retry-After": str(RETRY_AFTER_SECONDS)}


def graphql_body() -> dict[str, object]:
    return {"errors": [{"message": MESSAGE, "extensions": {"code": SERVICE_UNAVAILABLE}}]}


def response(path: str) -> JSONResponse:
    """The 503 for a request to `path`."""
    body: dict[str, object]
    if path.startswith("/graphql"):
        body = graphql_body()
    else:
        body = {"error": "temporarily_unavailable", "error_description": MESSAGE}
    return JSONResponse(body, status_code=503, headers={**HEADERS, "Cache-Control": "no-store"})


class UnavailableMiddleware:
    """Turns an unavailable database into a 503 when no response has started yet."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as error:
            if started or not is_unavailable(error):
                raise
            log.warning("%s %s: database unavailable: %r", scope["method"], scope["path"], error)
            await response(scope["path"])(scope, receive, send)
