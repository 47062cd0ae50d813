"""The CRM write-back through a running gateway and the fake HubSpot: each member's
points and tier reach the CRM's `loyalty_points` / `loyalty_tier`, coalesced per
member, and a CRM that is down never holds up a write."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from backends.crm.writeback import CrmWriteBack
from backends.fakes.hubspot import FakeHubSpot
from events.bus import Event
from tests.support.gateway import Gateway, running_gateway
from tests.support.operations import buy, line

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

TOKEN = "pat-na1-writeback"
ENROL = """mutation($c: String!, $k: String!) {
  enrollMember(input: {idempotencyKey: $k, customerId: $c}) { userErrors { code } } }"""
ADJUST = """mutation($c: String!, $k: String!, $p: Int!) { adjustPoints(input: {
  idempotencyKey: $k, member: {customerId: $c}, points: $p, reason: "goodwill"})
  { userErrors { code } } }"""


def program(crm: FakeHubSpot, **extra: Any) -> dict[str, Any]:
    return {
        "crm": {"kind": "hubspot", "base_url": crm.base, "token": TOKEN, **extra},
        "tiers": [{"name": "Bronze", "threshold": 0}, {"name": "Silver", "threshold": 300}],
        "pending_days": 0,  # purchase points available at once
    }


async def until_written(crm: FakeHubSpot, customer_id: str, points: str) -> None:
    async with asyncio.timeout(10):  # generous: the write-back runs every 0.1 s here
        while crm.contacts[customer_id].get("loyalty_points") != points:  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def test_points_and_tier_are_written_back_coalesced_per_member(database_url: str) -> None:
    crm = FakeHubSpot(token=TOKEN)
    crm.add("ada")
    crm.add("bob")
    async with (
        crm.serving(),
        running_gateway(
            database_url, settings={"crm_write_back_interval": 3600}, **program(crm)
        ) as gw,
    ):
        write_back: CrmWriteBack = gw.app.state.write_back
        await enrol_and_adjust(gw)
        async with asyncio.timeout(10):  # the relay publishes each commit at once
            while sorted(s.points for s in write_back.noted().values()) != [100, 450]:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        assert crm.calls == 0  # noted, not yet written: the writes did not wait
        await write_back.flush()  # the round the interval would run
        assert write_back.pending == 0
    assert crm.contacts["ada"]["loyalty_tier"] == "Silver"
    assert crm.contacts["bob"]["loyalty_tier"] == "Bronze"
    assert crm.contacts["ada"]["loyalty_points"] == "450"
    assert crm.contacts["bob"]["loyalty_points"] == "100"
    # Three changes of ada and one of bob in one round: one call, one input each.
    assert len(crm.updates) == 1, crm.updates
    first = crm.updates[0]["inputs"]
    assert sorted(i["id"] for i in first) == ["ada", "bob"]
    assert {i["idProperty"] for i in first} == {"customer_id"}


async def enrol_and_adjust(gw: Gateway) -> None:
    """ada: 100 signup + 300 purchase (Silver) + 50 goodwill = 450; bob: 100."""
    for customer in ("ada", "bob"):
        await gw.partner(ENROL, {"c": customer, "k": f"e-{customer}"})
    bought = await buy(gw, "ada", "1001", line("300.00"))
    assert bought["userErrors"] == []
    await gw.partner(ADJUST, {"c": "ada", "k": "a1", "p": 50})


async def test_a_crm_that_is_down_never_holds_up_a_write_and_is_written_later(
    database_url: str,
) -> None:
    crm = FakeHubSpot(token=TOKEN)
    crm.add("ada")
    crm.add("bob")
    async with (
        crm.serving(),
        running_gateway(
            database_url,
            settings={"crm_write_back_interval": 0.1},
            **program(crm, timeout=0.3, breaker_failures=1000),
        ) as gw,
    ):
        crm.hang = True
        started = time.monotonic()
        await enrol_and_adjust(gw)
        assert time.monotonic() - started < 5  # five writes, none waiting for the CRM
        async with asyncio.timeout(10):
            while crm.calls < 2:  # noqa: ASYNC110 (the write-back keeps trying)
                await asyncio.sleep(0.02)
        crm.hang = False
        await until_written(crm, "ada", "450")
        await until_written(crm, "bob", "100")


async def test_a_forgotten_member_is_not_written_back(database_url: str) -> None:
    crm = FakeHubSpot(token=TOKEN)
    crm.add("ada")
    crm.add("bob")
    forget = """mutation { forgetMember(input: {idempotencyKey: "f", member: {customerId: "ada"}})
      { userErrors { code } } }"""
    async with (
        crm.serving(),
        running_gateway(
            database_url, settings={"crm_write_back_interval": 3600}, **program(crm)
        ) as gw,
    ):
        write_back: CrmWriteBack = gw.app.state.write_back
        await enrol_and_adjust(gw)
        assert (await gw.partner(forget))["forgetMember"]["userErrors"] == []
        async with asyncio.timeout(10):
            while len(write_back.noted()) < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        await write_back.flush()
    assert [[i["id"] for i in u["inputs"]] for u in crm.updates] == [["bob"]]
    assert "loyalty_points" not in crm.contacts["ada"]


async def test_an_event_published_again_after_its_round_is_not_written_again(
    database_url: str,
) -> None:
    crm = FakeHubSpot(token=TOKEN)
    crm.add("ada")
    async with (
        crm.serving(),
        running_gateway(
            database_url, settings={"crm_write_back_interval": 3600}, **program(crm)
        ) as gw,
    ):
        write_back: CrmWriteBack = gw.app.state.write_back
        published: list[Event] = []
        gw.app.state.relay.listeners.append(published.extend)
        await gw.partner(ENROL, {"c": "ada", "k": "e-ada"})
        async with asyncio.timeout(10):
            while not write_back.noted():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        ((program_id, member_id),) = write_back.noted()
        await write_back.flush()
        assert crm.contacts["ada"]["loyalty_points"] == "100"
        # The relay's catch-up publishing the enrolment's events once more is not news ...
        assert published
        for e in published:
            write_back.offer(e.program_id, e.member_id, e.id, e.payload)
        assert write_back.pending == 0
        # ... while a newer event is.
        write_back.offer(program_id, member_id, 10_000, {"available": 7, "tier": "Bronze"})
        assert write_back.pending == 1
    assert len(crm.updates) == 1
