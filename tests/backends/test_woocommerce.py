"""The `woocommerce` source over real HTTP: completed orders earn once, refunds on the
order reverse exact points, the creation ping is answered, and signatures are checked
on the raw body before anything is stored."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ledger.errors import ProgramFileError
from tests.backends.conftest import NO_BONUSES
from tests.support.commerce_webhooks import (
    COMMERCE_SECRETS,
    WOO_OLD_SECRET,
    WOO_SECRET,
    send_woo,
    woo_headers,
    woo_order,
    woo_refund,
)
from tests.support.gateway import Gateway, running_gateway
from tests.support.inbound import Points, counts, encode, inbound_deliveries, points, post
from tests.support.ledger import make_program


@pytest.fixture
async def gw(database_url: str) -> AsyncIterator[Gateway]:
    async with running_gateway(
        database_url, webhook_secrets=COMMERCE_SECRETS, bonuses=NO_BONUSES
    ) as gw:
        yield gw


async def outcomes(gw: Gateway) -> list[tuple[str | None, str, str]]:
    return [(row.event_id, row.topic, row.outcome) for row in await inbound_deliveries(gw)]


async def test_a_completed_order_earns_then_partial_and_full_refunds_reverse(gw: Gateway) -> None:
    # Created while processing: nothing yet.
    created = await send_woo(gw, woo_order(status="processing"), "order.created", "d1")
    assert (created.status, created.body["outcome"]) == (200, "IGNORED")
    assert await points(gw, "42") is None

    # Completed: 2 × 3.00 + 10.80 (after the coupon) = 16.80 → 16 points, pending.
    completed = await send_woo(gw, woo_order(), "order.updated", "d2")
    assert (completed.status, completed.body["outcome"]) == (200, "APPLIED")
    assert await points(gw, "42") == Points(available=0, pending=16)

    # A partial refund of 8.40: floor(16 × 8.40 / 16.80) = 8 reversed.
    partial = woo_order(refunds=[woo_refund(801, "8.40")])
    assert (await send_woo(gw, partial, "order.updated", "d3")).body["outcome"] == "APPLIED"
    assert await points(gw, "42") == Points(available=0, pending=8)

    # The rest (19.66, shipping and tax included): only the 8.40 of goods left counts,
    # and everything is reversed, never more.
    refunded = woo_order(
        status="refunded", refunds=[woo_refund(802, "19.66"), woo_refund(801, "8.40")]
    )
    full = await send_woo(gw, refunded, "order.updated", "d4")
    assert (full.status, full.body["outcome"]) == (200, "APPLIED")
    assert await points(gw, "42") == Points(available=0, pending=0)

    assert await outcomes(gw) == [
        ("order:727:processing", "order.created", "IGNORED"),
        ("order:727:completed", "order.updated", "APPLIED"),
        ("order:727:completed:refunds:801", "order.updated", "APPLIED"),
        ("order:727:refunded:refunds:801,802", "order.updated", "APPLIED"),
    ]


async def test_a_redelivered_order_has_one_effect(gw: Gateway) -> None:
    # WooCommerce's delivery id is new each time: the order's state is the key.
    assert (await send_woo(gw, woo_order(), "order.updated", "d1")).body["outcome"] == "APPLIED"
    again = await send_woo(gw, woo_order(), "order.updated", "d2")
    assert (again.status, again.body["outcome"], again.body["repeat"]) == (200, "APPLIED", True)
    # order.created of the same completed order: the order already earned.
    created = await send_woo(gw, woo_order(), "order.created", "d3")
    assert (created.status, created.body["outcome"]) == (200, "APPLIED")
    assert created.body.get("repeat") is True
    assert await points(gw, "42") == Points(available=0, pending=16)

    refund = woo_order(refunds=[woo_refund(801, "8.40")])
    assert (await send_woo(gw, refund, "order.updated", "d4")).body["outcome"] == "APPLIED"
    before = await counts(gw)
    repeat = await send_woo(gw, refund, "order.updated", "d5")
    assert (repeat.status, repeat.body.get("repeat")) == (200, True)
    assert await counts(gw) == before
    assert await points(gw, "42") == Points(available=0, pending=8)


async def test_the_creation_ping_is_answered_200_and_recorded(gw: Gateway) -> None:
    ping = await post(
        gw,
        "woocommerce",
        b"webhook_id=7",
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (ping.status, ping.body["outcome"]) == (200, "IGNORED")
    assert await outcomes(gw) == [("ping:7", "ping", "IGNORED")]
    assert (await counts(gw)).members == 0


async def test_a_rotated_out_secret_still_verifies(gw: Gateway) -> None:
    answer = await send_woo(gw, woo_order(), secret=WOO_OLD_SECRET)
    assert (answer.status, answer.body["outcome"]) == (200, "APPLIED")


@pytest.mark.parametrize("case", ["tampered", "wrong secret", "missing", "reserialized", "junk"])
async def test_a_bad_signature_is_401_and_stores_nothing(gw: Gateway, case: str) -> None:
    body = encode(woo_order())
    headers = woo_headers(body, secret="not-the-secret" if case == "wrong secret" else WOO_SECRET)
    if case == "tampered":
        body = body.replace(b'"customer_id":42', b'"customer_id":43')
    elif case == "missing":
        del headers["X-WC-Webhook-Signature"]
    elif case == "reserialized":
        body = json.dumps(json.loads(body), indent=2).encode()
    elif case == "junk":
        headers["X-WC-Webhook-Signature"] = "not base64!"
    before = await counts(gw)
    answer = await post(gw, "woocommerce", body, headers)
    assert answer.status == 401
    assert answer.body["error"] == "INVALID_SIGNATURE"
    assert await counts(gw) == before
    assert await inbound_deliveries(gw) == []


async def test_an_unknown_topic_is_200_and_ignored(gw: Gateway) -> None:
    product = {"id": 93, "name": "Woo Single #1", "sku": "", "price": "3.00"}
    answer = await send_woo(gw, product, "product.updated", "d-prod")
    assert (answer.status, answer.body["outcome"]) == (200, "IGNORED")
    assert answer.body["reason"] == "topic 'product.updated' is not one this source acts on"
    assert await outcomes(gw) == [("d-prod", "product.updated", "IGNORED")]
    assert (await counts(gw)).entries == 0


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"line_items": []}, "line_items must be a non-empty list"),
        ({"refunds": [{"id": 801, "total": -8.4}]}, "refunds.0.total: "),
        ({"customer_id": "42"}, "customer_id must be an integer"),
        ({"currency": "EUR"}, "this program counts in USD, not EUR"),
    ],
)
async def test_a_payload_that_never_applies_is_422_with_a_reason(
    gw: Gateway, changes: dict[str, Any], reason: str
) -> None:
    before = await counts(gw)
    answer = await send_woo(gw, woo_order(**changes))
    assert answer.status == 422
    assert reason in answer.body["reason"]
    assert await counts(gw) == before
    assert [row.outcome for row in await inbound_deliveries(gw)] == ["REJECTED"]


async def test_guest_orders_are_ignored_by_default(gw: Gateway) -> None:
    answer = await send_woo(gw, woo_order(customer_id=0))
    assert (answer.status, answer.body["outcome"]) == (200, "IGNORED")
    assert "guest order" in answer.body["reason"]
    assert (await counts(gw)).members == 0


async def test_guest_orders_earn_by_billing_email_when_the_program_says(database_url: str) -> None:
    async with running_gateway(
        database_url,
        webhook_secrets=COMMERCE_SECRETS,
        bonuses=NO_BONUSES,
        woocommerce={"guests": "email"},
    ) as gw:
        order = woo_order(customer_id=0)
        order["billing"]["email"] = "John.Doe@Example.com"
        assert (await send_woo(gw, order)).body["outcome"] == "APPLIED"
        assert await points(gw, "john.doe@example.com") == Points(available=0, pending=16)


def test_the_guests_option_is_validated() -> None:
    with pytest.raises(ProgramFileError) as raised:
        make_program(woocommerce={"guests": "all"})
    assert raised.value.key == "woocommerce.guests"
    assert "'email' or 'ignore'" in raised.value.reason


async def test_the_purchase_happens_when_the_order_completed(gw: Gateway) -> None:
    # Paid on Monday, completed (shipped) on Tuesday 10:00 in New York, when the
    # Tuesday multiplier (1.5) holds: floor(16.80 × 1.5) = 25.
    gw.clock.advance(days=2)
    order = woo_order(date_completed_gmt="2026-03-03T15:00:00")
    assert (await send_woo(gw, order)).body["outcome"] == "APPLIED"
    assert await points(gw, "42") == Points(available=0, pending=25)
