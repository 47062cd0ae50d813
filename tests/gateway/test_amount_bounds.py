"""No amount can grow a balance past what GraphQL can carry: a purchase, an adjustment
or a debt beyond the bounds is INVALID_AMOUNT and changes nothing; every member read,
the members page and programStats keep answering (program sums are `Long`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from auth import scopes
from ledger import rules
from tests.support.gateway import Gateway, running_gateway
from tests.support.rows import changed, snapshot

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

PURCHASE = """
mutation($i: PurchaseInput!) {
  recordPurchase(input: $i) { transaction { points } userErrors { code message field } }
}"""
ADJUST = """
mutation($i: AdjustPointsInput!) {
  adjustPoints(input: $i) {
    transaction { points } member { points { available } } userErrors { code message field }
  }
}"""
READS = """
{
  member(ref: {customerId: "ada"}) {
    points { available pending held lifetimeEarned } tier { qualifyingValue }
    transactions { edges { node { points } } }
  }
  members { edges { node { customerId points { available pending held lifetimeEarned } } } }
  programStats { members pointsIssued pointsRedeemed outstandingPoints }
}"""


@pytest.fixture
async def gw(database_url: str) -> AsyncIterator[Gateway]:
    async with running_gateway(database_url) as gateway:
        yield gateway


async def enroll(gw: Gateway, customer: str) -> None:
    data = await gw.partner(
        "mutation($i: EnrollMemberInput!) { enrollMember(input: $i) { userErrors { code } } }",
        {"i": {"idempotencyKey": f"e-{customer}", "customerId": customer}},
    )
    assert data["enrollMember"]["userErrors"] == []


async def adjust(gw: Gateway, key: str, points: int, **extra: Any) -> dict[str, Any]:
    token = await gw.token({scopes.POINTS_ADJUST})
    variables = {
        "i": {
            "idempotencyKey": key,
            "member": {"customerId": "ada"},
            "points": points,
            "reason": "r",
            **extra,
        }
    }
    response = await gw.graphql(ADJUST, variables, token)
    assert response.status == 200, response.body
    return response.data["adjustPoints"]  # type: ignore[no-any-return]


def purchase(order: str, price: str, quantity: int, lines: int = 1) -> dict[str, Any]:
    line = {"sku": "S", "quantity": quantity, "unitPrice": price}
    return {
        "i": {
            "idempotencyKey": f"k-{order}",
            "member": {"customerId": "ada"},
            "orderId": order,
            "currency": "USD",
            "lines": [line] * lines,
        }
    }


async def test_a_till_cannot_store_a_purchase_beyond_the_bounds(gw: Gateway) -> None:
    await enroll(gw, "ada")
    till = await gw.token({scopes.POINTS_WRITE})
    before = await snapshot(gw.database)
    cases = [
        # the largest order the line checks allow: 10^9 × 10^6 × 1000 lines
        (purchase("huge", "1000000000", 1_000_000, 1000), "eligible amount"),
        # an amount within the order bound whose points are not
        (purchase("many", "600000000", 2), "more than 1000000000 points"),
    ]
    for variables, reason in cases:
        response = await gw.graphql(PURCHASE, variables, till)
        assert response.status == 200, response.body
        payload = response.data["recordPurchase"]
        assert payload["transaction"] is None
        [error] = payload["userErrors"]
        assert (error["code"], error["field"]) == ("INVALID_AMOUNT", ["lines"])
        assert reason in error["message"]
        after = await snapshot(gw.database)
        assert after == before, changed(before, after)
    # the largest purchase that fits is taken: pending, and every read answers
    largest = await gw.graphql(PURCHASE, purchase("fits", "999999900", 1), till)
    assert largest.data["recordPurchase"]["transaction"] == {"points": 999_999_900}
    reads = await gw.partner(READS)
    assert reads["member"]["points"] == {
        "available": 100,
        "pending": 999_999_900,
        "held": 0,
        "lifetimeEarned": 100,
    }
    # pending counts toward the balance: one more point does not fit
    one_more = await gw.graphql(PURCHASE, purchase("one", "1.00", 1), till)
    assert [e["code"] for e in one_more.data["recordPurchase"]["userErrors"]] == ["INVALID_AMOUNT"]


async def test_adjustments_stop_at_the_balance_and_the_debt_bound(gw: Gateway) -> None:
    await enroll(gw, "ada")  # 100 signup points
    first = await adjust(gw, "a1", rules.MAX_POINTS - 100)
    assert first["member"]["points"]["available"] == rules.MAX_BALANCE
    before = await snapshot(gw.database)
    for key in ("a2", "a3"):
        refused = await adjust(gw, key, rules.MAX_POINTS)
        assert refused["transaction"] is None
        assert refused["userErrors"] == [
            {
                "code": "INVALID_AMOUNT",
                "message": f"a member's balance may not exceed {rules.MAX_BALANCE} points",
                "field": ["points"],
            }
        ]
        after = await snapshot(gw.database)
        assert after == before, changed(before, after)
    reads = await gw.partner(READS)
    assert reads["member"]["points"]["available"] == rules.MAX_BALANCE
    assert reads["members"]["edges"][0]["node"]["points"]["available"] == rules.MAX_BALANCE

    # the other way: a debt of at most MAX_DEBT points
    down = await adjust(gw, "d1", -rules.MAX_POINTS, allowNegativeBalance=True)
    assert down["member"]["points"]["available"] == 0
    deeper = await adjust(gw, "d2", -rules.MAX_POINTS, allowNegativeBalance=True)
    assert deeper["member"]["points"]["available"] == -rules.MAX_DEBT
    before = await snapshot(gw.database)
    beyond = await adjust(gw, "d3", -1, allowNegativeBalance=True)
    assert beyond["userErrors"] == [
        {
            "code": "INVALID_AMOUNT",
            "message": f"a member's balance may not fall below -{rules.MAX_DEBT} points",
            "field": ["points"],
        }
    ]
    after = await snapshot(gw.database)
    assert after == before, changed(before, after)
    assert (await gw.partner(READS))["member"]["points"]["available"] == -rules.MAX_DEBT


async def test_program_sums_beyond_an_int_are_reported_exactly(gw: Gateway) -> None:
    for customer in ("ada", "bob", "cy"):
        await enroll(gw, customer)
        token = await gw.token({scopes.POINTS_ADJUST})
        data = await gw.graphql(
            ADJUST,
            {
                "i": {
                    "idempotencyKey": f"a-{customer}",
                    "member": {"customerId": customer},
                    "points": rules.MAX_POINTS - 100,
                    "reason": "r",
                }
            },
            token,
        )
        assert data.data["adjustPoints"]["userErrors"] == []
    reads = await gw.partner(READS)
    assert reads["programStats"] == {
        "members": 3,
        "pointsIssued": 3 * rules.MAX_BALANCE,  # 3 000 000 000 > 2^31 - 1
        "pointsRedeemed": 0,
        "outstandingPoints": 3 * rules.MAX_BALANCE,
    }
    assert [edge["node"]["points"]["available"] for edge in reads["members"]["edges"]] == [
        rules.MAX_BALANCE
    ] * 3
