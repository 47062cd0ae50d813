"""Subscriptions over a real WebSocket with the gql client: a purchase's event with its
exact balances, to a member watching itself and to a partner with members:read."""

from __future__ import annotations

from auth import scopes
from tests.support.gateway import Gateway, running_gateway
from tests.support.live import (
    POINTS_CHANGED,
    TIER_CHANGED,
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


async def test_a_purchase_that_crosses_a_threshold_reports_the_new_tier(database_url: str) -> None:
    async with running_gateway(database_url, pending_days=0) as gw:
        ada = await enroll(gw, "ada")
        async with gql_session(gw.url, gw.member_token("ada")) as session:
            points = Stream(session, POINTS_CHANGED, {})
            tier = Stream(session, TIER_CHANGED, {})
            await until(lambda: hub_of(gw).stats.subscriptions == 2)
            bought = await buy(gw, "ada", "o-1", line("1000.00"))
            transaction = bought["transaction"]
            got = await points.next()
            assert got == {
                "pointsChanged": {
                    "memberId": ada["id"],
                    "transactionId": transaction["id"],
                    "kind": "EARN",
                    "delta": 1000,
                    "available": 1100,
                    "pending": 0,
                    "held": 0,
                    "tier": "Silver",  # the tier this purchase reached
                    "occurredAt": transaction["occurredAt"],
                }
            }
            assert await tier.next() == {
                "tierChanged": {
                    "memberId": ada["id"],
                    "from": "Bronze",
                    "to": "Silver",
                    "occurredAt": transaction["occurredAt"],
                }
            }
            await points.stop()
            await tier.stop()
