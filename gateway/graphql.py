"""`/graphql`: GraphQL over HTTP (POST JSON; GET for queries only), GraphiQL, and
subscriptions over WebSocket (`graphql-transport-ws`, see `gateway.websocket`).

Before the schema sees a request: a request id, a cap on the body, the bearer token
(a partner token of ours or a member token of a program's identity provider), and the
caller's rate limit. Each operation has a time limit. A document with a compiled plan
is answered by the planned entry (`gateway.planned_entry`) before Strawberry's view.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from cross_web import HTTPException, StarletteRequestAdapter
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from auth.members import IdentityProviderUnavailable
from auth.principals import Anonymous, Authenticator, Partner, Principal, Shopper
from auth.tokens import InvalidToken
from backends.registry import Backends
from events.bus import Hub
from gateway import pages, unavailable
from gateway.http_body import (
    MAX_BODY_BYTES,
    Refusal,
    authorization,
    content_length,
    decode_json,
    encode_json,
    read_body,
    replay,
)
from gateway.live import LiveTransportHandler, encoded
from gateway.metrics import Metrics
from gateway.persisted import PersistedQueries, PersistedQueryError
from gateway.planned_entry import answer_planned
from gateway.plans import Plans
from gateway.ratelimit import RateLimiter
from gateway.websocket import (
    CLOSE_RATE_LIMITED,
    RATE_LIMITED_REASON,
    ConnectionContext,
    RevocationWatch,
    SocketRefusal,
)
from ledger.db import Database, is_unavailable
from ledger.service import LoyaltyService
from resolvers.context import Context
from resolvers.errors import SERVICE_UNAVAILABLE
from schema.errors import coded

log = logging.getLogger("loyalty.graphql")

HTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 408: "REQUEST_TIMEOUT"}
GRAPHQL_RESPONSE = "application/graphql-response+json"


_INVALID = {"WWW-Authenticate": 'Bearer realm="loyalty-gateway", error="invalid_token"'}


async def _principal(authenticator: Authenticator, header: str | None) -> Principal:
    """Who is calling; a token that does not check out is a 401, an identity provider
    that cannot be reached a 503."""
    try:
        return await authenticator.principal(header)
    except IdentityProviderUnavailable as exc:
        log.warning("member token not checked: %s", exc)
        raise Refusal(
            503, "BACKEND_UNAVAILABLE", "the identity provider cannot be reached now"
        ) from None
    except InvalidToken as exc:
        log.info("token refused: %s", exc)
        raise Refusal(401, "UNAUTHENTICATED", "invalid or expired token", _INVALID) from None
    except Exception as exc:  # the revocation lookup reads the database
        if not is_unavailable(exc):
            raise
        log.warning("token not checked, database unavailable: %r", exc)
        raise Refusal(503, SERVICE_UNAVAILABLE, unavailable.MESSAGE, unavailable.HEADERS) from None


def _caller(principal: Principal, request: HTTPConnection) -> str:
    if isinstance(principal, Partner):
        return f"client:{principal.client_id}"
    if isinstance(principal, Shopper):
        return f"member:{principal.program_id}:{principal.customer_id}"
    return f"address:{request.client.host if request.client else '-'}"


class RequestAdapter(StarletteRequestAdapter):
    """Strawberry's view of the request, with the request's state (what the planned
    entry found in the body) in reach of `parse_http_body`."""

    def __init__(self, request: Request) -> None:
        super().__init__(request)
        self.state = request.state


class GraphQLEndpoint(GraphQL[Context, None]):
    """Strawberry's ASGI view behind authentication, body and rate limits."""

    graphql_transport_ws_handler_class = LiveTransportHandler
    request_adapter_class = RequestAdapter

    def __init__(
        self,
        schema: Any,
        *,
        service: LoyaltyService,
        database: Callable[[], Database],
        authenticator: Callable[[], Authenticator],
        rate_limiter: RateLimiter,
        metrics: Metrics,
        introspection: bool,
        clock: Callable[[], datetime],
        timeout: float,
        hub: Hub,
        allowed_origins: Sequence[str] = (),
        connection_init_timeout: float = 10,
        max_subscriptions: int = 20,
        revocations: RevocationWatch | None = None,
        backends: Callable[[], Backends | None] = lambda: None,
        persisted: PersistedQueries | None = None,
        plans: bool = True,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if introspection else None,
            allow_queries_via_get=True,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),  # never legacy graphql-ws
            connection_init_wait_timeout=timedelta(seconds=connection_init_timeout),
            max_subscriptions_per_connection=max_subscriptions,
            allowed_origins=allowed_origins,  # a browser page of another origin: refused
        )
        self.hub = hub
        self.revocations = revocations
        self.service = service
        self.database = database
        self.authenticator = authenticator
        self.backends = backends
        self.rate_limiter = rate_limiter
        self.metrics = metrics
        self.clock = clock
        self.timeout = timeout
        self.suggestions = introspection
        self.persisted = persisted or PersistedQueries()
        self.plans: Plans | None = Plans(schema._schema) if plans else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            self.metrics.connections.inc()
            try:
                # Opening a socket counts against the address, as an anonymous request.
                socket = WebSocket(scope, receive, send)
                verdict = await self.rate_limiter.hit(_caller(Anonymous(), socket))
                if verdict.allowed:
                    await super().__call__(scope, receive, send)
                else:
                    await self._refuse_socket(socket)
            finally:
                self.metrics.connections.dec()
            return
        request_id = uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id  # the access log's, refused or not
        request = Request(scope)
        try:
            length = content_length(request)
            if length > MAX_BODY_BYTES:
                raise Refusal(413, "BAD_REQUEST", f"request body over {MAX_BODY_BYTES} bytes")
            body = await read_body(receive)
            try:
                principal = await _principal(self.authenticator(), authorization(request))
            except Refusal as refused:
                if refused.status == 401:  # no free token guessing; an outage is no guess
                    await self._limit(_caller(Anonymous(), request))
                raise
            await self._limit(_caller(principal, request))
        except Refusal as refusal:
            await self._refuse(refusal, scope, send, request_id)
            return
        state["principal"] = principal
        started: list[bool] = []
        sender = self._sender(send, request_id, state, started)
        try:
            async with asyncio.timeout(self.timeout):
                if not await answer_planned(self, request, body, sender):
                    await self._answer(scope, replay(body), sender, request_id)
        except TimeoutError:
            if not started:
                late = Refusal(504, "TIMEOUT", f"the operation took over {self.timeout:g} s")
                await self._refuse(late, scope, send, request_id)
        finally:
            context = state.get("context")
            if context is not None:
                await context.close()  # the request's read transaction

    async def _limit(self, caller: str) -> None:
        verdict = await self.rate_limiter.hit(caller)
        if not verdict.allowed:
            raise Refusal(
                429,
                "RATE_LIMITED",
                "too many requests; retry later",
                {"Retry-After": str(verdict.retry_after)},
            )

    async def _refuse_socket(self, websocket: WebSocket) -> None:
        """Over the limit at the handshake: accepted only to be closed with 4429, in the
        protocol the client asked for, before any message is read."""
        self.metrics.errors.labels("RATE_LIMITED").inc()
        log.info("WebSocket refused: rate limited")
        ours = GRAPHQL_TRANSPORT_WS_PROTOCOL in (websocket.scope.get("subprotocols") or [])
        await websocket.accept(subprotocol=GRAPHQL_TRANSPORT_WS_PROTOCOL if ours else None)
        await websocket.close(CLOSE_RATE_LIMITED, RATE_LIMITED_REASON)

    async def _refuse(
        self, refusal: Refusal, scope: Scope, send: Send, request_id: str = "-"
    ) -> None:
        self.metrics.errors.labels(refusal.code).inc()
        await refusal.response(request_id)(scope, replay(b""), send)

    def _sender(
        self, send: Send, request_id: str, state: dict[str, Any], started: list[bool]
    ) -> Send:
        """`send` with the request id, and the status, headers and media type the answer
        put in the request's state."""

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                started.append(True)
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"x-request-id"]
                headers.append((b"x-request-id", request_id.encode()))
                headers += [
                    (k.lower().encode(), v.encode()) for k, v in state.get("headers", {}).items()
                ]
                if "media_type" in state:
                    headers = [(k, v) for k, v in headers if k.lower() != b"content-type"]
                    headers.append(
                        (b"content-type", f"{state['media_type']}; charset=utf-8".encode())
                    )
                message = {
                    **message,
                    "headers": headers,
                    "status": state.get("status", message["status"]),
                }
            await send(message)

        return send_with_id

    def persisted_refusal(self, refused: PersistedQueryError, request_id: str) -> Response:
        self.metrics.errors.labels(refused.code).inc()
        # An unknown hash must not be cached by a CDN: the text may be there next time.
        headers = {"Cache-Control": "private, no-cache, must-revalidate"}
        return Refusal(refused.status, refused.code, refused.message, headers).response(request_id)

    async def _answer(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        try:
            response = await self.run(Request(scope, receive))
        except HTTPException as refused:  # strawberry's refusals, as GraphQL errors
            code = HTTP_CODES.get(refused.status_code, "BAD_REQUEST")
            self.metrics.errors.labels(code).inc()
            response = Refusal(refused.status_code, code, refused.reason).response(request_id)
        except PersistedQueryError as refused:
            response = self.persisted_refusal(refused, request_id)
        await response(scope, receive, send)

    async def render_graphql_ide(self, request: Any) -> Response:
        """GraphiQL from the gateway's own copies of its assets (Strawberry's page loads
        them from a CDN, so it never renders without internet)."""
        return pages.page_response(request, "graphiql.html")

    def decode_json(self, data: str | bytes) -> object:
        return decode_json(data)

    def should_render_graphql_ide(self, request: Any) -> bool:
        # A GET that names a persisted query has no `query` parameter, and is no browser.
        return "extensions" not in request.query_params and super().should_render_graphql_ide(
            request
        )

    async def parse_http_body(self, request: Any) -> GraphQLRequestData | list[GraphQLRequestData]:
        """The request, its query text looked up by hash when it is a persisted query
        (`gateway.persisted`); as the planned entry (`gateway.planned_entry`) found it,
        when it read the request and no plan answered (the body is not decoded, nor its
        hash looked up, a second time)."""
        found: GraphQLRequestData | None = getattr(request.state, "request_data", None)
        if found is not None:
            return found
        parsed = await super().parse_http_body(request)
        for data in parsed if isinstance(parsed, list) else [parsed]:
            data.query = await self.persisted.resolve(data.query, data.extensions)
        return parsed

    async def execute_single(
        self,
        request: Any,
        request_adapter: Any,
        sub_response: Any,
        context: Context,
        root_value: Any,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """The executor's answer, whose first without an error teaches the plans the
        document (`gateway.plans`). A planned document reaches it only when its plan gave
        up, or by a request the planned entry does not read (another content type, a
        streamed answer asked for by `Accept`; a batch is refused): the executor answers
        those, as exactly, without the plan."""
        plans = self.plans
        query, name = request_data.query, request_data.operation_name
        result = await super().execute_single(
            request=request,
            request_adapter=request_adapter,
            sub_response=sub_response,
            context=context,
            root_value=root_value,
            request_data=request_data,
        )
        if plans is not None and not plans.known(query, name):
            plans.learn(query, name, result)
        return result

    def encode_json(self, data: object) -> str | bytes:
        # A subscription result shared by many subscriptions was encoded once for all.
        # Text, not bytes: a WebSocket message of graphql-transport-ws is a text frame.
        text = encoded(data)
        return text if text is not None else encode_json(data).decode()

    def create_response(self, response_data: Any, sub_response: Response) -> Response:
        """Strawberry's HTTP answer, its body encoded straight to bytes."""
        response = Response(
            encode_json(response_data), status_code=200, media_type="application/json"
        )
        response.headers.raw.extend(sub_response.headers.raw)
        if sub_response.background:
            response.background = sub_response.background
        if sub_response.status_code:
            response.status_code = sub_response.status_code
        return response

    async def process_result(self, request: Any, result: ExecutionResult) -> GraphQLHTTPResponse:
        """Every error with a code, the unexpected masked; counted by code."""
        if result.errors:
            result.errors = coded(
                result.errors, request.state.request_id, suggestions=self.suggestions
            )
            for error in result.errors:
                self.metrics.errors.labels(str((error.extensions or {}).get("code"))).inc()
        answer = await super().process_result(request, result)
        if GRAPHQL_RESPONSE in request.headers.get("accept", ""):
            # GraphQL over HTTP: a request that never executed is a 400 without `data`.
            request.state.media_type = GRAPHQL_RESPONSE
            if result.data is None and result.errors and all(e.path is None for e in result.errors):
                answer.pop("data", None)
                request.state.status = 400
        if any(
            (e.extensions or {}).get("code") == SERVICE_UNAVAILABLE for e in result.errors or ()
        ):
            request.state.status, request.state.headers = 503, unavailable.HEADERS
        return answer

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """`connection_init`: the token in its payload, or the connection closes (4403);
        the caller's rate limit counts it (4429 over the limit)."""
        assert isinstance(context, ConnectionContext)
        header = context.connection_params.get("Authorization")
        if not isinstance(header, str):
            raise ConnectionRejectionError()
        try:
            principal = await self.authenticator().principal(header)
        except IdentityProviderUnavailable as exc:
            log.warning("member token not checked: %s", exc)
            raise ConnectionRejectionError() from None
        except InvalidToken as exc:
            log.info("WebSocket token refused: %s", exc)
            raise ConnectionRejectionError() from None
        if isinstance(principal, Anonymous):
            raise ConnectionRejectionError()
        assert context.websocket is not None
        if not (await self.rate_limiter.hit(_caller(principal, context.websocket))).allowed:
            self.metrics.errors.labels("RATE_LIMITED").inc()
            raise SocketRefusal(CLOSE_RATE_LIMITED, RATE_LIMITED_REASON)
        context.principal = principal
        context.guard(self.hub, header.partition(" ")[2].strip(), self.revocations)
        return UNSET  # type: ignore[no-any-return]  # a bare connection_ack

    async def get_context(self, request: Any, response: Any) -> Context:
        if isinstance(request, WebSocket):
            return ConnectionContext(
                database=self.database(),
                service=self.service,
                principal=Anonymous(),
                request_id=uuid.uuid4().hex,
                clock=self.clock,
                backends=self.backends(),
                hub=self.hub,
                websocket=response,
            )
        context = self.new_context(request.state.principal, request.state.request_id)
        request.state.context = context
        return context

    def new_context(self, principal: Principal, request_id: str) -> Context:
        return Context(
            database=self.database(),
            service=self.service,
            principal=principal,
            request_id=request_id,
            clock=self.clock,
            backends=self.backends(),
        )
