"""Strings no database can store — NUL characters (PostgreSQL text refuses them) and
lone UTF-16 surrogates (JSON "\\ud800" reaches Python as one) — in any string input of
a write are INVALID_INPUT on that field, on SQLite and PostgreSQL, and change nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.gateway import Gateway, running_gateway
from tests.support.rows import changed, snapshot

NUL = "a\x00b"
SURROGATE = "a\ud800b"


def mutation(field: str, input_type: str, changed: str) -> str:
    return (
        f"mutation($i: {input_type}!) {{ {field}(input: $i) "
        f"{{ {changed} {{ id }} userErrors {{ code message field }} }} }}"
    )


ENROLL = mutation("enrollMember", "EnrollMemberInput", "member")
UPDATE = mutation("updateMember", "UpdateMemberInput", "member")
PURCHASE = mutation("recordPurchase", "PurchaseInput", "transaction")
ACTION = mutation("recordAction", "ActionInput", "transaction")
REFUND = mutation("refundPurchase", "RefundInput", "transaction")
ADJUST = mutation("adjustPoints", "AdjustPointsInput", "transaction")
REDEEM = mutation("redeemReward", "RedeemRewardInput", "redemption")
USE = mutation("useRedemption", "UseRedemptionInput", "redemption")
HOLD = mutation("holdPoints", "HoldPointsInput", "hold")
UPSERT = mutation("upsertReward", "RewardInput", "reward")

ADA = {"customerId": "ada"}


def line(**extra: Any) -> dict[str, Any]:
    return {"sku": "S", "category": "c", "quantity": 1, "unitPrice": "10.00", **extra}


def buy(**extra: Any) -> dict[str, Any]:
    fields = {"idempotencyKey": "p", "member": ADA, "orderId": "O", "currency": "USD"}
    return {**fields, "lines": [line()], **extra}


# (name, document, input, the field the error names)
CASES: list[tuple[str, str, dict[str, Any], list[str]]] = [
    ("enroll-customer", ENROLL, {"idempotencyKey": "e", "customerId": NUL}, ["customerId"]),
    (
        "enroll-email",
        ENROLL,
        {"idempotencyKey": "e", "customerId": "new", "email": SURROGATE + "@x.io"},
        ["email"],
    ),
    (
        "enroll-name",
        ENROLL,
        {"idempotencyKey": "e", "customerId": "new", "name": NUL},
        ["name"],
    ),
    ("enroll-key", ENROLL, {"idempotencyKey": SURROGATE, "customerId": "new"}, ["idempotencyKey"]),
    ("update-name", UPDATE, {"idempotencyKey": "u", "member": ADA, "name": SURROGATE}, ["name"]),
    ("purchase-order", PURCHASE, buy(orderId=NUL), ["orderId"]),
    (
        "purchase-customer",
        PURCHASE,
        buy(member={"customerId": SURROGATE}),
        ["member", "customerId"],
    ),
    ("purchase-sku", PURCHASE, buy(lines=[line(), line(sku=NUL)]), ["lines", "1", "sku"]),
    (
        "purchase-category",
        PURCHASE,
        buy(lines=[line(category=SURROGATE)]),
        ["lines", "0", "category"],
    ),
    ("purchase-key", PURCHASE, buy(idempotencyKey=NUL), ["idempotencyKey"]),
    (
        "action-reference",
        ACTION,
        {"idempotencyKey": "a", "member": ADA, "type": "product_review", "reference": NUL},
        ["reference"],
    ),
    (
        "action-type",
        ACTION,
        {"idempotencyKey": "a", "member": ADA, "type": SURROGATE},
        ["type"],
    ),
    ("refund-order", REFUND, {"idempotencyKey": "r", "orderId": NUL, "amount": "1"}, ["orderId"]),
    (
        "refund-sku",
        REFUND,
        {"idempotencyKey": "r", "orderId": "O1", "lines": [{"sku": SURROGATE, "quantity": 1}]},
        ["lines", "0", "0"],
    ),
    (
        "adjust-reason",
        ADJUST,
        {"idempotencyKey": "j", "member": ADA, "points": 5, "reason": SURROGATE},
        ["reason"],
    ),
    (
        "redeem-reward",
        REDEEM,
        {"idempotencyKey": "d", "member": ADA, "rewardId": NUL},
        ["rewardId"],
    ),
    ("use-code", USE, {"idempotencyKey": "c", "code": NUL}, ["code"]),
    ("use-order", USE, {"idempotencyKey": "c", "code": "X", "orderId": SURROGATE}, ["orderId"]),
    (
        "hold-order",
        HOLD,
        {"idempotencyKey": "h", "member": ADA, "points": 5, "orderId": NUL},
        ["orderId"],
    ),
    ("upsert-name", UPSERT, {"id": "gift", "name": NUL, "cost": 5}, ["name"]),
    ("upsert-id", UPSERT, {"id": SURROGATE, "name": "Gift", "cost": 5}, ["id"]),
]


@pytest.fixture
async def gw(database_url: str) -> AsyncIterator[Gateway]:
    async with running_gateway(database_url) as gateway:
        await gateway.partner(ENROLL, {"i": {"idempotencyKey": "s1", "customerId": "ada"}})
        await gateway.partner(
            PURCHASE, {"i": buy(idempotencyKey="s2", orderId="O1", lines=[line(sku="S")])}
        )
        yield gateway


async def test_unstorable_strings_are_refused_and_change_nothing(gw: Gateway) -> None:
    token = await gw.token()
    before = await snapshot(gw.database)
    for name, document, data, field in CASES:
        response = await gw.graphql(document, {"i": data}, token)
        assert response.status == 200, (name, response.body)
        assert response.codes == [], (name, response.body)
        [payload] = response.body["data"].values()
        [error] = payload["userErrors"]
        assert (error["code"], error["field"]) == ("INVALID_INPUT", field), (name, error)
        assert "NUL" in error["message"] or "surrogate" in error["message"], (name, error)
        after = await snapshot(gw.database)
        assert after == before, (name, changed(before, after))
    # nothing was kept under those keys: the corrected input runs with the same key
    fixed = await gw.graphql(
        ENROLL, {"i": {"idempotencyKey": "e", "customerId": "new", "name": "Ok"}}, token
    )
    assert fixed.data["enrollMember"]["userErrors"] == []
