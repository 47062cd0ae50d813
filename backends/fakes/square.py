"""Square's Orders API on a loopback port, as the `square` webhook source reads it.

Speaks `GET /v2/orders/{order_id}` (RetrieveOrder: `{"order": {...}}`) and
`POST /v2/orders/batch-retrieve` (`{"order_ids": [...]}` → `{"orders": [...]}`), with
`Authorization: Bearer <token>` checked and Square's error shape
(`{"errors": [{"category", "code", "detail", "field"?}]}`).

Knobs: `latency` (seconds before each answer), `status` (answer every request with this
error status, e.g. 503, until set back to 200), `requests` (each request's path and
`Square-Version`, as received).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from backends.fakes.loopback import loopback

TOKEN = "EAAAl-fake-square-access-token"


def _errors(status: int, category: str, code: str, detail: str, **extra: str) -> web.Response:
    error = {"category": category, "code": code, "detail": detail, **extra}
    return web.json_response({"errors": [error]}, status=status)


class FakeSquare:
    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.orders: dict[str, dict[str, Any]] = {}
        self.latency = 0.0
        self.status = 200
        self.requests: list[tuple[str, str | None]] = []
        self.base = ""

    def add_order(self, order: dict[str, Any]) -> None:
        self.orders[str(order["id"])] = order

    def square_section(self) -> dict[str, str]:
        """The `[square]` section of a program that reads orders here."""
        return {"base_url": self.base, "token": self.token}

    async def _gate(self, request: web.Request) -> web.Response | None:
        self.requests.append((request.path, request.headers.get("Square-Version")))
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.status >= 500:
            return _errors(self.status, "API_ERROR", "SERVICE_UNAVAILABLE", "try again later")
        if self.status == 429:
            return _errors(429, "RATE_LIMIT_ERROR", "RATE_LIMITED", "too many requests")
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _errors(
                401,
                "AUTHENTICATION_ERROR",
                "UNAUTHORIZED",
                "This request could not be authorized.",
            )
        return None

    async def _retrieve(self, request: web.Request) -> web.Response:
        refused = await self._gate(request)
        if refused is not None:
            return refused
        order_id = request.match_info["order_id"]
        order = self.orders.get(order_id)
        if order is None:
            return _errors(
                404,
                "INVALID_REQUEST_ERROR",
                "NOT_FOUND",
                f"Order with id `{order_id}` not found.",
                field="order_id",
            )
        return web.json_response({"order": order})

    async def _batch(self, request: web.Request) -> web.Response:
        refused = await self._gate(request)
        if refused is not None:
            return refused
        try:
            body = await request.json()
        except ValueError:
            body = None
        ids = body.get("order_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not ids or len(ids) > 100:
            return _errors(
                400,
                "INVALID_REQUEST_ERROR",
                "INVALID_ARRAY_LENGTH" if isinstance(ids, list) else "MISSING_REQUIRED_PARAMETER",
                "order_ids must list 1 to 100 order ids",
                field="order_ids",
            )
        found = [self.orders[str(i)] for i in ids if str(i) in self.orders]
        return web.json_response({"orders": found} if found else {})

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[FakeSquare]:
        app = web.Application()
        app.router.add_get("/v2/orders/{order_id}", self._retrieve)
        app.router.add_post("/v2/orders/batch-retrieve", self._batch)
        async with loopback(app) as self.base:
            yield self
