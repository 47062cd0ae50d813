"""One order reported by two platforms: WooCommerce's order webhook and Stripe's
payment for it (the same order id and customer) earn once, whichever comes first."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.backends.conftest import NO_BONUSES
from tests.support.commerce_webhooks import (
    COMMERCE_SECRETS,
    send_stripe,
    send_woo,
    stripe_event,
    stripe_intent,
    woo_order,
)
from tests.support.gateway import Gateway, running_gateway
from tests.support.inbound import Points, counts, inbound_deliveries, points

# WooCommerce order 727 of customer 42: 16.80 of goods (16 points); Stripe charged its
# 28.06 total, shipping and tax included, for the same order and customer.
PAYMENT = stripe_event(
    "evt_727", "payment_intent.succeeded", stripe_intent(2806, customer_id="42", order_id="727")
)


@pytest.fixture
async def gw(database_url: str) -> AsyncIterator[Gateway]:
    async with running_gateway(
        database_url, webhook_secrets=COMMERCE_SECRETS, bonuses=NO_BONUSES
    ) as gw:
        yield gw


async def test_woocommerce_then_stripe_earns_once(gw: Gateway) -> None:
    woo = await send_woo(gw, woo_order())
    assert (woo.status, woo.body["outcome"]) == (200, "APPLIED")
    before = await counts(gw)
    stripe = await send_stripe(gw, PAYMENT)
    assert (stripe.status, stripe.body["outcome"]) == (200, "DUPLICATE")
    after = await counts(gw)
    # Nothing earned twice (the refused command's idempotency key is kept, as for any).
    assert (after.members, after.entries, after.orders) == (
        before.members,
        before.entries,
        before.orders,
    )
    assert await points(gw, "42") == Points(available=0, pending=16)
    assert [(row.endpoint, row.outcome) for row in await inbound_deliveries(gw)] == [
        ("woocommerce", "APPLIED"),
        ("stripe", "DUPLICATE"),
    ]


async def test_stripe_then_woocommerce_earns_once(gw: Gateway) -> None:
    stripe = await send_stripe(gw, PAYMENT)
    assert (stripe.status, stripe.body["outcome"]) == (200, "APPLIED")
    before = await counts(gw)
    woo = await send_woo(gw, woo_order())
    assert (woo.status, woo.body["outcome"]) == (200, "DUPLICATE")
    after = await counts(gw)
    # Nothing earned twice (the refused command's idempotency key is kept, as for any).
    assert (after.members, after.entries, after.orders) == (
        before.members,
        before.entries,
        before.orders,
    )
    # The first report decides: Stripe's one line of 28.06.
    assert await points(gw, "42") == Points(available=0, pending=28)
