"""The `paypal` source over real HTTP, PayPal's API faked on a loopback port: deliveries
signed with the fake's RSA key (SHA256withRSA over id|time|webhook id|crc32) and checked
by its verify-webhook-signature, exact points from captures, partial and full refunds
mapped to their order, repeats, refusals that leave the ledger as it was, the OAuth
token kept until it expires, and PayPal down then back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from backends.fakes.paypal import FakePaypal, new_key
from tests.backends.conftest import NO_BONUSES
from tests.support.gateway import Gateway, running_gateway
from tests.support.inbound import (
    SECRETS,
    Answer,
    Points,
    counts,
    encode,
    inbound_deliveries,
    points,
    post,
)

SAMPLES = Path(__file__).parents[1] / "samples" / "paypal"
CAPTURE = "02335565G34798738"  # the capture of the documented PAYMENT.CAPTURE.COMPLETED


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SAMPLES / name).read_text())
    return loaded


@pytest.fixture
async def paypal() -> AsyncIterator[FakePaypal]:
    async with FakePaypal().serving() as fake:
        yield fake


@pytest.fixture
async def gw(database_url: str, paypal: FakePaypal) -> AsyncIterator[Gateway]:
    async with running_gateway(
        database_url,
        webhook_secrets=SECRETS,
        paypal=paypal.paypal_section(),
        bonuses=NO_BONUSES,
    ) as gw:
        yield gw


async def send(
    gw: Gateway, paypal: FakePaypal, event: dict[str, Any], transmission: str | None = None
) -> Answer:
    body = encode(event)
    headers = paypal.sign(body, transmission or f"t-{event['id']}", gw.clock.now)
    return await post(gw, "paypal", body, headers)


def captured(
    event_id: str,
    value: str,
    *,
    capture_id: str = CAPTURE,
    custom_id: str | None = "ada",
    invoice_id: str | None = "inv-1",
    currency: str = "USD",
) -> dict[str, Any]:
    """The documented PAYMENT.CAPTURE.COMPLETED with these values (`invoice_id` added:
    the merchant sets it on the order's purchase unit)."""
    event = sample("payment_capture_completed.json")
    event["id"] = event_id
    resource = event["resource"]
    resource.update(id=capture_id, amount={"currency_code": currency, "value": value})
    for name, field in (("custom_id", custom_id), ("invoice_id", invoice_id)):
        if field is None:
            resource.pop(name, None)
        else:
            resource[name] = field
    return event


def refunded(
    event_id: str,
    value: str,
    *,
    refund_id: str,
    capture_id: str = CAPTURE,
    invoice_id: str | None = None,
) -> dict[str, Any]:
    """The documented PAYMENT.CAPTURE.REFUNDED (which has no `invoice_id`), refunding
    `value` of `capture_id`."""
    event = sample("payment_capture_refunded.json")
    event["id"] = event_id
    resource = event["resource"]
    resource.update(id=refund_id, amount={"currency_code": "USD", "value": value})
    resource["links"][1]["href"] = f"https://api.paypal.com/v2/payments/captures/{capture_id}"
    if invoice_id is not None:
        resource["invoice_id"] = invoice_id
    return event


async def test_captures_earn_exact_points_and_refunds_find_their_order(
    gw: Gateway, paypal: FakePaypal
) -> None:
    paypal.captures[CAPTURE] = captured("x", "120.00")["resource"]
    bought = await send(gw, paypal, captured("WH-1", "120.00"))
    assert (bought.status, bought.body["outcome"]) == (200, "APPLIED"), bought.body
    assert await points(gw, "ada") == Points(available=0, pending=120)

    # The refund carries the capture's invoice_id: no call to PayPal for it.
    partial = await send(gw, paypal, refunded("WH-2", "30.00", refund_id="R1", invoice_id="inv-1"))
    assert (partial.status, partial.body["outcome"]) == (200, "APPLIED"), partial.body
    assert await points(gw, "ada") == Points(available=0, pending=90)
    assert paypal.capture_requests == 0

    # Without one: the capture its up link names is read for its invoice_id.
    full = await send(gw, paypal, refunded("WH-3", "90.00", refund_id="R2"))
    assert (full.status, full.body["outcome"]) == (200, "APPLIED"), full.body
    assert await points(gw, "ada") == Points(available=0, pending=0)
    assert paypal.capture_requests == 1

    assert (paypal.token_requests, paypal.verify_requests) == (1, 3)  # one token for all
    outcomes = [(row.event_id, row.topic, row.outcome) for row in await inbound_deliveries(gw)]
    assert outcomes == [
        ("WH-1", "PAYMENT.CAPTURE.COMPLETED", "APPLIED"),
        ("WH-2", "PAYMENT.CAPTURE.REFUNDED", "APPLIED"),
        ("WH-3", "PAYMENT.CAPTURE.REFUNDED", "APPLIED"),
    ]


async def test_the_documented_events_without_invoice_id_use_the_capture_id(
    gw: Gateway, paypal: FakePaypal
) -> None:
    event = sample("payment_capture_completed.json")  # as published: custom_id, no invoice_id
    customer = event["resource"]["custom_id"]
    paypal.captures[CAPTURE] = event["resource"]
    assert (await send(gw, paypal, event)).status == 200
    assert await points(gw, customer) == Points(available=0, pending=23)  # floor(23.99)

    refund = await send(gw, paypal, refunded("WH-R", "23.99", refund_id="R1"))
    assert (refund.status, refund.body["outcome"]) == (200, "APPLIED"), refund.body
    assert await points(gw, customer) == Points(available=0, pending=0)


async def test_a_resent_event_has_one_effect(gw: Gateway, paypal: FakePaypal) -> None:
    event = captured("WH-1", "50.00")
    first = await send(gw, paypal, event, transmission="t-1")
    again = await send(gw, paypal, event, transmission="t-2")  # PayPal's retry or resend
    assert (first.status, again.status) == (200, 200)
    assert again.body["repeat"] is True
    other = await send(gw, paypal, captured("WH-2", "50.00"))  # same invoice, another event
    assert (other.status, other.body["outcome"]) == (200, "DUPLICATE")
    assert await points(gw, "ada") == Points(available=0, pending=50)


async def test_a_zero_decimal_currency(database_url: str, paypal: FakePaypal) -> None:
    async with running_gateway(
        database_url,
        currency="JPY",
        webhook_secrets=SECRETS,
        paypal=paypal.paypal_section(),
        bonuses=NO_BONUSES,
    ) as gw:
        answer = await send(gw, paypal, captured("WH-1", "1500", currency="JPY"))
        assert answer.status == 200, answer.body
        assert await points(gw, "ada") == Points(available=0, pending=1500)
        fraction = await send(gw, paypal, captured("WH-2", "1500.5", currency="JPY"))
        assert fraction.status == 422
        assert fraction.body["reason"] == (
            "resource.amount.value has more decimal places than JPY has"
        )


CASES = [
    "tampered body",
    "another key",
    "another webhook id",
    "stale transmission time",
    "missing signature header",
    "reserialized",
    "certificate not PayPal's",
]


@pytest.mark.parametrize("case", CASES)
async def test_bad_signatures_are_401_and_change_nothing(
    gw: Gateway, paypal: FakePaypal, case: str
) -> None:
    body = encode(captured("WH-1", "50.00"))
    now = gw.clock.now
    headers = paypal.sign(body, "t-1", now)
    if case == "tampered body":
        body = body.replace(b'"value":"50.00"', b'"value":"950.00"')
    elif case == "another key":
        headers = paypal.sign(body, "t-1", now, key=new_key())
    elif case == "another webhook id":
        headers = paypal.sign(body, "t-1", now, webhook_id="8PT597110X687430LKGECATA")
    elif case == "stale transmission time":
        headers = paypal.sign(body, "t-1", now - timedelta(minutes=6))
    elif case == "missing signature header":
        del headers["PAYPAL-TRANSMISSION-SIG"]
    elif case == "reserialized":
        body = json.dumps(json.loads(body), indent=2).encode()
    else:
        headers["PAYPAL-CERT-URL"] = "https://attacker.example/v1/notifications/certs/CERT-1"
    before = await counts(gw)
    answer = await post(gw, "paypal", body, headers)
    assert answer.status == 401
    assert answer.body["error"] == "INVALID_SIGNATURE"
    assert await counts(gw) == before
    assert await inbound_deliveries(gw) == []
    asked = case not in {"stale transmission time", "missing signature header"}
    assert paypal.verify_requests == (1 if asked else 0)


async def test_the_reason_of_a_refused_signature(gw: Gateway, paypal: FakePaypal) -> None:
    body = encode(captured("WH-1", "50.00"))
    headers = paypal.sign(body + b" ", "t-1", gw.clock.now)
    answer = await post(gw, "paypal", body, headers)
    assert (answer.status, answer.body["reason"]) == (
        401,
        "PayPal's verification_status is 'FAILURE'",
    )
    stale = paypal.sign(body, "t-2", datetime(2026, 3, 2, 14, 0).astimezone())
    answer = await post(gw, "paypal", body, stale)
    assert answer.body["reason"] == "paypal-transmission-time is more than 5 minutes from now"


async def test_other_events_and_captures_without_a_customer_are_ignored(
    gw: Gateway, paypal: FakePaypal
) -> None:
    other = {**captured("WH-1", "50.00"), "event_type": "CHECKOUT.ORDER.APPROVED"}
    minimal = sample("payment_capture_completed_minimal.json")
    answers = [await send(gw, paypal, other), await send(gw, paypal, minimal)]
    assert [(a.status, a.body["outcome"], a.body["reason"]) for a in answers] == [
        (200, "IGNORED", "event type 'CHECKOUT.ORDER.APPROVED' is not one this source acts on"),
        (200, "IGNORED", "the capture has no custom_id naming a customer"),
    ]
    assert (await counts(gw)).entries == 0


@pytest.mark.parametrize(
    ("event", "error", "reason"),
    [
        (
            captured("WH-1", "50.00", currency="EUR"),
            "CURRENCY_MISMATCH",
            "this program counts in USD, not EUR",
        ),
        (
            captured("WH-1", "12.345"),
            "INVALID_PAYLOAD",
            "resource.amount.value has more decimal places than USD has",
        ),
        (
            captured("WH-1", "1e3"),
            "INVALID_PAYLOAD",
            "resource.amount.value must be a decimal string such as 10.99",
        ),
        (
            {
                **refunded("WH-1", "1.00", refund_id="R1"),
                "resource": {
                    "id": "R1",
                    "amount": {"currency_code": "USD", "value": "1.00"},
                    "links": [],
                },
            },
            "INVALID_PAYLOAD",
            "resource.links has no rel=up link to the refunded capture",
        ),
    ],
    ids=["currency", "cents of cents", "exponent", "refund without its capture"],
)
async def test_an_event_that_can_never_apply_is_422_with_a_reason(
    gw: Gateway, paypal: FakePaypal, event: dict[str, Any], error: str, reason: str
) -> None:
    before = await counts(gw)
    answer = await send(gw, paypal, event)
    assert answer.status == 422
    assert (answer.body["error"], answer.body["reason"]) == (error, reason)
    assert await counts(gw) == before
    [row] = await inbound_deliveries(gw)
    assert row.outcome == "REJECTED"


async def test_paypal_down_is_503_and_nothing_is_recorded_then_applied_once(
    gw: Gateway, paypal: FakePaypal
) -> None:
    paypal.status = 503
    before = await counts(gw)
    down = await send(gw, paypal, captured("WH-1", "50.00"))
    assert down.status == 503
    assert down.headers["retry-after"] == "5"
    assert await counts(gw) == before
    assert await inbound_deliveries(gw) == []

    paypal.status = 200
    back = await send(gw, paypal, captured("WH-1", "50.00"), transmission="t-retry")
    assert (back.status, back.body["outcome"]) == (200, "APPLIED")
    again = await send(gw, paypal, captured("WH-1", "50.00"), transmission="t-retry-2")
    assert again.body["repeat"] is True
    assert await points(gw, "ada") == Points(available=0, pending=50)


async def test_the_capture_lookup_down_is_503_then_the_refund_applies_once(
    gw: Gateway, paypal: FakePaypal
) -> None:
    paypal.captures[CAPTURE] = captured("x", "50.00")["resource"]
    assert (await send(gw, paypal, captured("WH-1", "50.00"))).status == 200
    paypal.capture_status = 500
    before = await counts(gw)
    down = await send(gw, paypal, refunded("WH-2", "50.00", refund_id="R1"))
    assert down.status == 503
    assert await counts(gw) == before
    paypal.capture_status = 200
    back = await send(gw, paypal, refunded("WH-2", "50.00", refund_id="R1"), transmission="t-2b")
    assert (back.status, back.body["outcome"]) == (200, "APPLIED")
    assert await points(gw, "ada") == Points(available=0, pending=0)
    outcomes = [(row.event_id, row.outcome, row.attempts) for row in await inbound_deliveries(gw)]
    assert outcomes == [("WH-1", "APPLIED", 1), ("WH-2", "APPLIED", 2)]


async def test_the_token_is_kept_until_it_expires_and_renewed_when_refused(
    gw: Gateway, paypal: FakePaypal
) -> None:
    paypal.expires_in = 1
    assert (await send(gw, paypal, captured("WH-1", "10.00", invoice_id="inv-1"))).status == 200
    await asyncio.sleep(1.2)
    assert (await send(gw, paypal, captured("WH-2", "10.00", invoice_id="inv-2"))).status == 200
    assert paypal.token_requests == 2

    paypal.expires_in = 32400
    await asyncio.sleep(1.2)
    assert (await send(gw, paypal, captured("WH-3", "10.00", invoice_id="inv-3"))).status == 200
    paypal.tokens.clear()  # PayPal revoked it before it expired
    assert (await send(gw, paypal, captured("WH-4", "10.00", invoice_id="inv-4"))).status == 200
    assert paypal.token_requests == 4
    assert await points(gw, "ada") == Points(available=0, pending=40)


async def test_refused_app_credentials_are_503_with_a_clear_reason(
    database_url: str, paypal: FakePaypal
) -> None:
    config = {**paypal.paypal_section(), "client_secret": "revoked"}
    async with running_gateway(
        database_url, webhook_secrets=SECRETS, paypal=config, bonuses=NO_BONUSES
    ) as gw:
        answer = await send(gw, paypal, captured("WH-1", "10.00"))
        assert answer.status == 503
        assert answer.body["reason"] == (
            "PayPal refused the app's credentials (401, invalid_client: Client Authentication "
            "failed): check [paypal] client_id and client_secret"
        )
        assert await inbound_deliveries(gw) == []


async def test_a_refund_before_its_capture_is_kept_until_the_capture_arrives(
    gw: Gateway, paypal: FakePaypal
) -> None:
    early = await send(gw, paypal, refunded("WH-R", "30.00", refund_id="R1", invoice_id="inv-1"))
    assert (early.status, early.body["outcome"]) == (200, "APPLIED"), early.body
    assert await points(gw, "ada") is None
    bought = await send(gw, paypal, captured("WH-C", "120.00"))
    assert bought.status == 200, bought.body
    assert await points(gw, "ada") == Points(available=0, pending=90)


async def test_without_a_paypal_section_the_source_is_404(
    database_url: str, paypal: FakePaypal
) -> None:
    async with running_gateway(database_url, webhook_secrets=SECRETS) as gw:
        answer = await send(gw, paypal, captured("WH-1", "10.00"))
        assert (answer.status, answer.body["error"]) == (404, "NOT_FOUND")
        assert paypal.verify_requests == 0


async def test_deliveries_at_once_share_one_token(gw: Gateway, paypal: FakePaypal) -> None:
    paypal.latency = 0.2
    answers = await asyncio.gather(
        *(send(gw, paypal, captured(f"WH-{n}", "10.00", invoice_id=f"inv-{n}")) for n in range(5))
    )
    assert [answer.status for answer in answers] == [200] * 5
    assert paypal.token_requests == 1
    assert await points(gw, "ada") == Points(available=0, pending=50)
