"""Clients of the gateway's WebSocket: gql (`graphql-transport-ws`) for subscriptions,
and the bare `websockets` client for what gql hides (close codes, other protocols)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

from gql import Client, GraphQLRequest
from gql.client import AsyncClientSession
from gql.transport.websockets import WebsocketsTransport
from websockets.asyncio.client import ClientConnection, connect

from events.bus import Hub
from tests.support.gateway import Gateway

PROTOCOL = "graphql-transport-ws"

POINTS_CHANGED = """
subscription Points($member: MemberRef) {
  pointsChanged(member: $member) {
    memberId transactionId kind delta available pending held tier occurredAt
  }
}"""

TIER_CHANGED = """
subscription Tier($member: MemberRef) {
  tierChanged(member: $member) { memberId from to occurredAt }
}"""


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://", 1) + "/graphql"


def hub_of(gw: Gateway) -> Hub:
    hub: Hub = gw.app.state.bus.hub
    return hub


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 (a counter of the server's, not an event)
            await asyncio.sleep(0.01)


@asynccontextmanager
async def gql_session(url: str, token: str) -> AsyncIterator[AsyncClientSession]:
    transport = WebsocketsTransport(
        url=ws_url(url),
        init_payload={"Authorization": f"Bearer {token}"},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        close_timeout=2,
    )
    async with Client(transport=transport) as session:
        yield session


class Stream:
    """A subscription's results, read in the background into a queue."""

    def __init__(self, session: AsyncClientSession, query: str, variables: dict[str, Any]):
        self.results: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        request = GraphQLRequest(query, variable_values=variables)
        self.task = asyncio.create_task(self._read(session, request))

    async def _read(self, session: AsyncClientSession, request: GraphQLRequest) -> None:
        async for result in session.subscribe(request):
            await self.results.put(result)

    async def next(self, within: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(within):
            return await self.results.get()

    async def stop(self) -> None:
        self.task.cancel()
        with suppress(asyncio.CancelledError):
            await self.task


@asynccontextmanager
async def raw_socket(
    url: str, *, subprotocols: tuple[str, ...] = (PROTOCOL,), origin: str | None = None
) -> AsyncIterator[ClientConnection]:
    headers = {"Origin": origin} if origin else None
    async with connect(
        ws_url(url),
        subprotocols=list(subprotocols),  # type: ignore[arg-type]
        additional_headers=headers,
        open_timeout=5,
        close_timeout=2,
    ) as socket:
        yield socket


async def send(socket: ClientConnection, message: dict[str, Any]) -> None:
    await socket.send(json.dumps(message))


async def receive(socket: ClientConnection, within: float = 5.0) -> dict[str, Any]:
    async with asyncio.timeout(within):
        answer: dict[str, Any] = json.loads(await socket.recv())
    return answer


async def initialised(socket: ClientConnection, token: str) -> None:
    await send(socket, {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
    answer = await receive(socket)
    assert answer == {"type": "connection_ack"}, answer


async def closed_with(socket: ClientConnection, within: float = 5.0) -> tuple[int, str]:
    """The close code and reason once the server has closed the socket."""
    async with asyncio.timeout(within):
        await socket.wait_closed()
    assert socket.close_code is not None
    return socket.close_code, socket.close_reason or ""
