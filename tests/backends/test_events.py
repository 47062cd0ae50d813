"""The `events` source over real HTTP: Standard Webhooks carrying the GraphQL inputs,
exact points through purchases and refunds, enrolment, idempotency keys, and `data`
read with the GraphQL input's rules."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.gateway import Gateway
from tests.support.inbound import (
    Points,
    counts,
    inbound_deliveries,
    points,
    purchase_data,
    send_event,
)

TEE = {"sku": "TEE", "quantity": 2, "unitPrice": "25.00"}  # 50.00, factor 1
SHOE = {
    "sku": "SHOE",
    "category": "shoes",
    "quantity": 1,
    "unitPrice": "80.00",
    "discount": "10.00",
}


async def refund(gw: Gateway, message_id: str, **data: Any) -> int:
    answer = await send_event(gw, "purchase.refunded", {"orderId": "o-1", **data}, message_id)
    return answer.status


async def test_purchase_then_partial_and_full_refunds_reverse_exact_points(gw: Gateway) -> None:
    # W = 50 × 1 + 70 × 2 = 190 points; E = 120.00 eligible.
    bought = await send_event(
        gw, "purchase.completed", purchase_data("o-1", "ada", TEE, SHOE), "msg_p"
    )
    assert (bought.status, bought.body["outcome"]) == (200, "APPLIED")
    assert await points(gw, "ada") == Points(available=0, pending=190)

    # By amount: R = 25 × W / E = 39.58…; floor(190 × R / 190) = 39.
    assert await refund(gw, "msg_r1", amount="25.00") == 200
    assert await points(gw, "ada") == Points(available=0, pending=151)
    # By lines: the shoe earned 140; cumulative floor(179.58…) = 179.
    assert await refund(gw, "msg_r2", lines=[{"sku": "SHOE", "quantity": 1}]) == 200
    assert await points(gw, "ada") == Points(available=0, pending=11)
    # The last 25.00 of eligible spend: everything is reversed, never more.
    assert await refund(gw, "msg_r3", amount="25.00") == 200
    assert await points(gw, "ada") == Points(available=0, pending=0)

    before = await counts(gw)
    over = await send_event(gw, "purchase.refunded", {"orderId": "o-1", "amount": "0.01"}, "msg_r4")
    assert over.status == 422
    assert (over.body["error"], over.body["reason"]) == (
        "INVALID_AMOUNT",
        "more than remains refundable on the order",
    )
    assert await counts(gw) == before
    outcomes = [(row.event_id, row.topic, row.outcome) for row in await inbound_deliveries(gw)]
    assert outcomes == [
        ("msg_p", "purchase.completed", "APPLIED"),
        ("msg_r1", "purchase.refunded", "APPLIED"),
        ("msg_r2", "purchase.refunded", "APPLIED"),
        ("msg_r3", "purchase.refunded", "APPLIED"),
        ("msg_r4", "purchase.refunded", "REJECTED"),
    ]


async def test_member_enrolled_enrolls_once(gw: Gateway) -> None:
    data = {
        "customerId": "ada",
        "email": "ada@example.com",
        "name": "Ada",
        "birthday": "1990-05-01",
    }
    first = await send_event(gw, "member.enrolled", data, "msg_1")
    assert (first.status, first.body["outcome"]) == (200, "APPLIED")
    member = (
        await gw.partner(
            """{ member(ref: {customerId: "ada"}) {
                   customerId email name points { available } } }"""
        )
    )["member"]
    assert member == {
        "customerId": "ada",
        "email": "ada@example.com",
        "name": "Ada",
        "points": {"available": 0},
    }
    again = await send_event(gw, "member.enrolled", data, "msg_2")
    assert (again.status, again.body["outcome"]) == (200, "DUPLICATE")
    assert (await counts(gw)).members == 1


async def test_an_idempotency_key_in_data_is_one_effect_across_delivery_ids(gw: Gateway) -> None:
    data = purchase_data("o-1", "ada", TEE, idempotencyKey="till-7-sale-1")
    assert (await send_event(gw, "purchase.completed", data, "msg_1")).body["outcome"] == "APPLIED"
    replay = await send_event(gw, "purchase.completed", data, "msg_2")
    assert (replay.status, replay.body["outcome"]) == (200, "DUPLICATE")

    other = purchase_data("o-2", "ada", TEE, idempotencyKey="till-7-sale-1")
    conflict = await send_event(gw, "purchase.completed", other, "msg_3")
    assert conflict.status == 409
    assert conflict.body["error"] == "IDEMPOTENCY_CONFLICT"
    assert await points(gw, "ada") == Points(available=0, pending=50)


async def test_channel_and_occurred_at_are_read_as_graphql_reads_them(gw: Gateway) -> None:
    # 2026-03-03 is a Tuesday in New York: the Tuesday multiplier (1.5) applies.
    data = purchase_data("o-1", "ada", TEE, channel="POS", occurredAt="2026-03-03T12:00:00-05:00")
    gw.clock.advance(days=2)
    answer = await send_event(gw, "purchase.completed", data, "msg_1")
    assert answer.status == 200, answer.body
    assert await points(gw, "ada") == Points(available=0, pending=75)


@pytest.mark.parametrize(
    ("kind", "data", "reason"),
    [
        (
            "purchase.completed",
            purchase_data("o-1", "ada", TEE, channel="KIOSK"),
            "data.channel is one of ONLINE, POS, MOBILE",
        ),
        (
            "purchase.completed",
            purchase_data("o-1", "ada", TEE, occurredAt="2026-03-02T10:00:00"),
            "data.occurredAt must be ISO-8601 with an offset",
        ),
        (
            "purchase.completed",
            purchase_data("o-1", "ada", {**TEE, "quantity": 2**31}),
            "data.lines.0.quantity must be an integer between -2147483648 and 2147483647",
        ),
        (
            "purchase.completed",
            purchase_data("o-1", "ada", {**TEE, "unitPrice": "NaN"}),
            "data.lines.0.unitPrice: the decimal must be finite",
        ),
        (
            "purchase.completed",
            {**purchase_data("o-1", "ada", TEE), "member": {"id": "1", "customerId": "ada"}},
            "data.member: give exactly one of id and customerId",
        ),
        (
            "purchase.completed",
            {**purchase_data("o-1", "ada", TEE), "order_id": "o-1"},
            "data.order_id is not a field of this input",
        ),
        (
            "member.enrolled",
            {"customerId": "ada", "birthday": "1990-13-01"},
            "data.birthday must be an ISO-8601 date",
        ),
        ("purchase.refunded", {"amount": "1.00"}, "data.orderId is required"),
        (
            "purchase.refunded",
            {"orderId": "o-1", "lines": [{"sku": "TEE"}]},
            "data.lines.0.quantity is required",
        ),
    ],
)
async def test_data_that_breaks_the_input_rules_is_422_and_writes_nothing(
    gw: Gateway, kind: str, data: dict[str, Any], reason: str
) -> None:
    before = await counts(gw)
    answer = await send_event(gw, kind, data, "msg_1")
    assert (answer.status, answer.body["error"], answer.body["reason"]) == (
        422,
        "INVALID_PAYLOAD",
        reason,
    )
    assert await counts(gw) == before


async def test_a_refund_before_its_purchase_is_kept_and_applied_on_arrival(gw: Gateway) -> None:
    early = await send_event(
        gw, "purchase.refunded", {"orderId": "o-1", "lines": [{"sku": "SHOE", "quantity": 1}]}, "r1"
    )
    assert (early.status, early.body["outcome"]) == (200, "APPLIED")
    assert await points(gw, "ada") is None
    bought = await send_event(
        gw, "purchase.completed", purchase_data("o-1", "ada", TEE, SHOE), "msg_p"
    )
    assert bought.status == 200
    assert await points(gw, "ada") == Points(available=0, pending=190 - 140)
    # The platform sends the refund again: one effect.
    again = await send_event(
        gw, "purchase.refunded", {"orderId": "o-1", "lines": [{"sku": "SHOE", "quantity": 1}]}, "r1"
    )
    assert again.body.get("repeat") is True
    assert await points(gw, "ada") == Points(available=0, pending=50)
