"""A purchase or an action may be backdated at most `max_backdate_days` (30 by default):
older is INVALID_INPUT on occurredAt and changes nothing, so backdating cannot skip
the return window by any amount."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from tests.support.gateway import Gateway, running_gateway
from tests.support.ledger import T0
from tests.support.rows import changed, snapshot

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

PURCHASE = """
mutation($i: PurchaseInput!) {
  recordPurchase(input: $i) {
    transaction { points status } member { points { available pending } }
    userErrors { code message field }
  }
}"""
ACTION = """
mutation($i: ActionInput!) {
  recordAction(input: $i) { transaction { points } userErrors { code message field } }
}"""


@pytest.fixture
async def gw(database_url: str) -> AsyncIterator[Gateway]:
    async with running_gateway(database_url) as gateway:
        yield gateway


def bought(order: str, days_ago: float) -> dict[str, object]:
    return {
        "i": {
            "idempotencyKey": f"k-{order}",
            "member": {"customerId": "ada"},
            "orderId": order,
            "currency": "USD",
            "occurredAt": (T0 - timedelta(days=days_ago)).isoformat(),
            "lines": [{"quantity": 1, "unitPrice": "40.00"}],
        }
    }


async def test_a_purchase_older_than_the_backdating_limit_is_refused(gw: Gateway) -> None:
    first = await gw.partner(PURCHASE, bought("today", 0))
    assert first["recordPurchase"]["member"]["points"] == {"available": 100, "pending": 40}
    before = await snapshot(gw.database)
    refused = await gw.partner(PURCHASE, bought("old", 30.01))
    assert refused["recordPurchase"] == {
        "transaction": None,
        "member": None,
        "userErrors": [
            {
                "code": "INVALID_INPUT",
                "message": "occurredAt may lie at most 30 days in the past",
                "field": ["occurredAt"],
            }
        ],
    }
    after = await snapshot(gw.database)
    assert after == before, changed(before, after)
    # exactly at the limit: taken (past the 14 pending days, so available at once)
    limit = await gw.partner(PURCHASE, bought("limit", 30))
    assert limit["recordPurchase"]["transaction"] == {"points": 40, "status": "AVAILABLE"}
    assert limit["recordPurchase"]["member"]["points"] == {"available": 140, "pending": 40}


async def test_the_limit_is_a_program_setting(database_url: str) -> None:
    async with running_gateway(database_url, max_backdate_days=0) as gw:
        refused = await gw.partner(PURCHASE, bought("yesterday", 1))
        [error] = refused["recordPurchase"]["userErrors"]
        assert (error["code"], error["field"]) == ("INVALID_INPUT", ["occurredAt"])
        assert (await gw.partner(PURCHASE, bought("now", 0)))["recordPurchase"]["userErrors"] == []


async def test_an_action_older_than_the_limit_is_refused(gw: Gateway) -> None:
    await gw.partner(PURCHASE, bought("enrols-ada", 0))
    before = await snapshot(gw.database)
    variables = {
        "i": {
            "idempotencyKey": "review",
            "member": {"customerId": "ada"},
            "type": "product_review",
            "occurredAt": (T0 - timedelta(days=31)).isoformat(),
        }
    }
    refused = await gw.partner(ACTION, variables)
    assert refused["recordAction"]["userErrors"] == [
        {
            "code": "INVALID_INPUT",
            "message": "occurredAt may lie at most 30 days in the past",
            "field": ["occurredAt"],
        }
    ]
    after = await snapshot(gw.database)
    assert after == before, changed(before, after)
    variables["i"]["occurredAt"] = (T0 - timedelta(days=29)).isoformat()
    taken = await gw.partner(ACTION, variables)
    assert taken["recordAction"] == {"transaction": {"points": 50}, "userErrors": []}
