"""The CRM write-back to Salesforce through a running gateway and the fake Salesforce:
each member's points and tier reach its Contact's `Loyalty_Points__c` /
`Loyalty_Tier__c`, one update-only PATCH by external id per member per round."""

from __future__ import annotations

import asyncio

import pytest

from backends.crm.writeback import CrmWriteBack
from backends.fakes.salesforce import EXTERNAL_ID_FIELD, FakeSalesforce
from tests.support.gateway import running_gateway
from tests.support.operations import buy, line

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

ENROL = """mutation($c: String!, $k: String!) {
  enrollMember(input: {idempotencyKey: $k, customerId: $c}) { userErrors { code } } }"""


async def test_points_and_tier_are_written_to_each_contact(database_url: str) -> None:
    salesforce = FakeSalesforce()
    async with salesforce.serving():
        ada, bob = salesforce.add_contact("ada"), salesforce.add_contact("bob")
        crm = {
            "kind": "salesforce",
            "base_url": salesforce.base,
            "client_id": salesforce.client_id,
            "client_secret": salesforce.client_secret,
            "customer_id_property": EXTERNAL_ID_FIELD,
        }
        async with running_gateway(
            database_url,
            settings={"crm_write_back_interval": 3600},
            crm=crm,
            tiers=[{"name": "Bronze", "threshold": 0}, {"name": "Silver", "threshold": 300}],
            pending_days=0,
        ) as gw:
            write_back: CrmWriteBack = gw.app.state.write_back
            for customer in ("ada", "bob", "carol"):  # carol has no Contact
                await gw.partner(ENROL, {"c": customer, "k": f"e-{customer}"})
            bought = await buy(gw, "ada", "1001", line("300.00"))
            assert bought["userErrors"] == []
            async with asyncio.timeout(10):  # the relay publishes each commit at once
                while sorted(s.points for s in write_back.noted().values()) != [100, 100, 400]:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            assert salesforce.data_calls == 0  # noted, not yet written
            await write_back.flush()
            assert write_back.pending == 0

    assert ada.loyalty == {"Loyalty_Points__c": 400, "Loyalty_Tier__c": "Silver"}
    assert bob.loyalty == {"Loyalty_Points__c": 100, "Loyalty_Tier__c": "Bronze"}
    assert salesforce.calls["upsert"] == 3  # ada (two changes, coalesced), bob, carol
    assert salesforce.contact("carol") is None  # update only: no Contact created
    assert salesforce.calls["token"] == 1
