"""GraphQL operations and helpers shared by the tests of every domain over HTTP.

The test program: 100 signup points, purchase points pending 14 days, shoes earn double,
gift cards nothing, tiers Bronze / Silver (1000) / Gold (5000). The clock starts on
Monday 2026-03-02 15:00 UTC.
"""

from __future__ import annotations

from typing import Any

from tests.support.gateway import Gateway

ENROLL = """
mutation Enroll($input: EnrollMemberInput!) {
  enrollMember(input: $input) {
    member { id customerId email name referralCode
             points { available pending held lifetimeEarned }
             tier { current { name } next { name threshold } qualifyingValue toNext } }
    userErrors { code message field }
  }
}"""


PURCHASE = """
mutation Buy($input: PurchaseInput!) {
  recordPurchase(input: $input) {
    transaction { id kind points status orderId occurredAt availableAt expiresAt }
    member { points { available pending } }
    userErrors { code field }
  }
}"""


MEMBER = """
query Member($ref: MemberRef!) {
  member(ref: $ref) {
    id customerId
    points { available pending held lifetimeEarned expiringSoon { points expiresAt } }
    tier { current { name earnMultiplier } qualifyingValue toNext }
  }
}"""


async def enroll(
    gw: Gateway, customer: str, key: str | None = None, **extra: Any
) -> dict[str, Any]:
    data = await gw.partner(
        ENROLL,
        {"input": {"idempotencyKey": key or f"enroll-{customer}", "customerId": customer, **extra}},
    )
    payload: dict[str, Any] = data["enrollMember"]
    assert payload["userErrors"] == [], payload
    return payload["member"]  # type: ignore[no-any-return]


def line(
    price: str, quantity: int = 1, category: str | None = None, sku: str | None = None
) -> dict[str, Any]:
    return {"sku": sku, "category": category, "quantity": quantity, "unitPrice": price}


async def buy(gw: Gateway, customer: str, order: str, *lines: dict[str, Any]) -> dict[str, Any]:
    data = await gw.partner(
        PURCHASE,
        {
            "input": {
                "idempotencyKey": f"buy-{order}",
                "member": {"customerId": customer},
                "orderId": order,
                "currency": "USD",
                "lines": list(lines),
            }
        },
    )
    return data["recordPurchase"]  # type: ignore[no-any-return]


async def run_jobs(gw: Gateway) -> None:
    async with gw.database.transaction() as session:
        await gw.app.state.service.run_jobs(session, "test", gw.clock.now)
