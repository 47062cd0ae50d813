"""The demo's receiver of the program's outgoing webhooks: the store's email service,
say, on a loopback port. It verifies each delivery as a store's own code would, with the
`standardwebhooks` package, answers 204 to a verified one and 401 to any other, and keeps
the newest few so the demo's dashboard has deliveries to list from the start."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from backends.fakes.loopback import loopback

PATH = "/loyalty-events"
KEPT = 100  # the newest deliveries kept


@dataclass
class DemoReceiver:
    secret: str  # whsec_…, as in the program's [[webhooks]]
    received: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=KEPT))
    refused: int = 0
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.content.read(64 * 1024)
        try:
            payload = Webhook(self.secret).verify(body, dict(request.headers))
        except (WebhookVerificationError, ValueError):
            self.refused += 1
            return web.Response(status=401, text=json.dumps({"error": "bad signature"}))
        self.received.append(payload)
        return web.Response(status=204)

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[DemoReceiver]:
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_post(PATH, self.handle)
        async with loopback(app) as base:
            self.url = base + PATH
            yield self
