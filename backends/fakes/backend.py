"""What the fakes of the CRM and the store share: a loopback aiohttp server, a count of
the calls, and the knobs the tests turn to make the backend slow, failing or wrong.

    latency      seconds every answer waits before it is given
    failures     HTTP statuses the next calls answer with, one per call (500, 503, ...)
    throttle     the next call answers 429 with this Retry-After (seconds), once
    hang         never answers (until the client gives up)
    outage       drops every connection without an answer
    malformed    answers 200 with a body that is not JSON
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Self

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
BODY = web.RequestKey("json_body", object)  # the JSON body, parsed once (None: not JSON)


def json_body(request: web.Request) -> Any:
    """The JSON body of the request being answered (not of the last one to arrive: with
    latency, several are answered at once)."""
    return request.get(BODY)


class FakeBackend:
    """Subclasses add their routes in `routes()` and wrap each handler in `knobs`."""

    def __init__(self) -> None:
        self.base = ""
        self.calls = 0  # requests that reached a route, whatever they were answered
        self.requests: list[Any] = []  # their JSON bodies, in order
        self.windows: list[tuple[float, float]] = []  # when each answered call began and ended
        self.latency = 0.0
        self.failures: list[int] = []
        self.throttle: float | None = None
        self.hang = False
        self.outage = False
        self.malformed = False

    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    def reset(self) -> None:
        """Every knob back to a healthy, fast backend; the counts to zero."""
        self.calls = 0
        self.requests.clear()
        self.windows.clear()
        self.latency = 0.0
        self.failures.clear()
        self.throttle = None
        self.hang = self.outage = self.malformed = False

    def knobs(self, handler: Handler) -> Handler:
        async def turned(request: web.Request) -> web.StreamResponse:
            began = time.monotonic()
            try:
                return await self._turned(handler, request)
            finally:
                self.windows.append((began, time.monotonic()))

        return turned

    async def _turned(self, handler: Handler, request: web.Request) -> web.StreamResponse:
        self.calls += 1
        if request.can_read_body:
            try:
                request[BODY] = await request.json()
            except ValueError:
                request[BODY] = None
            self.requests.append(request[BODY])
        if self.outage:
            assert request.transport is not None
            request.transport.close()
            raise asyncio.CancelledError  # the connection is gone: no answer
        if self.hang:
            await asyncio.sleep(3600)
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.throttle is not None:
            wait, self.throttle = self.throttle, None
            return web.json_response(
                {"status": "error", "message": "rate limited", "category": "RATE_LIMITS"},
                status=429,
                headers={"Retry-After": f"{wait:g}"},
            )
        if self.failures:
            return web.json_response(
                {"status": "error", "message": "internal error"}, status=self.failures.pop(0)
            )
        if self.malformed:
            return web.Response(text='{"results": [', content_type="application/json")
        return await handler(request)

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[Self]:
        app = web.Application()
        app.add_routes(self.routes())
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            yield self
        finally:
            await runner.cleanup()
