"""The `shopify` source over real HTTP, on both databases, signed with hmac as Shopify
signs: orders/paid, refunds/create (by line item, at the stored amounts), customers,
GDPR topics, signatures refused with nothing changed, one earn per order across
deliveries and sources, and a refund that comes before its purchase.

Bodies are built from `tests/samples/shopify/`. What was added to them:
- orders/paid is the sample order resource unwrapped from its `{"order": ...}` REST
  envelope, with `financial_status` "paid", no `refunds` yet, and `created_at` /
  `processed_at` moved to the test clock's day (the sample's 2008 is past the
  program's backdating window);
- refunds/create is the sample order's `refunds[0]` (a refund resource), whose lines
  are cut down where a test refunds fewer;
- customers/create is not among the samples: a customer resource of the fields the
  source reads (`id`, `email`, `first_name`, `last_name`) and a few it does not.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.backends.conftest import NO_BONUSES
from tests.support.gateway import Gateway, running_gateway
from tests.support.inbound import (
    SECRETS,
    SHOPIFY_OLD_SECRET,
    Points,
    counts,
    encode,
    inbound_deliveries,
    points,
    post,
    purchase_data,
    send_event,
    send_shopify,
    shopify_headers,
)

SAMPLES = Path(__file__).parent.parent / "samples" / "shopify"
CUSTOMER = "207119551"
ORDER = "450789469"
# 100 points per 1.00, so a cent of difference between two lines shows in the points.
EARNING = {"points_per_unit": "100"}
# Line amounts: 199.00 − 3.34 (green) = 195.66; − 3.33 (red, black) = 195.67 each.
EARNED = 58700  # 587.00 × 100; the 11.94 tax and the free shipping earn nothing
GREEN, RED, BLACK = 466157049, 518995019, 703073504


def sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / name).read_text())
    return data


def order_paid() -> dict[str, Any]:
    order: dict[str, Any] = copy.deepcopy(sample("order_resource_excerpt.json")["order"])
    order["financial_status"] = "paid"
    order["refunds"] = []
    order["created_at"] = order["processed_at"] = "2026-03-02T09:00:00-05:00"
    return order


def refund(*line_items: int) -> dict[str, Any]:
    """The sample refund, refunding only `line_items` (all of its lines by default)."""
    data: dict[str, Any] = copy.deepcopy(
        sample("order_resource_excerpt.json")["order"]["refunds"][0]
    )
    if line_items:
        data["refund_line_items"] = [
            item for item in data["refund_line_items"] if item["line_item_id"] in line_items
        ]
    return data


def customer() -> dict[str, Any]:
    return {
        "id": int(CUSTOMER),
        "email": "bob.norman@mail.example.com",
        "first_name": "Bob",
        "last_name": "Norman",
        "state": "enabled",
        "verified_email": True,
        "currency": "USD",
    }


@pytest.fixture
async def gw(database_url: str) -> AsyncIterator[Gateway]:
    async with running_gateway(
        database_url, webhook_secrets=SECRETS, bonuses=NO_BONUSES, earning=EARNING
    ) as gateway:
        yield gateway


async def test_orders_paid_then_partial_and_full_refunds_by_line_item(gw: Gateway) -> None:
    paid = await send_shopify(gw, "orders/paid", order_paid(), "wh-1")
    assert (paid.status, paid.body["outcome"]) == (200, "APPLIED")
    assert await points(gw, CUSTOMER) == Points(available=0, pending=EARNED)

    # The black line earned on 195.67 (Shopify's sample says subtotal 195.66 for it).
    partial = await send_shopify(gw, "refunds/create", refund(BLACK), "wh-2")
    assert (partial.status, partial.body["outcome"]) == (200, "APPLIED")
    assert await points(gw, CUSTOMER) == Points(available=0, pending=EARNED - 19567)

    rest = refund(GREEN)
    rest["id"] = 509562970
    rest["refund_line_items"].append(
        {"id": 104689540, "line_item_id": RED, "quantity": 1, "subtotal": 195.67}
    )
    full = await send_shopify(gw, "refunds/create", rest, "wh-3")
    assert (full.status, full.body["outcome"]) == (200, "APPLIED")
    assert await points(gw, CUSTOMER) == Points(available=0, pending=0)

    before = await counts(gw)
    again = refund(GREEN)
    again["id"] = 509562971
    over = await send_shopify(gw, "refunds/create", again, "wh-4")
    assert over.status == 422
    assert (over.body["error"], over.body["reason"]) == (
        "INVALID_AMOUNT",
        "more than remains refundable on the order",
    )
    assert await counts(gw) == before
    outcomes = [(row.event_id, row.topic, row.outcome) for row in await inbound_deliveries(gw)]
    assert outcomes == [
        ("wh-1", "orders/paid", "APPLIED"),
        ("wh-2", "refunds/create", "APPLIED"),
        ("wh-3", "refunds/create", "APPLIED"),
        ("wh-4", "refunds/create", "REJECTED"),
    ]


async def test_a_redelivery_and_the_same_order_again_earn_once(gw: Gateway) -> None:
    assert (await send_shopify(gw, "orders/paid", order_paid(), "wh-1")).status == 200
    repeat = await send_shopify(gw, "orders/paid", order_paid(), "wh-1")
    assert (repeat.status, repeat.body.get("repeat")) == (200, True)
    # Shopify sends orders/paid again under a new webhook id (another subscription).
    other = await send_shopify(gw, "orders/paid", order_paid(), "wh-2")
    assert (other.status, other.body["outcome"]) == (200, "DUPLICATE")
    # And the till reports the same order through the events source.
    data = purchase_data(ORDER, CUSTOMER, {"sku": "X", "quantity": 1, "unitPrice": "587.00"})
    via_events = await send_event(gw, "purchase.completed", data, "msg_1")
    assert (via_events.status, via_events.body["outcome"]) == (200, "DUPLICATE")
    assert await points(gw, CUSTOMER) == Points(available=0, pending=EARNED)
    rows = [
        (row.endpoint, row.event_id, row.outcome, row.attempts)
        for row in await inbound_deliveries(gw)
    ]
    assert rows == [
        ("shopify", "wh-1", "APPLIED", 2),
        ("shopify", "wh-2", "DUPLICATE", 1),
        ("events", "msg_1", "DUPLICATE", 1),
    ]


@pytest.mark.parametrize(
    "case", ["tampered", "wrong secret", "missing", "not base64", "reserialized"]
)
async def test_a_bad_hmac_is_401_and_nothing_changes(gw: Gateway, case: str) -> None:
    body = encode(order_paid())
    headers = shopify_headers(body, "orders/paid", "wh-1")
    sent = body
    if case == "tampered":
        sent = body.replace(b'"199.00"', b'"999.00"', 1)
    elif case == "wrong secret":
        headers = shopify_headers(body, "orders/paid", "wh-1", secret="shpss_not_ours")
    elif case == "missing":
        del headers["X-Shopify-Hmac-Sha256"]
    elif case == "not base64":
        headers["X-Shopify-Hmac-Sha256"] = "not base64!"
    else:  # the same order, serialized with spaces: the HMAC covers the bytes sent
        sent = json.dumps(order_paid()).encode()
    before = await counts(gw)
    answer = await post(gw, "shopify", sent, headers)
    assert answer.status == 401
    assert answer.body["error"] == "INVALID_SIGNATURE"
    assert await counts(gw) == before
    assert await inbound_deliveries(gw) == []
    assert await points(gw, CUSTOMER) is None


async def test_the_previous_secret_is_accepted_during_a_rotation(gw: Gateway) -> None:
    answer = await send_shopify(gw, "orders/paid", order_paid(), "wh-1", secret=SHOPIFY_OLD_SECRET)
    assert answer.status == 200, answer.body
    assert await points(gw, CUSTOMER) == Points(available=0, pending=EARNED)


async def test_a_refund_before_its_purchase_is_applied_when_the_purchase_arrives(
    gw: Gateway,
) -> None:
    early = await send_shopify(gw, "refunds/create", refund(BLACK), "wh-1")
    assert (early.status, early.body["outcome"]) == (200, "APPLIED")
    assert await points(gw, CUSTOMER) is None  # no member, no order yet
    paid = await send_shopify(gw, "orders/paid", order_paid(), "wh-2")
    assert paid.status == 200
    assert await points(gw, CUSTOMER) == Points(available=0, pending=EARNED - 19567)
    # Shopify delivers the refund again: it was applied once.
    again = await send_shopify(gw, "refunds/create", refund(BLACK), "wh-1")
    assert again.body.get("repeat") is True
    assert await points(gw, CUSTOMER) == Points(available=0, pending=EARNED - 19567)


async def test_unknown_topics_guests_and_gdpr_requests_are_200_and_recorded(gw: Gateway) -> None:
    before = await counts(gw)
    guest = order_paid()
    del guest["customer"]
    cases = [
        ("products/update", {"id": 1}, "wh-1"),
        ("orders/paid", guest, "wh-2"),
        ("customers/data_request", sample("customers_data_request.json"), "wh-3"),
        ("shop/redact", sample("shop_redact.json"), "wh-4"),
    ]
    for topic, body, webhook_id in cases:
        answer = await send_shopify(gw, topic, body, webhook_id)
        assert (answer.status, answer.body["outcome"]) == (200, "IGNORED"), topic
    assert await counts(gw) == before
    rows = [
        (row.topic, row.outcome, row.attempt_log[0]["reason"])
        for row in await inbound_deliveries(gw)
    ]
    assert rows == [
        ("products/update", "IGNORED", "topic 'products/update' is not one this source acts on"),
        ("orders/paid", "IGNORED", "a guest order: no customer to credit"),
        (
            "customers/data_request",
            "IGNORED",
            "a data request for customer 191167: answer it with exportMember",
        ),
        (
            "shop/redact",
            "IGNORED",
            "shop/redact: erasing the program's data is left to its operator",
        ),
    ]


async def test_customers_create_enrolls_and_customers_redact_forgets(gw: Gateway) -> None:
    created = await send_shopify(gw, "customers/create", customer(), "wh-1")
    assert (created.status, created.body["outcome"]) == (200, "APPLIED")
    member = (
        await gw.partner(f'{{ member(ref: {{customerId: "{CUSTOMER}"}}) {{ email name }} }}')
    )["member"]
    assert member == {"email": "bob.norman@mail.example.com", "name": "Bob Norman"}

    redact = sample("customers_redact.json")
    redact["customer"]["id"] = int(CUSTOMER)
    forgotten = await send_shopify(gw, "customers/redact", redact, "wh-2")
    assert (forgotten.status, forgotten.body["outcome"]) == (200, "APPLIED")
    assert await points(gw, CUSTOMER) is None
    # The sample's customer was never a member: nothing to erase, answered 200.
    unknown = await send_shopify(gw, "customers/redact", sample("customers_redact.json"), "wh-3")
    assert (unknown.status, unknown.body["outcome"]) == (200, "DUPLICATE")


async def test_without_auto_enroll_new_customers_and_their_orders_are_ignored(
    database_url: str,
) -> None:
    async with running_gateway(
        database_url, webhook_secrets=SECRETS, bonuses=NO_BONUSES, auto_enroll=False
    ) as gw:
        answer = await send_shopify(gw, "customers/create", customer(), "wh-1")
        assert (answer.status, answer.body["outcome"]) == (200, "IGNORED")
        # Nor does an order make a member of someone who is not one: 200, nothing to retry.
        order = await send_shopify(gw, "orders/paid", order_paid(), "wh-2")
        assert (order.status, order.body["outcome"]) == (200, "IGNORED")
        assert ((await counts(gw)).members, (await counts(gw)).entries) == (0, 0)
        rows = [(row.outcome, row.attempt_log[0]["reason"]) for row in await inbound_deliveries(gw)]
        assert rows == [
            ("IGNORED", "the program does not enrol customers on the fly (auto_enroll)"),
            ("IGNORED", "UNKNOWN_MEMBER: no such member in this program"),
        ]


@pytest.mark.parametrize(
    ("change", "code", "reason"),
    [
        ({"currency": "EUR"}, "CURRENCY_MISMATCH", "this program counts in USD, not EUR"),
        ({"processed_at": "2008-01-10T11:00:00-05:00"}, "INVALID_INPUT", None),
        ({"line_items": [{"id": 1, "price": "abc", "quantity": 1}]}, "INVALID_PAYLOAD", None),
        ({"customer": "207119551"}, "INVALID_PAYLOAD", "customer must be an object"),
    ],
)
async def test_an_order_that_can_never_apply_is_422_and_writes_nothing(
    gw: Gateway, change: dict[str, Any], code: str, reason: str | None
) -> None:
    before = await counts(gw)
    answer = await send_shopify(gw, "orders/paid", {**order_paid(), **change}, "wh-1")
    assert answer.status == 422
    assert answer.body["error"] == code
    if reason is not None:
        assert answer.body["reason"] == reason
    assert await counts(gw) == before
    [row] = await inbound_deliveries(gw)
    assert (row.outcome, row.last_status) == ("REJECTED", 422)


async def test_a_missing_webhook_id_is_422_recorded_under_the_body_hash(gw: Gateway) -> None:
    body = encode(order_paid())
    headers = shopify_headers(body, "orders/paid", "wh-1")
    del headers["X-Shopify-Webhook-Id"]
    answer = await post(gw, "shopify", body, headers)
    assert (answer.status, answer.body["reason"]) == (
        422,
        "the x-shopify-webhook-id header is missing",
    )
    [row] = await inbound_deliveries(gw)
    assert row.event_id is not None and row.event_id.startswith("sha256:")
    assert await points(gw, CUSTOMER) is None
