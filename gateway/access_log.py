"""The access log: one line per HTTP request, with its status, duration and request id.

`loyalty-gateway serve` writes it to standard output in place of uvicorn's own access
log (turned off there), which has neither the duration nor the request id:

    127.0.0.1:50312 - "POST /graphql HTTP/1.1" 200 3.1ms 9f1c...

The line is formatted once, by an f-string, and handed to one logger bound at import; a
process that does not enable the `loyalty.access` logger at INFO (the tests, the demo)
pays one level check a request.
"""

from __future__ import annotations

import logging
import sys
import time
from urllib.parse import quote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("loyalty.access")


def enable() -> None:
    """Write the access log to standard output (once per process)."""
    if not log.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


class AccessLog:
    """Logs each HTTP request once it is answered: 500 when it failed before any
    answer (what the server then sends), `-` when the client left before any answer
    (the server sends nothing then)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status: int | None = None
        left = False

        async def listen() -> Message:
            nonlocal left
            message = await receive()
            if message["type"] == "http.disconnect":
                left = True
            return message

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start" and not left:
                status = message["status"]  # after the client left, the server drops it
            await send(message)

        try:
            await self.app(scope, listen, watch)
        finally:
            client = scope.get("client")
            address = f"{client[0]}:{client[1]}" if client else "-"
            # Quoted as uvicorn's own access log does: the path is decoded in the scope, so
            # a `%0A` written as it is would end the line and forge the next one.
            path = quote(scope.get("root_path", "") + scope["path"])
            query = scope.get("query_string", b"")
            if query:  # as sent, as uvicorn's does
                path += "?" + query.decode("ascii", "replace")
            shown = str(status) if status is not None else "-" if left else "500"
            request_id = (scope.get("state") or {}).get("request_id", "-")
            elapsed = (time.perf_counter() - began) * 1000
            log.info(
                f'{address} - "{scope["method"]} {path} HTTP/{scope["http_version"]}" '
                f"{shown} {elapsed:.1f}ms {request_id}"
            )
