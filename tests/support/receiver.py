"""A webhook receiver for tests: a real aiohttp server on loopback that verifies every
request with the `standardwebhooks` package and answers what the test scripts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.support.server import free_port

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OLD_SECRET = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: dict[str, bool]  # secret -> whether the request verified with it
    payload: Any

    @property
    def message_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Receiver:
    """Answers `script` in turn (then `then`); `hang` holds requests until released."""

    secrets: Sequence[str] = (SECRET,)
    script: list[int] = field(default_factory=list)
    then: int = 200
    hang: bool = False
    body: bytes = b"ok"
    path: str = "/hook"
    host: str = "127.0.0.1"
    received: list[Received] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0
    released: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    port: int = 0
    redirected: int = 0  # requests that followed a redirect
    fail_first: bool = False  # answer 500 to the first request of each webhook-id
    seen: set[str] = field(default_factory=set)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.path}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        headers = {name.lower(): value for name, value in request.headers.items()}
        verified = {}
        for secret in self.secrets:
            try:
                Webhook(secret).verify(raw, headers)
                verified[secret] = True
            except WebhookVerificationError:
                verified[secret] = False
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = None
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        async with self.arrived:
            self.received.append(Received(headers, raw, verified, payload))
            self.arrived.notify_all()
        try:
            if self.hang:
                await self.released.wait()
            status = self.script.pop(0) if self.script else self.then
            if self.fail_first and headers.get("webhook-id") not in self.seen:
                self.seen.add(headers.get("webhook-id", ""))
                status = 500
            if 300 <= status < 400:
                return web.Response(status=status, headers={"Location": "/elsewhere"})
            return web.Response(status=status, body=self.body)
        finally:
            self.in_flight -= 1

    async def elsewhere(self, request: web.Request) -> web.Response:
        self.redirected += 1
        return web.Response(status=200)

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(30), self.arrived:
            await self.arrived.wait_for(lambda: len(self.received) >= count)


@asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncIterator[Receiver]:
    app = web.Application()
    app.router.add_post(receiver.path, receiver.handle)
    app.router.add_route("*", "/elsewhere", receiver.elsewhere)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    receiver.port = receiver.port or free_port()
    site = web.TCPSite(runner, receiver.host, receiver.port)
    await site.start()
    try:
        yield receiver
    finally:
        receiver.released.set()
        await runner.cleanup()
