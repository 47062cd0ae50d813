"""The `stripe` source over real HTTP, signed with the `stripe` package: a succeeded
PaymentIntent earns once, refunds of its charge reverse exact points (the order read
back from the Stripe API, a fake on a loopback port), zero-decimal currencies are whole
units, and signatures, staleness and rotation are the stripe library's own checks."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from stripe import WebhookSignature

from backends.amounts import ZERO_DECIMAL_CURRENCIES, from_minor_units, minor_unit_exponent
from backends.fakes.stripe import API_KEY, FakeStripe
from tests.backends.conftest import NO_BONUSES
from tests.support.commerce_webhooks import (
    COMMERCE_SECRETS,
    STRIPE_OLD_SECRET,
    STRIPE_SECRET,
    refund_event,
    send_stripe,
    stripe_event,
    stripe_headers,
    stripe_intent,
)
from tests.support.gateway import Gateway, running_gateway
from tests.support.inbound import Points, counts, encode, inbound_deliveries, points, post
from tests.support.ledger import T0

PAID = stripe_event("evt_paid", "payment_intent.succeeded", stripe_intent())  # 25.99 → 25


@pytest.fixture
async def fake_stripe() -> AsyncIterator[FakeStripe]:
    fake = FakeStripe()
    fake.add_intent(stripe_intent())
    async with fake.serving():
        yield fake


@pytest.fixture
async def gw(database_url: str, fake_stripe: FakeStripe) -> AsyncIterator[Gateway]:
    async with running_gateway(
        database_url,
        webhook_secrets=COMMERCE_SECRETS,
        bonuses=NO_BONUSES,
        stripe={"api_key": API_KEY, "base_url": fake_stripe.base},
    ) as gw:
        yield gw


async def test_a_payment_earns_then_partial_and_full_refunds_reverse(gw: Gateway) -> None:
    paid = await send_stripe(gw, PAID)
    assert (paid.status, paid.body["outcome"]) == (200, "APPLIED")
    assert await points(gw, "42") == Points(available=0, pending=25)

    # 10.00 of 25.99 refunded: floor(25 × 10.00 / 25.99) = 9 reversed.
    partial = await send_stripe(gw, refund_event("evt_r1", 2599, 0, 1000))
    assert (partial.status, partial.body["outcome"]) == (200, "APPLIED")
    assert await points(gw, "42") == Points(available=0, pending=16)

    # The cumulative amount_refunded reaches the whole charge: the event refunds the
    # 15.99 it adds, and everything is reversed.
    full = await send_stripe(gw, refund_event("evt_r2", 2599, 1000, 2599))
    assert (full.status, full.body["outcome"]) == (200, "APPLIED")
    assert await points(gw, "42") == Points(available=0, pending=0)
    assert [(row.event_id, row.topic, row.outcome) for row in await inbound_deliveries(gw)] == [
        ("evt_paid", "payment_intent.succeeded", "APPLIED"),
        ("evt_r1", "charge.refunded", "APPLIED"),
        ("evt_r2", "charge.refunded", "APPLIED"),
    ]


async def test_refund_events_out_of_order_and_resent_apply_once(gw: Gateway) -> None:
    assert (await send_stripe(gw, PAID)).status == 200
    second = refund_event("evt_r2", 2599, 1000, 1500)
    assert (await send_stripe(gw, second)).body["outcome"] == "APPLIED"
    # 5.00 refunded: floor(25 × 5.00 / 25.99) = 4.
    assert await points(gw, "42") == Points(available=0, pending=21)
    assert (await send_stripe(gw, refund_event("evt_r1", 2599, 0, 1000))).status == 200
    # 15.00 in all: floor(25 × 15.00 / 25.99) = 14.
    assert await points(gw, "42") == Points(available=0, pending=11)

    before = await counts(gw)
    resent = await send_stripe(gw, second)
    assert (resent.status, resent.body.get("repeat")) == (200, True)
    # The same refund under another event id: the charge's total is the key.
    copy = refund_event("evt_r2_copy", 2599, 1000, 1500)
    duplicate = await send_stripe(gw, copy)
    assert (duplicate.status, duplicate.body["outcome"]) == (200, "DUPLICATE")
    assert await counts(gw) == before
    assert await points(gw, "42") == Points(available=0, pending=11)


async def test_a_duplicated_delivery_has_one_effect(gw: Gateway) -> None:
    assert (await send_stripe(gw, PAID)).body["outcome"] == "APPLIED"
    before = await counts(gw)
    again = await send_stripe(gw, PAID)
    assert (again.status, again.body["outcome"], again.body["repeat"]) == (200, "APPLIED", True)
    # The same PaymentIntent in another event: one effect per intent.
    other = stripe_event("evt_paid_again", "payment_intent.succeeded", stripe_intent())
    duplicate = await send_stripe(gw, other)
    assert (duplicate.status, duplicate.body["outcome"]) == (200, "DUPLICATE")
    assert await counts(gw) == before
    assert await points(gw, "42") == Points(available=0, pending=25)


@pytest.mark.parametrize(
    "case", ["tampered", "wrong secret", "stale", "missing", "reserialized", "malformed"]
)
async def test_a_bad_signature_is_401_and_stores_nothing(gw: Gateway, case: str) -> None:
    body = encode(PAID)
    secret = "whsec_not_the_endpoint_secret" if case == "wrong secret" else STRIPE_SECRET
    # Stripe's tolerance is 300 s: a signature 301 s old is refused.
    at = int(time.time()) - 301 if case == "stale" else None
    headers = stripe_headers(body, secret, at)
    if case == "tampered":
        body = body.replace(b'"amount_received":2599', b'"amount_received":9999')
    elif case == "missing":
        del headers["Stripe-Signature"]
    elif case == "reserialized":
        body = json.dumps(json.loads(body), indent=2).encode()
    elif case == "malformed":
        headers["Stripe-Signature"] = "v1=abc"
    before = await counts(gw)
    answer = await post(gw, "stripe", body, headers)
    assert answer.status == 401
    assert answer.body["error"] == "INVALID_SIGNATURE"
    assert await counts(gw) == before
    assert await inbound_deliveries(gw) == []


async def test_several_v1_signatures_and_a_rotated_secret_verify(gw: Gateway) -> None:
    # During Stripe's secret roll the header carries one v1 per live secret.
    body = encode(PAID)
    at = int(time.time())
    old = WebhookSignature._compute_signature(f"{at}.{body.decode()}", STRIPE_OLD_SECRET)
    header = f"t={at},v1={'0' * 64},v1={old}"
    answer = await post(gw, "stripe", body, {"Stripe-Signature": header})
    assert (answer.status, answer.body["outcome"]) == (200, "APPLIED")


async def test_an_unknown_type_and_a_payment_without_loyalty_metadata_are_ignored(
    gw: Gateway,
) -> None:
    created = stripe_event("evt_created", "payment_intent.created", stripe_intent())
    answer = await send_stripe(gw, created)
    assert (answer.status, answer.body["outcome"]) == (200, "IGNORED")
    assert answer.body["reason"] == (
        "event type 'payment_intent.created' is not one this source acts on"
    )
    plain = stripe_intent(note="a plain payment")
    answer = await send_stripe(gw, stripe_event("evt_plain", "payment_intent.succeeded", plain))
    assert (answer.status, answer.body["outcome"]) == (200, "IGNORED")
    assert (await counts(gw)).entries == 0


@pytest.mark.parametrize(
    ("intent", "reason"),
    [
        ({"amount_received": "25.99"}, "data.object.amount_received must be an integer"),
        ({"amount_received": -1}, "data.object.amount_received must be an integer"),
        ({"currency": "us dollars"}, "data.object.currency must be a three-letter"),
        ({"currency": "eur"}, "this program counts in USD, not EUR"),
    ],
)
async def test_a_payload_that_never_applies_is_422_with_a_reason(
    gw: Gateway, intent: dict[str, Any], reason: str
) -> None:
    event = stripe_event("evt_bad", "payment_intent.succeeded", {**stripe_intent(), **intent})
    before = await counts(gw)
    answer = await send_stripe(gw, event)
    assert answer.status == 422
    assert reason in answer.body["reason"]
    assert await counts(gw) == before
    assert [row.outcome for row in await inbound_deliveries(gw)] == ["REJECTED"]


async def test_a_refund_of_an_intent_stripe_does_not_know_is_422(
    gw: Gateway, fake_stripe: FakeStripe
) -> None:
    assert (await send_stripe(gw, PAID)).status == 200
    event = refund_event("evt_r1", 2599, 0, 1000)
    event["data"]["object"]["payment_intent"] = "pi_unknown"
    before = await counts(gw)
    answer = await send_stripe(gw, event)
    assert answer.status == 422
    assert "No such payment_intent: 'pi_unknown'" in answer.body["reason"]
    assert await counts(gw) == before


async def test_a_refund_of_a_payment_outside_the_program_is_ignored(
    gw: Gateway, fake_stripe: FakeStripe
) -> None:
    fake_stripe.add_intent(stripe_intent(intent_id="pi_plain", note="a plain payment"))
    event = refund_event("evt_r1", 2599, 0, 1000)
    event["data"]["object"]["payment_intent"] = "pi_plain"
    answer = await send_stripe(gw, event)
    assert (answer.status, answer.body["outcome"]) == (200, "IGNORED")
    assert fake_stripe.requests == 1
    assert (await counts(gw)).entries == 0


async def test_a_charge_naming_its_order_needs_no_api_call(
    gw: Gateway, fake_stripe: FakeStripe
) -> None:
    assert (await send_stripe(gw, PAID)).status == 200
    event = refund_event("evt_r1", 2599, 0, 1000)
    event["data"]["object"]["metadata"] = {"order_id": "727"}
    fake_stripe.status = 500  # never asked
    assert (await send_stripe(gw, event)).body["outcome"] == "APPLIED"
    assert fake_stripe.requests == 0
    assert await points(gw, "42") == Points(available=0, pending=16)


async def test_without_an_api_key_a_charge_without_its_order_is_422(database_url: str) -> None:
    async with running_gateway(
        database_url, webhook_secrets=COMMERCE_SECRETS, bonuses=NO_BONUSES
    ) as gw:
        assert (await send_stripe(gw, PAID)).status == 200
        before = await counts(gw)
        answer = await send_stripe(gw, refund_event("evt_r1", 2599, 0, 1000))
        assert answer.status == 422
        assert "set [stripe] api_key" in answer.body["reason"]
        assert await counts(gw) == before


async def test_the_stripe_api_down_is_503_then_the_retry_applies_once(
    gw: Gateway, fake_stripe: FakeStripe
) -> None:
    assert (await send_stripe(gw, PAID)).status == 200
    before = await counts(gw)
    fake_stripe.status = 500
    refund = refund_event("evt_r1", 2599, 0, 1000)
    down = await send_stripe(gw, refund)
    assert down.status == 503
    assert down.headers["retry-after"] == "5"
    assert await counts(gw) == before
    assert await points(gw, "42") == Points(available=0, pending=25)

    fake_stripe.status = 200
    retried = await send_stripe(gw, refund)
    assert (retried.status, retried.body["outcome"]) == (200, "APPLIED")
    assert (await send_stripe(gw, refund)).body.get("repeat") is True
    assert await points(gw, "42") == Points(available=0, pending=16)
    assert [row.outcome for row in await inbound_deliveries(gw)] == ["APPLIED", "APPLIED"]


async def test_a_slow_stripe_api_times_out_as_503(gw: Gateway, fake_stripe: FakeStripe) -> None:
    assert (await send_stripe(gw, PAID)).status == 200
    fake_stripe.latency = 5.0  # past the client's 3 s total timeout
    answer = await send_stripe(gw, refund_event("evt_r1", 2599, 0, 1000))
    assert answer.status == 503
    assert await points(gw, "42") == Points(available=0, pending=25)


async def test_jpy_is_whole_units(database_url: str) -> None:
    # 5,000 yen at one point per 100 yen is 50 points (not 0.50 of a point).
    async with running_gateway(
        database_url,
        webhook_secrets=COMMERCE_SECRETS,
        bonuses=NO_BONUSES,
        currency="JPY",
        earning={"points_per_unit": "0.01"},
    ) as gw:
        event = stripe_event("evt_jpy", "payment_intent.succeeded", stripe_intent(5000, "jpy"))
        answer = await send_stripe(gw, event)
        assert (answer.status, answer.body["outcome"]) == (200, "APPLIED")
        assert await points(gw, "42") == Points(available=0, pending=50)


def test_minor_units_convert_exactly_by_the_currency_exponent() -> None:
    assert str(from_minor_units(1099, "usd")) == "10.99"
    assert str(from_minor_units(500, "JPY")) == "500"
    assert str(from_minor_units(1234, "kwd")) == "1.234"
    assert str(from_minor_units(10**15 - 1, "usd")) == "9999999999999.99"
    assert {minor_unit_exponent(code) for code in ZERO_DECIMAL_CURRENCIES} == {0}
    assert "JPY" in ZERO_DECIMAL_CURRENCIES and "KRW" in ZERO_DECIMAL_CURRENCIES


async def test_the_purchase_happens_when_the_event_says(gw: Gateway) -> None:
    # The intent was created on Monday; it succeeded (the event) on Tuesday 10:00 in
    # New York, when the Tuesday multiplier (1.5) holds: floor(25.99 × 1.5) = 38.
    tuesday = stripe_event("evt_tue", "payment_intent.succeeded", stripe_intent())
    tuesday["created"] = int(T0.timestamp()) + 86_400
    gw.clock.advance(days=2)
    answer = await send_stripe(gw, tuesday)
    assert (answer.status, answer.body["outcome"]) == (200, "APPLIED")
    assert await points(gw, "42") == Points(available=0, pending=38)
