"""forgetMember is the end of a member: personal data leaves every table (outbox
payloads and the member's own idempotency keys included), what was open is closed,
nothing of the member can be captured, used or refunded afterwards, and a purchase
naming the old customer id does not enrol it again; an explicit enrolment does."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from ledger.members import customer_hash
from ledger.models import (
    Entry,
    ForgottenCustomer,
    Hold,
    HoldStatus,
    IdempotencyRecord,
    OutboxEvent,
    Redemption,
    RedemptionStatus,
)
from tests.support.gateway import Gateway, running_gateway
from tests.support.rows import changed, snapshot

CUSTOMER = "cust-7731"
EMAIL = "ada.lovelace@example.com"
NAME = "Ada Lovelace"
ERRORS = "userErrors { code message field }"
ENROLL = (
    "mutation($i: EnrollMemberInput!) "
    "{{ enrollMember(input: $i) {{ member {{ {fields} }} userErrors {{ code }} }} }}"
)


@pytest.fixture
async def gw(database_url: str) -> AsyncIterator[Gateway]:
    async with running_gateway(database_url) as gateway:
        yield gateway


async def write(gw: Gateway, field: str, input_type: str, data: dict[str, Any]) -> Any:
    document = f"mutation($i: {input_type}!) {{ {field}(input: $i) {{ {ERRORS} }} }}"
    return (await gw.partner(document, {"i": data}))[field]


async def test_forgetting_erases_closes_and_ignores_the_old_customer(gw: Gateway) -> None:
    enrolled = await gw.partner(
        ENROLL.format(fields="id"),
        {"i": {"idempotencyKey": "e", "customerId": CUSTOMER, "email": EMAIL, "name": NAME}},
    )
    member_id = int(enrolled["enrollMember"]["member"]["id"])
    ada = {"customerId": CUSTOMER}
    line = {"sku": "S", "quantity": 1, "unitPrice": "50.00"}
    purchase = {"idempotencyKey": "p", "member": ada, "orderId": "O1", "currency": "USD"}
    assert (await write(gw, "recordPurchase", "PurchaseInput", {**purchase, "lines": [line]}))[
        "userErrors"
    ] == []
    reason = f"goodwill for {NAME}"
    adjust = {"idempotencyKey": "a", "member": ada, "points": 900, "reason": reason}
    assert (await write(gw, "adjustPoints", "AdjustPointsInput", adjust))["userErrors"] == []
    held = await gw.partner(
        "mutation($i: HoldPointsInput!) "
        "{ holdPoints(input: $i) { hold { id } userErrors { code } } }",
        {"i": {"idempotencyKey": "h", "member": ada, "points": 300, "orderId": "C1"}},
    )
    hold_id = held["holdPoints"]["hold"]["id"]
    redeemed = await gw.partner(
        "mutation($i: RedeemRewardInput!) { redeemReward(input: $i) { redemption { id code } } }",
        {"i": {"idempotencyKey": "r", "member": ada, "rewardId": "five-off"}},
    )
    redemption = redeemed["redeemReward"]["redemption"]
    # the member's own token leaves a key of its own
    own = await gw.graphql(
        f"mutation($i: UpdateMemberInput!) {{ updateMember(input: $i) {{ {ERRORS} }} }}",
        {"i": {"idempotencyKey": "mine", "name": NAME}},
        gw.member_token(CUSTOMER),
    )
    assert own.data["updateMember"]["userErrors"] == []

    forgot = await write(
        gw, "forgetMember", "ForgetMemberInput", {"idempotencyKey": "f", "member": ada}
    )
    assert forgot["userErrors"] == []

    async with gw.database.reading() as session:
        events = list(await session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)))
        hold = await session.get(Hold, int(hold_id))
        issued = await session.get(Redemption, int(redemption["id"]))
        keys = list(await session.scalars(select(IdempotencyRecord)))
        forgotten = list(await session.scalars(select(ForgottenCustomer)))
        adjusted = list(await session.scalars(select(Entry).where(Entry.source == "adjust")))
    text = json.dumps([event.payload for event in events])
    for personal in (CUSTOMER, EMAIL, NAME):
        assert personal not in text, personal
    assert [event.type for event in events if event.member_id == member_id][-3:] == [
        "points.released",
        "points.returned",
        "member.forgotten",
    ]
    assert hold is not None and hold.status == HoldStatus.RELEASED
    assert issued is not None and issued.status == RedemptionStatus.CANCELLED
    assert [entry.reason for entry in adjusted] == [None]
    assert all(CUSTOMER not in key.client_id for key in keys)
    assert [(row.program_id, row.customer_hash) for row in forgotten] == [
        ("test", customer_hash("test", CUSTOMER))
    ]
    assert CUSTOMER not in repr(await snapshot(gw.database))
    exported = await gw.graphql(
        "query($r: MemberRef!) { exportMember(ref: $r) }", {"r": ada}, await gw.token()
    )
    assert exported.codes == ["UNKNOWN_MEMBER"]

    # Nothing of the member moves any more, and a purchase does not enrol it again.
    before = await snapshot(gw.database)
    refused = [
        await write(
            gw, "capturePoints", "CapturePointsInput", {"idempotencyKey": "c", "holdId": hold_id}
        ),
        await write(
            gw,
            "useRedemption",
            "UseRedemptionInput",
            {"idempotencyKey": "u", "code": redemption["code"]},
        ),
        await write(
            gw,
            "cancelRedemption",
            "CancelRedemptionInput",
            {"idempotencyKey": "x", "redemptionId": redemption["id"]},
        ),
        await write(
            gw,
            "refundPurchase",
            "RefundInput",
            {"idempotencyKey": "rf", "orderId": "O1", "amount": "10"},
        ),
        await write(
            gw,
            "recordPurchase",
            "PurchaseInput",
            {**purchase, "idempotencyKey": "p2", "orderId": "O2", "lines": [line]},
        ),
    ]
    assert [payload["userErrors"][0]["code"] for payload in refused] == ["UNKNOWN_MEMBER"] * 5
    assert refused[-1]["userErrors"][0]["message"] == (
        "this customer was forgotten: enrollMember enrolls them again"
    )
    after = await snapshot(gw.database)
    # the refusals are kept under their keys like any business outcome, nothing else
    assert {k: v for k, v in after.items() if k != "idempotency_keys"} == {
        k: v for k, v in before.items() if k != "idempotency_keys"
    }, changed(before, after)

    # An explicit enrolment starts the customer afresh; purchases find the new member.
    again = await gw.partner(
        ENROLL.format(fields="id points { available }"),
        {"i": {"idempotencyKey": "e2", "customerId": CUSTOMER}},
    )
    member = again["enrollMember"]["member"]
    assert int(member["id"]) != member_id and member["points"] == {"available": 100}
    bought = await write(
        gw,
        "recordPurchase",
        "PurchaseInput",
        {**purchase, "idempotencyKey": "p3", "orderId": "O3", "lines": [line]},
    )
    assert bought["userErrors"] == []
    async with gw.database.reading() as session:
        assert list(await session.scalars(select(ForgottenCustomer))) == []
