"""The Stripe API on a loopback port: `GET /v1/payment_intents/{id}`, as the `stripe`
webhook source reads it (bearer key auth, Stripe's error shape).

Knobs: `intents` (the PaymentIntents it knows, by id), `status` (answer every request
with this HTTP status and a Stripe `api_error`), `latency` (seconds before answering),
`requests` (how many arrived).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from backends.fakes.loopback import loopback

API_KEY = "rk_test_51LoyaltyGatewayFakeRestrictedKey"


def _error(status: int, kind: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": {"type": kind, "message": message, **extra}}, status=status)


class FakeStripe:
    def __init__(self, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self.intents: dict[str, dict[str, Any]] = {}
        self.status = 200
        self.latency = 0.0
        self.requests = 0
        self.base = ""

    def add_intent(self, intent: dict[str, Any]) -> None:
        self.intents[intent["id"]] = intent

    async def _payment_intent(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.status != 200:
            return _error(self.status, "api_error", "An unknown error occurred")
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(401, "invalid_request_error", "Invalid API Key provided")
        intent_id = request.match_info["intent"]
        intent = self.intents.get(intent_id)
        if intent is None:
            return _error(
                404,
                "invalid_request_error",
                f"No such payment_intent: '{intent_id}'",
                code="resource_missing",
                param="intent",
            )
        return web.json_response(intent)

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[FakeStripe]:
        app = web.Application()
        app.router.add_get("/v1/payment_intents/{intent}", self._payment_intent)
        async with loopback(app) as self.base:
            yield self
