"""`POST /webhooks/{program}/{source}`: platforms' webhooks in (DESIGN §7).

Thin: an unknown program, an unknown source or one the program gives no secret is 404
(the same answer for all three); the per (program, source) rate limit (429); the body
capped at `MAX_BODY_BYTES` (413) and read within `BODY_TIMEOUT` (408); then the
common flow of `backends.receiving` under the operation timeout (503 past it).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

import aiohttp
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from backends import receiving
from backends.inbound import Delivery, sources
from gateway.ratelimit import RateLimiter
from ledger.db import Database
from ledger.service import LoyaltyService

log = logging.getLogger("loyalty.webhooks.in")

MAX_BODY_BYTES = 1024 * 1024
BODY_TIMEOUT = 10.0  # seconds a platform may take to send its body


class _Refusal(Exception):
    def __init__(self, status: int, code: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.code, self.reason = status, code, reason


def _json(status: int, body: dict[str, object], headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body),
        status_code=status,
        headers={"Cache-Control": "no-store", **(headers or {})},
        media_type="application/json",
    )


def _not_found() -> Response:
    return _json(404, {"error": "NOT_FOUND", "reason": "no such webhook endpoint"})


async def _body(request: Request) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and (not length.isascii() or not length.isdigit() or len(length) > 12):
        raise _Refusal(400, "BAD_REQUEST", "malformed Content-Length")
    if length is not None and int(length) > MAX_BODY_BYTES:
        raise _Refusal(413, "PAYLOAD_TOO_LARGE", f"body over {MAX_BODY_BYTES} bytes")
    body = bytearray()
    try:
        async with asyncio.timeout(BODY_TIMEOUT):
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise _Refusal(413, "PAYLOAD_TOO_LARGE", f"body over {MAX_BODY_BYTES} bytes")
    except TimeoutError:
        raise _Refusal(408, "REQUEST_TIMEOUT", "the body took too long") from None
    except ClientDisconnect:
        raise _Refusal(400, "BAD_REQUEST", "the client went away") from None
    return bytes(body)


class InboundWebhooks:
    """The endpoint; the database and HTTP session come from the lifespan."""

    def __init__(
        self,
        service: LoyaltyService,
        database: Callable[[], Database],
        http: Callable[[], aiohttp.ClientSession],
        rate_limiter: RateLimiter,
        timeout: float,
    ) -> None:
        self.service = service
        self.database = database
        self.http = http
        self.rate_limiter = rate_limiter
        self.timeout = timeout

    async def endpoint(self, request: Request) -> Response:
        program = self.service.programs.get(request.path_params["program"])
        source = sources().get(request.path_params["source"])
        if program is None or source is None or not source.secrets(program):
            return _not_found()
        verdict = await self.rate_limiter.hit(f"webhooks:{program.id}:{source.name}")
        if not verdict.allowed:
            return _json(
                429,
                {"error": "RATE_LIMITED", "reason": "too many deliveries; retry later"},
                {"Retry-After": str(verdict.retry_after)},
            )
        try:
            body = await _body(request)
        except _Refusal as refusal:
            return _json(refusal.status, {"error": refusal.code, "reason": refusal.reason})
        delivery = Delivery(
            program=program,
            source=source.name,
            body=body,
            headers={name.lower(): value for name, value in request.headers.items()},
            received_at=self.service.clock(),
            http=self.http(),
        )
        try:
            async with asyncio.timeout(self.timeout):
                answer = await receiving.receive(self.service, self.database(), source, delivery)
        except TimeoutError:
            log.warning("%s/%s: no answer within %s s", program.id, source.name, self.timeout)
            answer = receiving.unavailable("the delivery took too long; retry later")
        return _json(
            answer.status, source.response_body(answer.status, answer.body), answer.headers
        )
