"""A read sent the moment an event arrives answers the balance the event carries: the
gateway publishes a change only once it is visible to every later read."""

from __future__ import annotations

import asyncio

from tests.support.gateway import Gateway
from tests.support.live import POINTS_CHANGED, Stream, gql_session, hub_of, until
from tests.support.operations import buy, enroll, line

BALANCE = '{ member(ref: {customerId: "ada"}) { points { available pending } } }'


async def test_a_read_right_after_each_event_sees_its_balance(gw: Gateway) -> None:
    await enroll(gw, "ada")
    async with gql_session(gw.url, gw.member_token("ada")) as own:
        stream = Stream(own, POINTS_CHANGED, {})
        await until(lambda: hub_of(gw).stats.subscriptions == 1)
        for n in range(20):
            # The write's own answer is not awaited: the read goes out as the event lands,
            # as a page's does when another system made the change.
            write = asyncio.ensure_future(buy(gw, "ada", f"o-{n}", line("10.00")))
            event = (await stream.next())["pointsChanged"]
            read = (await gw.partner(BALANCE))["member"]["points"]
            await write
            assert read == {"available": event["available"], "pending": event["pending"]}, n
        await stream.stop()
