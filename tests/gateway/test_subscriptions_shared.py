"""Subscriptions that share a rendering of one event still get exactly their own
selection: the same document and viewer share it, another selection, other variables or
another viewer get theirs, and a member never sees another member's events."""

from __future__ import annotations

from auth import scopes
from tests.support.gateway import Gateway
from tests.support.live import POINTS_CHANGED, Stream, gql_session, hub_of, until
from tests.support.operations import buy, enroll, line

DELTA_ONLY = """
subscription Delta($member: MemberRef) { pointsChanged(member: $member) { delta kind } }"""
ALIASED = """
subscription { pointsChanged { balance: available held } }"""


async def test_each_subscription_gets_its_own_selection_of_a_shared_event(gw: Gateway) -> None:
    ada = await enroll(gw, "ada")
    await enroll(gw, "bob")
    partner = await gw.token({scopes.MEMBERS_READ})
    async with (
        gql_session(gw.url, gw.member_token("ada")) as first_tab,
        gql_session(gw.url, gw.member_token("ada")) as second_tab,
        gql_session(gw.url, partner) as dashboard,
        gql_session(gw.url, gw.member_token("bob")) as bob,
    ):
        tabs = [Stream(first_tab, POINTS_CHANGED, {}) for _ in range(3)]
        tabs.append(Stream(second_tab, POINTS_CHANGED, {}))
        delta = Stream(second_tab, DELTA_ONLY, {})
        aliased = Stream(first_tab, ALIASED, {})
        watching = Stream(dashboard, POINTS_CHANGED, {"member": {"customerId": "ada"}})
        watching_delta = Stream(dashboard, DELTA_ONLY, {"member": {"customerId": "ada"}})
        own = Stream(bob, POINTS_CHANGED, {})
        await until(lambda: hub_of(gw).stats.subscriptions == 9)

        bought = await buy(gw, "ada", "o-1", line("30.00"))
        transaction = bought["transaction"]
        full = {
            "pointsChanged": {
                "memberId": ada["id"],
                "transactionId": transaction["id"],
                "kind": "EARN",
                "delta": 30,
                "available": 100,
                "pending": 30,
                "held": 0,
                "tier": "Bronze",
                "occurredAt": transaction["occurredAt"],
            }
        }
        for tab in tabs:
            assert await tab.next() == full
        assert await watching.next() == full
        assert await delta.next() == {"pointsChanged": {"delta": 30, "kind": "EARN"}}
        assert await watching_delta.next() == {"pointsChanged": {"delta": 30, "kind": "EARN"}}
        assert await aliased.next() == {"pointsChanged": {"balance": 100, "held": 0}}

        # bob saw nothing of ada's purchase: his first event is his own
        bobs = (await buy(gw, "bob", "o-2", line("5.00")))["transaction"]
        got = await own.next()
        assert got["pointsChanged"]["transactionId"] == bobs["id"]
        assert got["pointsChanged"]["delta"] == 5
        for stream in (*tabs, delta, aliased, watching, watching_delta):
            assert stream.results.empty()
        for stream in (*tabs, delta, aliased, watching, watching_delta, own):
            await stream.stop()
    await until(lambda: hub_of(gw).stats.subscriptions == 0)
