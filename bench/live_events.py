"""R5: one event to 1,000 subscribers, against a raw WebSocket push of the same payload.

Both servers run as their own process on this machine, measured in the same run, each
with 1,000 clients (one WebSocket each, in this process), a round of one and a round of
the other in turn after a warm-up round of each (not counted), so that what else the
shared machine runs weighs on both alike:

- the gateway (`loyalty-gateway serve`, SQLite, in-process bus): 1,000 `pointsChanged`
  subscriptions of one member; a `recordPurchase` over HTTP commits, the relay publishes,
  and the subscriptions' selection runs over the event and is sent to each;
- the floor: a bare Starlette WebSocket endpoint holding the same 1,000 connections;
  `POST /push` sends them the exact text the gateway sent, from a task, as the gateway
  does after answering the write.

The figure is the time from sending the trigger (the write, the push) until the last
client has the message: ratio = floor / gateway (1.0 = as fast as a raw push). The
gateway's figure includes the write itself (its commit): the relay publishes as soon as
the transaction commits, often before the HTTP answer reaches the writer, so the answer
is no usable start. Commit-to-client latency is that clock per client: p50 and p99.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect

from gateway.migrate import upgrade_async
from tests.support.replicas import Replica, create_client, environment
from tests.support.server import free_port

SUBSCRIBERS = 1_000
ROUNDS = 5
PROTOCOL = "graphql-transport-ws"
SUBSCRIPTION = """subscription { pointsChanged(member: {customerId: "m-0"}) {
  memberId transactionId kind delta available pending held tier occurredAt } }"""
PURCHASE = """mutation Buy($k: String!) { recordPurchase(input: {idempotencyKey: $k,
  member: {customerId: "m-0"}, orderId: $k, currency: "USD",
  lines: [{quantity: 1, unitPrice: "10.00"}]}) { userErrors { code } } }"""
ENROLL = 'mutation { enrollMember(input: {idempotencyKey: "m-0", customerId: "m-0"}) { userErrors { code } } }'  # noqa: E501

# -- the floor: a raw WebSocket push ---------------------------------------------------

_sockets: set[WebSocket] = set()
_tasks: set[asyncio.Task[None]] = set()


async def _socket(websocket: WebSocket) -> None:
    await websocket.accept()
    _sockets.add(websocket)
    try:
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect:
        pass
    finally:
        _sockets.discard(websocket)


async def _push(request: Request) -> Response:
    text = (await request.body()).decode()

    async def send_all() -> None:
        for websocket in tuple(_sockets):
            await websocket.send_text(text)

    task = asyncio.create_task(send_all())
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return Response(str(len(_sockets)))


raw_app = Starlette(
    routes=[WebSocketRoute("/ws", _socket), Route("/push", _push, methods=["POST"])]
)
RAW_SERVER = (
    "import uvicorn, sys; uvicorn.run('bench.live_events:raw_app', host='127.0.0.1', "
    "port=int(sys.argv[1]), log_level='warning')"
)

# -- clients -----------------------------------------------------------------------------


class Clients:
    """SUBSCRIBERS connections, each recording when its next message arrived."""

    def __init__(self) -> None:
        self.sockets: list[ClientConnection] = []
        self.arrivals: list[float] = []
        self.texts: list[str] = []
        self.done = asyncio.Event()
        self.readers: list[asyncio.Task[None]] = []

    def expect(self) -> None:
        self.arrivals, self.texts = [], []
        self.done.clear()

    async def read(self, socket: ClientConnection) -> None:
        async for message in socket:
            self.arrivals.append(time.perf_counter())
            self.texts.append(str(message))
            if len(self.arrivals) == len(self.sockets):
                self.done.set()

    def start_reading(self) -> None:
        self.readers = [asyncio.create_task(self.read(socket)) for socket in self.sockets]

    async def close(self) -> None:
        for socket in self.sockets:
            await socket.close()
        for reader in self.readers:
            reader.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)


async def _subscribe_all(url: str, token: str) -> Clients:
    clients = Clients()
    for n in range(SUBSCRIBERS):
        socket = await connect(url, subprotocols=[PROTOCOL], open_timeout=30)  # type: ignore[list-item]
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
        await socket.send(json.dumps(init))
        assert json.loads(await socket.recv())["type"] == "connection_ack"
        query = {"query": SUBSCRIPTION}
        await socket.send(json.dumps({"id": str(n), "type": "subscribe", "payload": query}))
        clients.sockets.append(socket)
    await asyncio.sleep(1)  # every subscription registered
    clients.start_reading()
    return clients


async def _raw_all(url: str) -> Clients:
    clients = Clients()
    for _ in range(SUBSCRIBERS):
        clients.sockets.append(await connect(url, open_timeout=30))
    clients.start_reading()
    return clients


# -- the run -----------------------------------------------------------------------------


def _report(name: str, seconds: list[float]) -> None:
    print(f"  {name:<44} {statistics.median(seconds) * 1000:8.1f} ms (median of {ROUNDS})")


@dataclass
class Rounds:
    """What the counted rounds measured, in seconds."""

    gateway: list[float] = field(default_factory=list)  # write sent → last client
    firsts: list[float] = field(default_factory=list)  # write sent → first client
    latencies: list[float] = field(default_factory=list)  # write sent → each client
    floor: list[float] = field(default_factory=list)  # push sent → last client
    # The fan-out alone, on both sides: first client → last client, once the message
    # exists (the gateway's event is published, the raw server's push begins).
    spread: list[float] = field(default_factory=list)
    floor_spread: list[float] = field(default_factory=list)
    sample: str = ""


async def _gateway_round(
    http: aiohttp.ClientSession, base: str, token: str, clients: Clients, key: str
) -> float:
    clients.expect()
    body = {"query": PURCHASE, "variables": {"k": key}}
    sent = time.perf_counter()
    headers = {"Authorization": f"Bearer {token}"}
    async with http.post(base + "/graphql", json=body, headers=headers) as answer:
        assert answer.status == 200, await answer.text()
    await asyncio.wait_for(clients.done.wait(), 60)
    return sent


async def _raw_round(
    http: aiohttp.ClientSession, base: str, clients: Clients, text: str
) -> tuple[float, float]:
    """Push sent → last client, and first client → last client."""
    clients.expect()
    sent = time.perf_counter()
    async with http.post(base + "/push", data=text) as answer:
        assert int(await answer.text()) == SUBSCRIBERS
    await asyncio.wait_for(clients.done.wait(), 60)
    return max(clients.arrivals) - sent, max(clients.arrivals) - min(clients.arrivals)


async def _rounds(
    http: aiohttp.ClientSession,
    gateway: tuple[str, str, Clients],
    raw: tuple[str, Clients],
) -> Rounds:
    """A warm-up round of each, then ROUNDS of each in turn: a change in what else the
    shared machine runs weighs on both sides alike."""
    base, token, subscribed = gateway
    raw_base, pushed = raw
    rounds = Rounds()
    for round_ in range(ROUNDS + 1):
        sent = await _gateway_round(http, base, token, subscribed, f"bench-{round_}")
        arrivals = subscribed.arrivals
        rounds.sample = subscribed.texts[0]
        floor, floor_spread = await _raw_round(http, raw_base, pushed, rounds.sample)
        if round_ == 0:
            continue  # warm-up
        rounds.gateway.append(max(arrivals) - sent)
        rounds.firsts.append(min(arrivals) - sent)
        rounds.latencies.extend(arrival - sent for arrival in arrivals)
        rounds.floor.append(floor)
        rounds.spread.append(max(arrivals) - min(arrivals))
        rounds.floor_spread.append(floor_spread)
    return rounds


async def main() -> None:
    print(f"R5: one event to {SUBSCRIBERS} subscribers (servers in their own processes)")
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}"
        await upgrade_async(url)
        port = free_port()
        env = environment(
            database_url=url,
            issuer=f"http://127.0.0.1:{port}",
            rate_limit="100000/second",
            max_subscriptions="5",
            jobs_interval="3600",
        )
        credentials = create_client(env, "acme", "members:read members:write points:write")
        gateway = Replica("bench-gateway", port, env, Path(directory))
        raw_port = free_port()
        raw = subprocess.Popen([sys.executable, "-c", RAW_SERVER, str(raw_port)])  # noqa: ASYNC220
        gateway.start()
        try:
            async with aiohttp.ClientSession() as http:
                form = {"grant_type": "client_credentials", **credentials}
                async with http.post(gateway.url + "/oauth/token", data=form) as answer:
                    token = (await answer.json())["access_token"]
                async with http.post(
                    gateway.url + "/graphql",
                    json={"query": ENROLL},
                    headers={"Authorization": f"Bearer {token}"},
                ) as answer:
                    assert answer.status == 200
                subscribed = await _subscribe_all(f"ws://127.0.0.1:{port}/graphql", token)
                pushed = await _raw_all(f"ws://127.0.0.1:{raw_port}/ws")
                try:
                    rounds = await _rounds(
                        http,
                        (gateway.url, token, subscribed),
                        (f"http://127.0.0.1:{raw_port}", pushed),
                    )
                finally:
                    await subscribed.close()
                    await pushed.close()
        finally:
            gateway.stop()
            raw.terminate()
            raw.wait(10)
    _report("raw WebSocket push: push sent → last client", rounds.floor)
    _report("gateway: write sent → first client", rounds.firsts)
    _report("gateway: write sent → last client", rounds.gateway)
    _report("raw WebSocket push: first → last client", rounds.floor_spread)
    _report("gateway: first → last client", rounds.spread)
    ratio = statistics.median(rounds.floor) / statistics.median(rounds.gateway)
    fan_out = statistics.median(rounds.floor_spread) / statistics.median(rounds.spread)
    ordered = sorted(rounds.latencies)
    p50 = ordered[len(ordered) // 2]
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(f"  ratio floor / gateway, the fan-out (first → last client): {fan_out:.2f}x")
    print(f"  ratio floor / gateway, with the write (sent → last client): {ratio:.2f}x")
    print(
        f"  commit-to-client latency at {SUBSCRIBERS}: "
        f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"
    )
    print(f"  payload: {len(rounds.sample)} bytes: {rounds.sample[:120]}...")


if __name__ == "__main__":
    asyncio.run(main())
