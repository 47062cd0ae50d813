"""`/graphql` over WebSocket: `graphql-transport-ws` only, authenticated in `connection_init`.

Strawberry runs the protocol; this module adds what a connection owes the gateway:

- the token comes in the `connection_init` payload (`{"Authorization": "Bearer ..."}`);
  none, or one that does not check out, closes with 4403 before anything runs;
- the connection ends (4403) when its token expires, and within moments of its
  revocation anywhere (revocations travel on the bus);
- a subscriber that falls too far behind is closed with 4413 (see `resolvers.subscriptions`);
- the context lives as long as the connection, so it holds only who is asking: lookups
  made for a subscription use a context of their own;
- every error a client is sent is coded and masked as over HTTP (`schema.errors`);
- a caller over its rate limit is closed with 4429 ("rate limited").

Revocations travel on the bus, which is fast but keeps nothing: an announcement made
while the broker is down, or while this process's listener is reconnecting, is lost.
So the revocation list itself, which the revoke wrote in its own transaction, is the
record: `RevocationWatch` reads it every few seconds for the tokens this process's
connections hold (one query per process, none without connections), and a token found
there ends its connections as an announcement would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.websockets import WebSocket, WebSocketState
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    Message,
    SubscribeMessage,
)
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError

from auth.tokens import InvalidToken, peek
from events.bus import BrokerUnavailable, Bus, Hub
from ledger.db import Database
from resolvers.context import Context
from resolvers.errors import QUERY_TOO_COMPLEX
from schema.errors import coded

if TYPE_CHECKING:
    from auth.server import AuthorizationServer

log = logging.getLogger("loyalty.websocket")

CLOSE_FORBIDDEN = 4403
CLOSE_RATE_LIMITED = 4429
RATE_LIMITED_REASON = "rate limited"
REVOCATION_CHECK = 2.0  # seconds between two reads of the revocation list


class SocketRefusal(Exception):
    """`connection_init` refused with a close code of its own (not strawberry's 4403)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class RevocationWatch:
    """The tokens this process's connections hold, checked against the revocation list
    every `interval` seconds; a revoked one is handed to the hub as if announced."""

    def __init__(self, hub: Hub, interval: float = REVOCATION_CHECK) -> None:
        self.hub = hub
        self.interval = interval
        self._held: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def holding(self, jti: str) -> Iterator[None]:
        self._held[jti] += 1
        try:
            yield
        finally:
            self._held[jti] -= 1
            if self._held[jti] <= 0:
                del self._held[jti]

    def start(self, database: Database, authorization: AuthorizationServer) -> None:
        self._task = asyncio.create_task(self._run_forever(database, authorization))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def check(self, database: Database, authorization: AuthorizationServer) -> set[str]:
        """One read of the revocation list (the copy requests check in memory, in case an
        announcement was lost); the held tokens found revoked. A held token's row is in
        that copy until the token expires, and the connection ends at its expiry anyway."""
        async with database.reading() as session:
            await authorization.revocations.load(session)
        revoked = {jti for jti in self._held if jti in authorization.revocations}
        for jti in revoked:
            self.hub.revoked(jti)
        return revoked

    async def _run_forever(self, database: Database, authorization: AuthorizationServer) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check(database, authorization)
            except (SQLAlchemyError, OSError) as exc:  # the database is away: next time
                log.warning("revocation list not read: %s", exc)


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

    def guard(self, hub: Hub, token: str, watch: RevocationWatch | None = None) -> None:
        """End the connection when the token expires or is revoked (announced on the
        bus, or found on the revocation list by `watch`)."""
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
            if watch is not None:
                self._stop.enter_context(watch.holding(jti))

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
    socket, coding every error it sends as `/graphql` over HTTP does, and tidying the
    connection's watchers at the end."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.schema = _CodedSchema(self.schema, self._coded)  # type: ignore[assignment]

    def _coded(self, errors: list[GraphQLError], events: bool = False) -> list[GraphQLError]:
        context = self.context
        request_id = context.request_id if isinstance(context, Context) else "-"
        view: Any = self.view
        suggestions = getattr(view, "suggestions", True)
        errors = coded(errors, request_id, suggestions=suggestions, events=events)
        metrics = getattr(view, "metrics", None)
        if metrics is not None:
            for error in errors:
                metrics.errors.labels(str((error.extensions or {}).get("code"))).inc()
        return errors

    async def handle_connection_init(self, message: Any) -> None:
        try:
            await super().handle_connection_init(message)
        except SocketRefusal as refusal:
            await self._close(refusal.code, refusal.reason)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        cap = self.max_subscriptions_per_connection
        over = cap is not None and len(self.operations) >= cap
        if over and self.connection_acknowledged and message["id"] not in self.operations:
            error = GraphQLError(
                "Subscription limit reached", extensions={"code": QUERY_TOO_COMPLEX}
            )
            payload = [e.formatted for e in self._coded([error])]
            await self.send_message({"id": message["id"], "type": "error", "payload": payload})
            return
        await super().handle_subscribe(message)

    async def _close(self, code: int, reason: str) -> None:
        if isinstance(self.context, ConnectionContext):
            await self.context.close_socket(code, reason)
        else:  # pragma: no cover (the gateway's context is always a ConnectionContext)
            await self.websocket.close(code, reason)

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


class _CodedSchema:
    """The schema as the handler sees it: every result it streams has its errors coded
    (validation, limits, a resolver's exception masked as INTERNAL with the request id)."""

    def __init__(
        self, schema: Any, code: Callable[[list[GraphQLError], bool], list[GraphQLError]]
    ) -> None:
        self._schema = schema
        self._code = code

    def __getattr__(self, name: str) -> Any:
        return getattr(self._schema, name)

    async def stream(self, *args: Any, **kwargs: Any) -> AsyncGenerator[Any, None]:
        return self._coded(await self._schema.stream(*args, **kwargs))

    async def _coded(self, results: AsyncGenerator[Any, None]) -> AsyncGenerator[Any, None]:
        first = True
        async with contextlib.aclosing(results):
            try:
                async for result in results:
                    if isinstance(result, ExecutionResult) and result.errors:
                        events = not isinstance(result, PreExecutionError)
                        result.errors = self._code(list(result.errors), events)
                    first = False
                    yield result
            except Exception as exc:  # noqa: BLE001 (coded: logged with the request id, masked)
                # What the schema raised instead of answering (a syntax error of the
                # parser cache, a defect) reaches the client as an error, coded.
                if isinstance(exc, GraphQLError):
                    errors = self._code([exc], not first)
                else:  # never the caller's input, whatever its class: masked
                    errors = self._code([GraphQLError(str(exc), original_error=exc)], True)
                yield PreExecutionError(None, errors) if first else ExecutionResult(None, errors)


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
        # Not lost: every process reads the revocation list for the tokens it holds.
        log.warning("revocation not announced; connections end at the next check: %s", exc)
