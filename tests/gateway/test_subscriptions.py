"""Subscriptions over a real WebSocket with the gql client: a purchase's event with its
exact balances, to a member watching itself and to a partner with members:read."""

from __future__ import annotations

from auth import scopes
from tests.support.gateway import Gateway
from tests.support.live import (
    POINTS_CHANGED,
    Stream,
    gql_session,
    hub_of,
    until,
)
from tests.support.operations import buy, enroll, line


async def test_a_purchase_reaches_the_member_and_a_partner(gw: Gateway) -> None:
    ada = await enroll(gw, "ada")
    partner = await gw.token({scopes.MEMBERS_READ})
    async with (
        gql_session(gw.url, gw.member_token("ada")) as own,
        gql_session(gw.url, partner) as watching,
    ):
        mine = Stream(own, POINTS_CHANGED, {})
        theirs = Stream(watching, POINTS_CHANGED, {"member": {"customerId": "ada"}})
        await until(lambda: hub_of(gw).stats.subscriptions == 2)
        bought = await buy(gw, "ada", "o-1", line("30.00"), line("20.00", 2, "shoes"))
        transaction = bought["transaction"]
        expected = {
            "pointsChanged": {
                "memberId": ada["id"],
                "transactionId": transaction["id"],
                "kind": "EARN",
                "delta": 110,
                "available": 100,
                "pending": 110,
                "held": 0,
                "tier": "Bronze",
                "occurredAt": transaction["occurredAt"],
            }
        }
        assert await mine.next() == expected
        assert await theirs.next() == expected
        await mine.stop()
        await theirs.stop()
    await until(lambda: hub_of(gw).stats.subscriptions == 0)
