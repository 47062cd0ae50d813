"""WooCommerce and Stripe deliveries built from their documented samples
(tests/samples/woocommerce, tests/samples/stripe) and signed as each platform signs:
WooCommerce with hmac as its webhook class does, Stripe with the `stripe` package."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import time
from functools import cache
from pathlib import Path
from typing import Any

from stripe import WebhookSignature

from tests.support.gateway import Gateway
from tests.support.inbound import SECRETS, Answer, encode, post
from tests.support.ledger import T0

SAMPLES = Path(__file__).parent.parent / "samples"
WOO_SECRET = "wc-5f3c1a0e&9b7d4e2a8c6f1b3d5e7a9c0b"
WOO_OLD_SECRET = "wc-0123456789abcdef0123456789abcdef"
STRIPE_SECRET = "whsec_test_1LoyaltyGatewayCurrentEndpointSecret"
STRIPE_OLD_SECRET = "whsec_test_1LoyaltyGatewayRotatedOutEndpointSecret"
COMMERCE_SECRETS = {
    **SECRETS,
    "woocommerce": [WOO_SECRET, WOO_OLD_SECRET],
    "stripe": [STRIPE_SECRET, STRIPE_OLD_SECRET],
}


@cache
def _sample(platform: str, name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SAMPLES / platform / name).read_text())
    return loaded


# -- WooCommerce ------------------------------------------------------------------------


def woo_order(**changes: Any) -> dict[str, Any]:
    """The documented order (`order_retrieve_v3.json`, 2 × 3.00 and 1 × 12.00) as a
    registered customer's completed order paid at T0 − 1 h, its second line 10%
    off by a coupon (12.00 → 10.80): 16.80 earns 16 points. `changes` replace
    top-level fields."""
    order = copy.deepcopy(_sample("woocommerce", "order_retrieve_v3.json"))
    order["line_items"][1]["total"] = "10.80"
    order["line_items"][1]["total_tax"] = "0.81"
    order.update(
        status="completed",
        customer_id=42,
        discount_total="1.20",
        cart_tax="1.26",
        total_tax="1.26",
        total="28.06",
        date_paid_gmt="2026-03-02T14:00:00",
        date_created_gmt="2026-03-02T13:58:00",
        date_completed_gmt="2026-03-02T14:00:05",
        coupon_lines=[{"id": 320, "code": "tenoff", "discount": "1.20", "discount_tax": "0.09"}],
    )
    order.update(changes)
    return order


def woo_refund(refund_id: int, total: str) -> dict[str, Any]:
    """An entry of an order's `refunds[]` (`id`, `reason`, `total`, negative)."""
    return {"id": refund_id, "reason": "", "total": f"-{total}"}


def woo_headers(
    body: bytes,
    topic: str = "order.updated",
    delivery_id: str = "d1",
    secret: str = WOO_SECRET,
) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    resource, _, event = topic.partition(".")
    return {
        "Content-Type": "application/json",
        "User-Agent": "WooCommerce/10.3.0 Hookshot (WordPress/6.8.0)",
        "X-WC-Webhook-Source": "https://shop.example/",
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Resource": resource,
        "X-WC-Webhook-Event": event,
        "X-WC-Webhook-Signature": base64.b64encode(digest).decode(),
        "X-WC-Webhook-ID": "7",
        "X-WC-Webhook-Delivery-ID": delivery_id,
    }


async def send_woo(
    gw: Gateway,
    order: dict[str, Any],
    topic: str = "order.updated",
    delivery_id: str = "d1",
    *,
    secret: str = WOO_SECRET,
) -> Answer:
    body = encode(order)
    return await post(gw, "woocommerce", body, woo_headers(body, topic, delivery_id, secret))


# -- Stripe -----------------------------------------------------------------------------


def stripe_intent(
    amount: int = 2599,
    currency: str = "usd",
    *,
    intent_id: str = "pi_3LoyaltyOrder727",
    **metadata: str,
) -> dict[str, Any]:
    """The documented PaymentIntent (`fixture_payment_intent.json`) as succeeded at T0
    − 1 h, `metadata` by default {customer_id: 42, order_id: 727}."""
    intent = copy.deepcopy(_sample("stripe", "fixture_payment_intent.json"))
    intent.update(
        id=intent_id,
        amount=amount,
        amount_received=amount,
        currency=currency,
        status="succeeded",
        created=int(T0.timestamp()) - 3600,
        canceled_at=None,
        last_payment_error=None,
        next_action=None,
        latest_charge="ch_3LoyaltyOrder727",
        metadata=metadata or {"customer_id": "42", "order_id": "727"},
    )
    return intent


def stripe_charge(
    amount: int, refunded: int, *, intent_id: str = "pi_3LoyaltyOrder727", currency: str = "usd"
) -> dict[str, Any]:
    """The documented Charge (`fixture_charge.json`) of `intent_id`, `refunded` of it
    refunded so far; its metadata empty, as Stripe leaves it."""
    charge = copy.deepcopy(_sample("stripe", "fixture_charge.json"))
    charge.update(
        id="ch_3LoyaltyOrder727",
        amount=amount,
        amount_captured=amount,
        amount_refunded=refunded,
        captured=True,
        currency=currency,
        payment_intent=intent_id,
        refunded=refunded == amount,
    )
    return charge


def stripe_event(
    event_id: str,
    kind: str,
    obj: dict[str, Any],
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The documented event envelope (`fixture_event.json`) around `obj`, created at
    T0 − 3500 s."""
    event = copy.deepcopy(_sample("stripe", "fixture_event.json"))
    data: dict[str, Any] = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    event.update(
        id=event_id,
        type=kind,
        data=data,
        api_version="2026-02-25.clover",
        created=int(T0.timestamp()) - 3500,
        pending_webhooks=1,
    )
    return event


def refund_event(event_id: str, amount: int, before: int, after: int) -> dict[str, Any]:
    """`charge.refunded`: the charge's refunds grew from `before` to `after`."""
    return stripe_event(
        event_id,
        "charge.refunded",
        stripe_charge(amount, after),
        {"amount_refunded": before, "refunded": False},
    )


def stripe_headers(
    body: bytes, secret: str = STRIPE_SECRET, at: int | None = None
) -> dict[str, str]:
    header = WebhookSignature.generate_signature_header(
        body.decode(), secret, int(time.time()) if at is None else at
    )
    return {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        "Stripe-Signature": header,
    }


async def send_stripe(
    gw: Gateway, event: dict[str, Any], *, secret: str = STRIPE_SECRET, program: str = "test"
) -> Answer:
    body = encode(event)
    return await post(gw, "stripe", body, stripe_headers(body, secret), program)
