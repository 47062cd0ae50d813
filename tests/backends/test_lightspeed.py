"""The `lightspeed` source over real HTTP: Lightspeed Retail (X-Series) `sale.update`
deliveries, form-encoded and signed as its webhooks are, through purchases, return
sales, repeats and refusals.

Sales are built from tests/samples/lightspeed/api10_register_sale_closed.json (an API
1.0 `register_sale`, the object a `sale.update` payload carries); the tests change its
ids, customer (the sample's is the walk-in customer), dates and product lines.
"""

from __future__ import annotations

import base64
import copy
import json
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from backends.sources.lightspeed import signature_of
from tests.support.gateway import Gateway, running_gateway
from tests.support.inbound import Answer, Points, counts, inbound_deliveries, points, post

SECRET = "ls-client-secret-3f9a1c7e5b2d4086"
SAMPLE = Path(__file__).parents[1] / "samples" / "lightspeed" / "api10_register_sale_closed.json"
NO_BONUSES = {"signup": 0, "referrer": 0, "referee": 0}


@pytest.fixture
async def gw(database_url: str) -> AsyncIterator[Gateway]:
    async with running_gateway(
        database_url, webhook_secrets={"lightspeed": SECRET}, bonuses=NO_BONUSES
    ) as gw:
        yield gw


def product(sku: str, quantity: int, price: float) -> dict[str, Any]:
    """A `register_sale_products` line; prices as JSON numbers, as API 1.0 sends them."""
    return {
        "id": f"line-{sku}-{quantity}",
        "product_id": f"prod-{sku}",
        "sku": sku,
        "name": sku.title(),
        "quantity": quantity,
        "price": price,
        "discount": 0,
        "tax": 0,
        "price_total": quantity * price,
        "status": "CONFIRMED",
    }


# 3 × 1.90 + 3 × 6.10 = 24.00 exactly (23.999999999999996 through floats).
LINES = [product("PEN", 3, 1.9), product("INK", 3, 6.1)]


def sale(
    sale_id: str = "sale-1", *, lines: list[dict[str, Any]] | None = None, **changes: Any
) -> dict[str, Any]:
    base = json.loads(SAMPLE.read_text())["register_sales"][0]
    data: dict[str, Any] = copy.deepcopy(base)
    data.update(
        id=sale_id,
        customer_id="cust-ada",
        sale_date="2026-03-02 14:30:00",
        register_sale_products=LINES if lines is None else lines,
        version=1,
    )
    data["customer"] = {**data["customer"], "id": "cust-ada", "customer_code": "ADA-1"}
    data.update(changes)
    return data


def form(payload: dict[str, Any]) -> bytes:
    return urllib.parse.urlencode(
        {"payload": json.dumps(payload), "environment": "prod", "domain_prefix": "acme"}
    ).encode()


def headers(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {
        "X-Signature": f"signature={signature_of(secret, body)},algorithm=HMAC-SHA256",
        "Content-Type": "application/x-www-form-urlencoded",
    }


async def send(gw: Gateway, payload: dict[str, Any], secret: str = SECRET) -> Answer:
    body = form(payload)
    return await post(gw, "lightspeed", body, headers(body, secret))


async def test_a_closed_sale_earns_and_return_sales_refund_it(gw: Gateway) -> None:
    bought = await send(gw, sale())
    assert (bought.status, bought.body["outcome"]) == (200, "APPLIED")
    assert await points(gw, "cust-ada") == Points(available=0, pending=24)

    # A return of one INK (6.10 of 24.00): floor(24 × 6.10 / 24) = 6 reversed.
    partial = sale("sale-2", lines=[product("INK", -1, 6.1)], return_for="sale-1")
    answer = await send(gw, partial)
    assert (answer.status, answer.body["outcome"]) == (200, "APPLIED")
    assert await points(gw, "cust-ada") == Points(available=0, pending=18)

    # The rest returned: everything reversed, never more.
    rest = sale(
        "sale-3", lines=[product("PEN", -3, 1.9), product("INK", -2, 6.1)], return_for="sale-1"
    )
    assert (await send(gw, rest)).status == 200
    assert await points(gw, "cust-ada") == Points(available=0, pending=0)
    rows = [(row.event_id, row.topic, row.outcome) for row in await inbound_deliveries(gw)]
    assert rows == [
        ("sale-1:v1", "sale.update", "APPLIED"),
        ("sale-2:v1", "sale.update", "APPLIED"),
        ("sale-3:v1", "sale.update", "APPLIED"),
    ]


async def test_a_return_that_arrives_before_its_sale_is_kept_until_it_comes(
    gw: Gateway,
) -> None:
    early = await send(gw, sale("sale-2", lines=[product("INK", -1, 6.1)], return_for="sale-1"))
    assert early.status == 200
    assert await points(gw, "cust-ada") is None
    assert (await send(gw, sale())).body["outcome"] == "APPLIED"
    assert await points(gw, "cust-ada") == Points(available=0, pending=18)


async def test_repeats_of_a_sale_apply_once(gw: Gateway) -> None:
    assert (await send(gw, sale())).body["outcome"] == "APPLIED"
    again = await send(gw, sale())
    assert (again.status, again.body["outcome"], again.body["repeat"]) == (200, "APPLIED", True)
    # A later version of the same closed sale (a note edited): the order earned already.
    later = await send(gw, sale(version=2, note="gift wrap"))
    assert (later.status, later.body["outcome"]) == (200, "DUPLICATE")
    assert await points(gw, "cust-ada") == Points(available=0, pending=24)
    assert (await counts(gw)).orders == 1


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (sale(status="SAVED"), "sale sale-1 is 'SAVED', not closed"),
        (sale(status="LAYBY"), "sale sale-1 is 'LAYBY', not closed"),
        (sale(customer_id=None), "sale sale-1 has no customer"),
        (
            sale(customer_id="walk-in", customer={"customer_code": "WALKIN"}),
            "sale sale-1 has no customer",
        ),
        (
            {"id": "prod-1", "handle": "pen", "name": "Pen", "price": 1.9},
            "a non-sale webhook is not one this source acts on",
        ),
    ],
)
async def test_open_sales_and_other_webhooks_are_ignored(
    gw: Gateway, payload: dict[str, Any], reason: str
) -> None:
    before = await counts(gw)
    answer = await send(gw, payload)
    assert (answer.status, answer.body["outcome"], answer.body["reason"]) == (
        200,
        "IGNORED",
        reason,
    )
    assert await counts(gw) == before


def _tampered(body: bytes) -> bytes:
    return body.replace(b"1.9", b"9.9")


def _reserialized(body: bytes) -> bytes:
    payload = urllib.parse.parse_qs(body.decode())["payload"][0]
    spaced = json.dumps(json.loads(payload), indent=1)
    return urllib.parse.urlencode({"payload": spaced}).encode()


def _base64_signature(body: bytes, h: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    digest = base64.b64encode(bytes.fromhex(signature_of(SECRET, body))).decode()
    return body, {**h, "X-Signature": f"signature={digest},algorithm=HMAC-SHA256"}


def _payload_signature(body: bytes, h: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    payload = urllib.parse.parse_qs(body.decode())["payload"][0].encode()
    return body, headers(payload) | {"Content-Type": h["Content-Type"]}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda body, h: (_tampered(body), h), "X-Signature does not match the body"),
        (
            lambda body, h: (body, headers(body, "another-app-secret")),
            "X-Signature does not match the body",
        ),
        (
            lambda body, h: (body, {"Content-Type": h["Content-Type"]}),
            "the X-Signature header is missing",
        ),
        (lambda body, h: (_reserialized(body), h), "X-Signature does not match the body"),
        (
            lambda body, h: (body, {**h, "X-Signature": h["X-Signature"].split(",")[0]}),
            "X-Signature must name algorithm=HMAC-SHA256",
        ),
        # The same HMAC in base64: only the documented hex form is accepted.
        (_base64_signature, "X-Signature does not match the body"),
        # An HMAC of the payload field alone: the whole form body is what is signed.
        (_payload_signature, "X-Signature does not match the body"),
    ],
    ids=[
        "tampered",
        "wrong-secret",
        "missing",
        "reserialized",
        "no-algorithm",
        "base64",
        "payload-only",
    ],
)
async def test_bad_signatures_are_401_and_store_nothing(
    gw: Gateway, change: Any, reason: str
) -> None:
    before = await counts(gw)
    body = form(sale())
    sent, sent_headers = change(body, headers(body))
    answer = await post(gw, "lightspeed", sent, sent_headers)
    assert (answer.status, answer.body["error"], answer.body["reason"]) == (
        401,
        "INVALID_SIGNATURE",
        reason,
    )
    assert await counts(gw) == before
    assert await inbound_deliveries(gw) == []


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (
            sale(lines=[{**product("PEN", 3, 1.9), "quantity": "three"}]),
            "register_sale_products.0.quantity: 'three' is not a decimal",
        ),
        (
            sale(lines=[{**product("PEN", 3, 1.9), "sku": None, "product_id": None}]),
            "register_sale_products.0.sku is missing or not a string",
        ),
        (sale(sale_date="yesterday"), "payload.sale_date must be a date and time"),
    ],
)
async def test_a_sale_that_can_never_apply_is_422_and_writes_nothing(
    gw: Gateway, payload: dict[str, Any], reason: str
) -> None:
    before = await counts(gw)
    answer = await send(gw, payload)
    assert (answer.status, answer.body["error"], answer.body["reason"]) == (
        422,
        "INVALID_PAYLOAD",
        reason,
    )
    assert await counts(gw) == before
