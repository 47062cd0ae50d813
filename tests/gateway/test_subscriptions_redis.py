"""The gateway with a Redis broker: events reach subscribers through Redis, writes go on
while Redis is down and their events arrive once it is back; rate-limit counts live in
Redis, shared by every replica."""

from __future__ import annotations

import redis.asyncio as redis

from tests.support.gateway import running_gateway
from tests.support.live import POINTS_CHANGED, Stream, gql_session, hub_of, until
from tests.support.operations import buy, enroll, line
from tests.support.redis import RedisServer


async def test_redis_down_mid_stream(database_url: str, redis_server: RedisServer) -> None:
    settings = {"broker_url": redis_server.url}
    async with running_gateway(database_url, settings=settings) as gw:
        bus = gw.app.state.bus
        await until(lambda: bus.ready)
        await enroll(gw, "ada")
        async with gql_session(gw.url, gw.member_token("ada")) as session:
            stream = Stream(session, POINTS_CHANGED, {})
            await until(lambda: hub_of(gw).stats.subscriptions == 1)
            await buy(gw, "ada", "o-1", line("10.00"))
            assert (await stream.next())["pointsChanged"]["pending"] == 10

            redis_server.stop()
            for n in range(2, 5):  # writes keep succeeding, answered from the ledger
                bought = await buy(gw, "ada", f"o-{n}", line("10.00"))
                assert bought["userErrors"] == []
                assert bought["member"]["points"]["pending"] == 10 * n
            assert stream.results.empty()

            redis_server.start()
            pendings = [
                (await stream.next(within=10))["pointsChanged"]["pending"] for _ in range(3)
            ]
            assert pendings == [20, 30, 40]
            await stream.stop()


async def test_rate_limit_counts_are_kept_in_redis(
    database_url: str, redis_server: RedisServer
) -> None:
    settings = {"broker_url": redis_server.url}
    async with running_gateway(database_url, rate_limit="3/minute", settings=settings) as gw:
        token = await gw.token()
        statuses = [(await gw.graphql("{ tiers { name } }", token=token)).status for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        client = redis.Redis.from_url(redis_server.url)
        try:
            keys = await client.keys("LIMITS*")
        finally:
            await client.aclose()
        assert len(keys) >= 1
