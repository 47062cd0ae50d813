"""The hub (bounded queues, repeats dropped, types filtered) and the Redis bus against a
real redis-server: two buses stand for two replicas."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from events.bus import BrokerUnavailable, Event, Hub, RedisBus, SlowConsumer
from tests.support.redis import RedisServer


def event(id_: int, member: int = 1, type_: str = "points.earned") -> Event:
    return Event(id_, "test", type_, member, {"memberId": str(member), "delta": id_})


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not condition():  # noqa: ASYNC110 (state of the bus, not an event)
            await asyncio.sleep(0.01)


async def test_a_subscription_gets_its_members_events_of_its_types_once() -> None:
    hub = Hub()
    with hub.subscribe("test", 1, {"points.earned"}) as subscription:
        hub.deliver(event(1))
        hub.deliver(event(1))  # published again
        hub.deliver(event(2, member=2))
        hub.deliver(event(3, type_="tier.changed"))
        hub.deliver(Event(4, "other", "points.earned", 1, {}))
        hub.deliver(event(5))
        assert [(await anext(subscription)).id for _ in range(2)] == [1, 5]
        assert subscription.waiting == 0
        assert hub.stats.subscriptions == 1
    assert hub.stats.subscriptions == 0
    assert hub.stats.delivered == 2


async def test_a_full_queue_cuts_the_subscriber_off_and_frees_its_events() -> None:
    hub = Hub(queue_size=3)
    with hub.subscribe("test", 1, {"points.earned"}) as subscription:
        for n in range(1, 10):
            hub.deliver(event(n))
        assert subscription.waiting == 0  # memory stays flat: what it missed is gone
        with pytest.raises(SlowConsumer):
            await anext(subscription)
    assert hub.stats.dropped == 4  # three queued and the one that did not fit


async def test_redis_fans_events_and_revocations_out_to_every_replica(
    redis_server: RedisServer,
) -> None:
    buses = [RedisBus(redis_server.url), RedisBus(redis_server.url)]
    revoked: list[str] = []
    for bus in buses:
        await bus.start()
    try:
        await until(lambda: all(bus.ready for bus in buses))
        with (
            buses[1].hub.subscribe("test", 1, {"points.earned"}) as far,
            buses[1].hub.on_revocation(revoked.append),
        ):
            await buses[0].publish([event(1), event(2)])
            async with asyncio.timeout(5):
                assert [(await anext(far)).payload for _ in range(2)] == [
                    {"memberId": "1", "delta": 1},
                    {"memberId": "1", "delta": 2},
                ]
            await buses[0].publish_revocation("jti-1")
            await until(lambda: revoked == ["jti-1"])
    finally:
        for bus in buses:
            await bus.close()


async def test_publishing_while_redis_is_down_fails_and_the_listener_comes_back(
    redis_server: RedisServer,
) -> None:
    bus = RedisBus(redis_server.url)
    await bus.start()
    try:
        await until(lambda: bus.ready)
        redis_server.stop()
        with pytest.raises(BrokerUnavailable):
            await bus.publish([event(1)])
        await until(lambda: not bus.ready)
        redis_server.start()
        await until(lambda: bus.ready)
        with bus.hub.subscribe("test", 1, {"points.earned"}) as subscription:
            await bus.publish([event(1)])
            async with asyncio.timeout(5):
                assert (await anext(subscription)).id == 1
    finally:
        await bus.close()
