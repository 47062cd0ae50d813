"""Handshakes count against the rate limits of HTTP: opening a socket against the
address (as an anonymous request), `connection_init` against the client or member. Over
the limit the socket closes with 4429 "rate limited" and nothing runs."""

from __future__ import annotations

from pathlib import Path

import redis.asyncio as redis

from auth import scopes
from tests.conftest import sqlite_url
from tests.support.gateway import Gateway, running_gateway
from tests.support.live import closed_with, hub_of, initialised, raw_socket, send, until
from tests.support.operations import enroll
from tests.support.redis import RedisServer

LIMIT = "2/minute"


def _refusals(gw: Gateway) -> float:
    return float(gw.app.state.metrics.errors.labels("RATE_LIMITED")._value.get())


async def test_sockets_over_the_address_limit_close_with_4429(
    sqlite_template: Path, tmp_path: Path
) -> None:
    url = sqlite_url(sqlite_template, tmp_path)
    async with running_gateway(url, rate_limit=LIMIT) as gw:
        await enroll(gw, "ada")  # a partner's requests: its client's count, not the address's
        ada = gw.member_token("ada")
        async with raw_socket(gw.url) as first, raw_socket(gw.url) as second:
            await initialised(first, ada)
            await initialised(second, ada)
            async with raw_socket(gw.url) as third:
                assert third.subprotocol == "graphql-transport-ws"
                assert await closed_with(third) == (4429, "rate limited")
            assert _refusals(gw) == 1
            assert hub_of(gw).stats.subscriptions == 0
            # The same count as an anonymous HTTP request from the address.
            anonymous = await gw.graphql("{ tiers { name } }")
            assert (anonymous.status, anonymous.codes) == (429, ["RATE_LIMITED"])


async def test_connection_init_over_the_client_limit_closes_with_4429(
    sqlite_template: Path, tmp_path: Path
) -> None:
    url = sqlite_url(sqlite_template, tmp_path)
    async with running_gateway(url, rate_limit=LIMIT) as gw:
        token = await gw.token({scopes.MEMBERS_READ})
        for _ in range(2):  # the client's two requests of the minute, over HTTP
            assert (await gw.graphql("{ tiers { name } }", token=token)).status == 200
        async with raw_socket(gw.url) as socket:  # the address's first: opened
            await send(
                socket, {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
            )
            assert await closed_with(socket) == (4429, "rate limited")
        assert _refusals(gw) == 1
        # Another caller from the same address still connects: the address had one.
        async with raw_socket(gw.url) as socket:
            await initialised(socket, gw.member_token("ada"))
        await until(lambda: gw.app.state.metrics.connections._value.get() == 0)


async def test_handshakes_are_counted_in_redis_for_every_replica(
    sqlite_template: Path, tmp_path: Path, redis_server: RedisServer
) -> None:
    url = sqlite_url(sqlite_template, tmp_path)
    settings = {"broker_url": redis_server.url}
    async with running_gateway(url, rate_limit=LIMIT, settings=settings) as gw:
        ada = gw.member_token("ada")
        async with raw_socket(gw.url) as socket:
            await initialised(socket, ada)
        client = redis.Redis.from_url(redis_server.url)
        try:
            keys = [str(key) for key in await client.keys("LIMITS*")]
        finally:
            await client.aclose()
        assert len(keys) == 2  # the address's count and the member's
        assert any("address:127.0.0.1" in key for key in keys)
        assert any("member:test:ada" in key for key in keys)
