"""`/graphql` over WebSocket: `graphql-transport-ws` only, authenticated in `connection_init`.

Strawberry runs the protocol; this module adds what a connection owes the gateway:

- the token comes in the `connection_init` payload (`{"Authorization": "Bearer ..."}`);
  none, or one that does not check out, closes with 4403 before anything runs;
- the connection ends (4403) when its token expires, and within moments of its
  revocation anywhere (revocations travel on the bus);
- a subscriber that falls too far behind is closed with 4413 (see `resolvers.subscriptions`);
- the context lives as long as the connection, so it holds only who is asking: lookups
  made for a subscription use a context of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.websockets import WebSocket, WebSocketState
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import Message

from auth.tokens import InvalidToken, peek
from events.bus import BrokerUnavailable, Bus, Hub
from resolvers.context import Context

log = logging.getLogger("loyalty.websocket")

CLOSE_FORBIDDEN = 4403


@dataclass
class ConnectionContext(Context):
    """The context of one WebSocket connection."""

    websocket: WebSocket | None = None
    connection_params: dict[str, object] = field(default_factory=dict)
    closed: bool = False
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, repr=False)
    _stop: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, repr=False)

    def __post_init__(self) -> None:
        self.hang_up = self.close_socket

    async def close_socket(self, code: int, reason: str) -> None:
        """Close the connection once, whoever asks first."""
        if self.closed or self.websocket is None:
            return
        self.closed = True
        log.info("closing a WebSocket: %s %s", code, reason)
        if self.websocket.application_state != WebSocketState.DISCONNECTED:
            with contextlib.suppress(RuntimeError, OSError):  # the client left meanwhile
                await self.websocket.close(code, reason)

    def guard(self, hub: Hub, token: str) -> None:
        """End the connection when the token expires or is revoked."""
        try:
            _, claims = peek(token)
        except InvalidToken:  # verified a moment ago; nothing more to watch
            return
        expires = claims.get("exp")
        if isinstance(expires, int | float):
            self._spawn(self._expire(float(expires)))
        jti = claims.get("jti")
        if isinstance(jti, str) and jti:

            def revoked(revoked_jti: str) -> None:
                if revoked_jti == jti:
                    self._spawn(self.close_socket(CLOSE_FORBIDDEN, "token revoked"))

            self._stop.enter_context(hub.on_revocation(revoked))

    async def _expire(self, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.time()))
        await self.close_socket(CLOSE_FORBIDDEN, "token expired")

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def finish(self) -> None:
        """The connection is over: stop watching its token."""
        self._stop.close()
        for task in tuple(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.close()


class TransportHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """Strawberry's `graphql-transport-ws` handler, quiet once the gateway closed the
    socket, and tidying the connection's watchers at the end."""

    async def send_message(self, message: Message) -> None:
        context = self.context
        if isinstance(context, ConnectionContext) and context.closed:
            return
        await super().send_message(message)

    async def shutdown(self) -> None:
        try:
            await super().shutdown()
        finally:
            if isinstance(self.context, ConnectionContext):
                await self.context.finish()


async def announce_revocation(bus: Bus, request: Request, token: str) -> None:
    """After `/oauth/revoke`: the connections of a token now revoked, on every replica,
    close. Only a token the database holds as revoked is announced (a client cannot
    cut off another client's connections by naming their token)."""
    try:
        jti = peek(token)[1].get("jti")
    except InvalidToken:
        return
    if not isinstance(jti, str) or not jti:
        return
    async with request.app.state.database.reading() as session:
        if not await request.app.state.authorization.is_revoked(session, jti):
            return
    try:
        await bus.publish_revocation(jti)
    except BrokerUnavailable as exc:
        log.warning("revocation not announced (connections keep it until they close): %s", exc)
