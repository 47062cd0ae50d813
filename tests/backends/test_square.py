"""The `square` source over real HTTP, with Square's Orders API faked on a loopback port:
Square's own signature test vector, exact points from an order's line items, partial and
full refunds by amount, the `payment.updated` Square sends again after a refund, repeats,
refusals that leave the ledger as it was, and the Orders API down then back."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from backends.fakes.square import FakeSquare
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

SAMPLES = Path(__file__).parents[1] / "samples" / "square"
KEY = "sq0wss-Rk3n5yJ8cXb2Qp7LmT4vWz"
URL = "https://loyalty.example/webhooks/test/square"
SQUARE_SECRETS = {**SECRETS, "square": KEY, "square_notification_url": URL}


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SAMPLES / name).read_text())
    return loaded


@pytest.fixture
async def square() -> AsyncIterator[FakeSquare]:
    async with FakeSquare().serving() as fake:
        yield fake


@pytest.fixture
async def gw(database_url: str, square: FakeSquare) -> AsyncIterator[Gateway]:
    async with running_gateway(
        database_url,
        webhook_secrets=SQUARE_SECRETS,
        square=square.square_section(),
        bonuses=NO_BONUSES,
    ) as gw:
        yield gw


def signed(body: bytes, key: str = KEY, url: str = URL) -> dict[str, str]:
    digest = hmac.new(key.encode(), url.encode() + body, hashlib.sha256).digest()
    return {
        "x-square-hmacsha256-signature": base64.b64encode(digest).decode(),
        "content-type": "application/json",
    }


async def send(gw: Gateway, event: dict[str, Any]) -> Answer:
    body = encode(event)
    return await post(gw, "square", body, signed(body))


def payment_event(
    event_id: str,
    amount: int,
    *,
    payment_id: str = "pay-1",
    order_id: str | None = "ord-1",
    customer_id: str | None = "ada",
    status: str = "COMPLETED",
    currency: str = "USD",
    **extra: Any,
) -> dict[str, Any]:
    """The documented `payment.updated` example with these values (the example has no
    `customer_id`; Square sets it when it knows the buyer)."""
    event = sample("payment_updated.json")
    event["event_id"] = event["data"]["id"] = event_id
    payment = event["data"]["object"]["payment"]
    money = {"amount": amount, "currency": currency}
    payment.update(
        id=payment_id, status=status, amount_money=money, total_money=money, approved_money=money
    )
    for name, value in (("order_id", order_id), ("customer_id", customer_id)):
        if value is None:
            payment.pop(name, None)
        else:
            payment[name] = value
    payment.update(extra)
    return event


def refund_event(
    event_id: str, amount: int, *, refund_id: str, payment_id: str = "pay-1"
) -> dict[str, Any]:
    """The documented `refund.updated` example: its `order_id` is the refund's own order."""
    event = sample("refund_updated.json")
    event["event_id"] = event_id
    refund = event["data"]["object"]["refund"]
    refund.update(
        id=refund_id,
        payment_id=payment_id,
        amount_money={"amount": amount, "currency": "USD"},
        order_id=f"refund-order-of-{refund_id}",
    )
    event["data"]["id"] = refund_id
    return event


def order(order_id: str = "ord-1", customer_id: str | None = None) -> dict[str, Any]:
    """The documented RetrieveOrder example, amounts ×10: 1 × 50.00 less 25.00 and
    2 × 30.00 less 30.00 (an order discount spread over the lines) = 55.00 eligible."""
    found: dict[str, Any] = copy.deepcopy(sample("orders_retrieve_response.json")["order"])
    found["id"] = order_id
    first, second = found["line_items"]
    first["catalog_object_id"], second["catalog_object_id"] = "TEE", "MUG"
    for item in found["line_items"]:
        for name in ("base_price_money", "total_discount_money", "gross_sales_money"):
            item[name]["amount"] *= 10
    found.pop("customer_id")
    if customer_id is not None:
        found["customer_id"] = customer_id
    return found


async def test_square_signature_test_vector_is_accepted(database_url: str) -> None:
    vector = sample("webhook_test_notification.signature.json")
    body = (SAMPLES / vector["body_file"]).read_bytes()
    secrets = {
        "square": vector["signature_key"],
        "square_notification_url": vector["notification_url"],
    }
    square = {"base_url": "http://127.0.0.1:9", "token": "unused"}
    async with running_gateway(database_url, webhook_secrets=secrets, square=square) as gw:
        headers = {"x-square-hmacsha256-signature": vector["x-square-hmacsha256-signature"]}
        answer = await post(gw, "square", body, headers)
        assert (answer.status, answer.body["outcome"]) == (200, "IGNORED")
        assert (
            answer.body["reason"]
            == "event type 'webhooks.test_notification' is not one this source acts on"
        )
        tampered = await post(gw, "square", body.replace(b"MLEF", b"MLEG"), headers)
        assert tampered.status == 401


async def test_order_lines_earn_exact_points_and_refunds_reverse_them(
    gw: Gateway, square: FakeSquare
) -> None:
    square.add_order(order("ord-1"))
    bought = await send(gw, payment_event("ev-1", 5500))
    assert (bought.status, bought.body["outcome"]) == (200, "APPLIED"), bought.body
    assert await points(gw, "ada") == Points(available=0, pending=55)
    assert square.requests == [("/v2/orders/ord-1", "2026-08-19")]

    # 11.00 of 55.00 eligible: 11 points back.
    partial = await send(gw, refund_event("ev-2", 1100, refund_id="pay-1_r1"))
    assert (partial.status, partial.body["outcome"]) == (200, "APPLIED"), partial.body
    assert await points(gw, "ada") == Points(available=0, pending=44)

    # Square sends payment.updated again (still COMPLETED, now with the refund): no new points.
    again = payment_event(
        "ev-3",
        5500,
        refund_ids=["pay-1_r1"],
        refunded_money={"amount": 1100, "currency": "USD"},
    )
    repeat = await send(gw, again)
    assert (repeat.status, repeat.body["outcome"]) == (200, "DUPLICATE")
    assert await points(gw, "ada") == Points(available=0, pending=44)

    # The same refund named again by another refund.updated: one effect.
    twice = await send(gw, refund_event("ev-4", 1100, refund_id="pay-1_r1"))
    assert (twice.status, twice.body["outcome"]) == (200, "DUPLICATE")
    assert await points(gw, "ada") == Points(available=0, pending=44)

    full = await send(gw, refund_event("ev-5", 4400, refund_id="pay-1_r2"))
    assert (full.status, full.body["outcome"]) == (200, "APPLIED")
    assert await points(gw, "ada") == Points(available=0, pending=0)

    outcomes = [(row.event_id, row.topic, row.outcome) for row in await inbound_deliveries(gw)]
    assert outcomes == [
        ("ev-1", "payment.updated", "APPLIED"),
        ("ev-2", "refund.updated", "APPLIED"),
        ("ev-3", "payment.updated", "DUPLICATE"),
        ("ev-4", "refund.updated", "DUPLICATE"),
        ("ev-5", "refund.updated", "APPLIED"),
    ]


async def test_the_order_names_the_customer_when_the_payment_does_not(
    gw: Gateway, square: FakeSquare
) -> None:
    square.add_order(order("ord-2", customer_id="grace"))
    answer = await send(gw, payment_event("ev-1", 5500, order_id="ord-2", customer_id=None))
    assert answer.status == 200, answer.body
    assert await points(gw, "grace") == Points(available=0, pending=55)


async def test_a_payment_without_an_order_earns_on_its_amount(
    gw: Gateway, square: FakeSquare
) -> None:
    answer = await send(gw, payment_event("ev-1", 12399, order_id=None))
    assert (answer.status, answer.body["outcome"]) == (200, "APPLIED")
    assert await points(gw, "ada") == Points(available=0, pending=123)  # floor(123.99)
    assert square.requests == []


async def test_minor_units_of_a_zero_decimal_currency(database_url: str) -> None:
    square = {"base_url": "http://127.0.0.1:9", "token": "unused"}
    async with running_gateway(
        database_url,
        currency="JPY",
        webhook_secrets=SQUARE_SECRETS,
        square=square,
        bonuses=NO_BONUSES,
    ) as gw:
        answer = await send(gw, payment_event("ev-1", 1500, order_id=None, currency="JPY"))
        assert answer.status == 200, answer.body
        assert await points(gw, "ada") == Points(available=0, pending=1500)  # ¥1500, not ¥15


async def test_a_repeated_delivery_has_one_effect(gw: Gateway, square: FakeSquare) -> None:
    square.add_order(order("ord-1"))
    first = await send(gw, payment_event("ev-1", 5500))
    again = await send(gw, payment_event("ev-1", 5500))
    assert (first.status, again.status) == (200, 200)
    assert (again.body["outcome"], again.body["repeat"]) == ("APPLIED", True)
    assert await points(gw, "ada") == Points(available=0, pending=55)
    assert len(square.requests) == 1
    [row] = await inbound_deliveries(gw)
    assert row.attempts == 2


@pytest.mark.parametrize(
    "case",
    ["tampered body", "wrong key", "other notification URL", "missing header", "reserialized"],
)
async def test_bad_signatures_are_401_and_change_nothing(
    gw: Gateway, square: FakeSquare, case: str
) -> None:
    square.add_order(order("ord-1"))
    body = encode(payment_event("ev-1", 5500))
    headers = signed(body)
    if case == "tampered body":
        body = body.replace(b'"amount":5500', b'"amount":9500')
    elif case == "wrong key":
        headers = signed(body, key="sq0wss-an-old-or-other-key")
    elif case == "other notification URL":
        headers = signed(body, url="https://loyalty.example/webhooks/other/square")
    elif case == "missing header":
        headers = {"content-type": "application/json"}
    else:
        body = json.dumps(json.loads(body), indent=2).encode()
    before = await counts(gw)
    answer = await post(gw, "square", body, headers)
    assert answer.status == 401
    assert answer.body["error"] == "INVALID_SIGNATURE"
    assert await counts(gw) == before
    assert await inbound_deliveries(gw) == []
    assert square.requests == []


async def test_unknown_events_and_unfinished_payments_are_ignored(gw: Gateway) -> None:
    created = sample("refund_created.json")
    created["event_id"] = "ev-created"
    pending = refund_event("ev-pending", 100, refund_id="pay-1_r1")
    pending["data"]["object"]["refund"]["status"] = "PENDING"
    answers = [
        await send(gw, {**payment_event("ev-1", 5500), "type": "customer.created"}),
        await send(gw, payment_event("ev-2", 5500, status="APPROVED")),
        await send(gw, created),
        await send(gw, pending),
        await send(gw, payment_event("ev-3", 5500, order_id=None, customer_id=None)),
    ]
    assert [(a.status, a.body["outcome"], a.body["reason"]) for a in answers] == [
        (200, "IGNORED", "event type 'customer.created' is not one this source acts on"),
        (200, "IGNORED", "payment status 'APPROVED' is not COMPLETED"),
        (200, "IGNORED", "event type 'refund.created' is not one this source acts on"),
        (200, "IGNORED", "refund status 'PENDING' is not COMPLETED"),
        (200, "IGNORED", "the payment and its order name no customer"),
    ]
    assert (await counts(gw)).entries == 0


@pytest.mark.parametrize(
    ("event", "error", "reason"),
    [
        (
            payment_event("ev-1", 5500, order_id=None, currency="EUR"),
            "CURRENCY_MISMATCH",
            "this program counts in USD, not EUR",
        ),
        (
            payment_event("ev-1", 5500, order_id=None, amount_money={"amount": "55.00"}),
            "INVALID_PAYLOAD",
            "data.object.payment.amount_money.amount must be an integer between 0 and "
            "1000000000000000",
        ),
        (
            payment_event("ev-1", 5500, order_id="ord-missing"),
            "INVALID_PAYLOAD",
            "Square's Orders API answered 404 for order ord-missing: NOT_FOUND: "
            "Order with id `ord-missing` not found.",
        ),
    ],
    ids=["currency", "amount as a string", "unknown order"],
)
async def test_a_payment_that_can_never_apply_is_422_with_a_reason(
    gw: Gateway, event: dict[str, Any], error: str, reason: str
) -> None:
    before = await counts(gw)
    answer = await send(gw, event)
    assert answer.status == 422
    assert (answer.body["error"], answer.body["reason"]) == (error, reason)
    assert await counts(gw) == before
    [row] = await inbound_deliveries(gw)
    assert row.outcome == "REJECTED"


async def test_orders_api_down_is_503_then_the_retry_applies_once(
    gw: Gateway, square: FakeSquare
) -> None:
    square.add_order(order("ord-1"))
    square.status = 503
    before = await counts(gw)
    down = await send(gw, payment_event("ev-1", 5500))
    assert down.status == 503
    assert down.headers["retry-after"] == "5"
    assert await counts(gw) == before
    [row] = await inbound_deliveries(gw)
    assert row.outcome == "FAILED"

    square.status = 200
    back = await send(gw, payment_event("ev-1", 5500))
    assert (back.status, back.body["outcome"]) == (200, "APPLIED")
    again = await send(gw, payment_event("ev-1", 5500))
    assert again.body.get("repeat") is True
    assert await points(gw, "ada") == Points(available=0, pending=55)


async def test_a_slow_orders_api_is_503_within_bounds(gw: Gateway, square: FakeSquare) -> None:
    square.add_order(order("ord-1"))
    square.latency = 6.0  # past the client's 4 s total timeout
    answer = await send(gw, payment_event("ev-1", 5500))
    assert answer.status == 503
    assert "cannot be reached" in answer.body["reason"]
    assert (await counts(gw)).entries == 0


async def test_a_wrong_token_is_a_clear_refusal(database_url: str, square: FakeSquare) -> None:
    square.add_order(order("ord-1"))
    config = {**square.square_section(), "token": "EAAA-revoked"}
    async with running_gateway(
        database_url, webhook_secrets=SQUARE_SECRETS, square=config, bonuses=NO_BONUSES
    ) as gw:
        answer = await send(gw, payment_event("ev-1", 5500))
        assert answer.status == 422
        assert answer.body["reason"] == (
            "Square's Orders API answered 401 for order ord-1: "
            "UNAUTHORIZED: This request could not be authorized."
        )


async def test_gift_cards_earn_nothing_and_split_tenders_earn_their_own_amount(
    gw: Gateway, square: FakeSquare
) -> None:
    gift = order("ord-gift")
    gift["line_items"] = gift["line_items"][:1]
    gift["line_items"][0]["item_type"] = "GIFT_CARD"
    square.add_order(gift)
    sold = await send(gw, payment_event("ev-1", 2500, payment_id="pay-g", order_id="ord-gift"))
    assert (sold.status, sold.body["reason"]) == (200, "the order has no line items that earn")

    split = order("ord-split")
    split["tenders"] = [{"id": "pay-a"}, {"id": "pay-b"}]
    square.add_order(split)
    for event_id, payment_id, amount in (("ev-2", "pay-a", 2000), ("ev-3", "pay-b", 3500)):
        answer = await send(
            gw, payment_event(event_id, amount, payment_id=payment_id, order_id="ord-split")
        )
        assert answer.status == 200, answer.body
    assert await points(gw, "ada") == Points(available=0, pending=55)  # 20 + 35, not 110


async def test_a_refund_before_its_payment_is_kept_until_the_payment_arrives(
    gw: Gateway, square: FakeSquare
) -> None:
    square.add_order(order("ord-1"))
    early = await send(gw, refund_event("ev-1", 1100, refund_id="pay-1_r1"))
    assert (early.status, early.body["outcome"]) == (200, "APPLIED"), early.body
    assert await points(gw, "ada") is None
    bought = await send(gw, payment_event("ev-2", 5500))
    assert bought.status == 200, bought.body
    assert await points(gw, "ada") == Points(available=0, pending=44)  # 55 earned, 11 back


async def test_a_refund_in_another_currency_is_422(gw: Gateway) -> None:
    event = refund_event("ev-1", 1100, refund_id="pay-1_r1")
    event["data"]["object"]["refund"]["amount_money"]["currency"] = "EUR"
    answer = await send(gw, event)
    assert (answer.status, answer.body["reason"]) == (
        422,
        "data.object.refund.amount_money.currency is EUR, not USD",
    )


async def test_without_the_square_secret_the_source_is_404(database_url: str) -> None:
    async with running_gateway(database_url, webhook_secrets=SECRETS) as gw:
        body = encode(payment_event("ev-1", 5500))
        answer = await post(gw, "square", body, signed(body))
        assert (answer.status, answer.body["error"]) == (404, "NOT_FOUND")


async def test_the_fake_speaks_batch_retrieve_and_square_errors(square: FakeSquare) -> None:
    square.add_order(order("ord-1"))
    auth = {"Authorization": f"Bearer {square.token}", "Square-Version": "2026-08-19"}
    async with aiohttp.ClientSession() as http:
        url = f"{square.base}/v2/orders/batch-retrieve"
        async with http.post(url, json={"order_ids": ["ord-1", "nope"]}, headers=auth) as found:
            assert [o["id"] for o in (await found.json())["orders"]] == ["ord-1"]
        async with http.post(url, json={"order_ids": []}, headers=auth) as empty:
            assert empty.status == 400
            assert (await empty.json())["errors"][0]["code"] == "INVALID_ARRAY_LENGTH"
        async with http.get(f"{square.base}/v2/orders/ord-1") as anonymous:
            assert anonymous.status == 401
            assert (await anonymous.json())["errors"][0]["category"] == "AUTHENTICATION_ERROR"
