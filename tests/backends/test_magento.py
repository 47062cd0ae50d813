"""The `magento` source over real HTTP: Adobe Commerce webhooks signed with an RSA key
pair as Commerce signs them (base64 of the body, SHA-256), invoices earning, credit
memos refunding, and the `{"op": ...}` answers Commerce reads.

Payloads are built from the type skeletons in tests/samples/magento/ (Adobe publishes
no concrete example): the skeleton's keys with concrete values, plus the `order`
object (`increment_id`, `customer_id`, `customer_is_guest`) and the item `qty`,
`order_item_id` and `parent_item_id` that the hook's `fields` add (README).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ledger.errors import ProgramFileError
from tests.support.gateway import Gateway, running_gateway
from tests.support.inbound import Answer, Points, counts, inbound_deliveries, points, post
from tests.support.ledger import make_program

SAMPLES = Path(__file__).parents[1] / "samples" / "magento"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
NO_BONUSES = {"signup": 0, "referrer": 0, "referee": 0}
HEADER = "x-adobe-commerce-webhook-signature"


def pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture
async def gw(database_url: str) -> AsyncIterator[Gateway]:
    async with running_gateway(
        database_url, webhook_secrets={"magento": pem(KEY)}, bonuses=NO_BONUSES
    ) as gw:
        yield gw


def sign(body: bytes, key: rsa.RSAPrivateKey = KEY) -> str:
    """As Adobe Commerce signs: RSA-SHA256 over the base64 text of the body."""
    signature = key.sign(base64.b64encode(body), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode()


def _concrete(skeleton: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The skeleton's scalar keys, with `values` and zeros or blanks for the rest."""
    blank = {"float": 0, "int": 0, "string": "", "boolean": False}
    data = {key: blank.get(kind) for key, kind in skeleton.items() if isinstance(kind, str)}
    return {**data, **values}


def item(sku: str, qty: Any, price: Any, discount: Any = 0, **extra: Any) -> dict[str, Any]:
    skeleton = json.loads(
        (SAMPLES / "event_schema_sales_order_invoice_save_after.json").read_text()
    )
    return _concrete(
        skeleton["items"][0],
        {"sku": sku, "qty": qty, "price": price, "discount_amount": discount, **extra},
    )


ORDER = {"increment_id": "000000042", "customer_id": 7, "customer_is_guest": False}
# 3 × 1.90 + 3 × 6.10 − 0.00 = 24.00 exactly; the configurable's child row is left out.
ITEMS = [
    item("PEN", 3.0, 1.9, order_item_id=1),
    item("INK", 3.0, 6.1, order_item_id=2),
    item("INK-BLUE", 3.0, 0, order_item_id=3, parent_item_id=2),
]


def invoice_event(
    number: str = "000000101", *, items: list[dict[str, Any]] | None = None, **changes: Any
) -> dict[str, Any]:
    skeleton = json.loads(
        (SAMPLES / "event_schema_sales_order_invoice_save_after.json").read_text()
    )
    invoice = _concrete(
        skeleton,
        {
            "increment_id": number,
            "order_id": 42,
            "state": 2,
            "order_currency_code": "USD",
            "created_at": "2026-03-02 14:30:00",
            "items": ITEMS if items is None else items,
            **changes,
        },
    )
    return {
        "eventName": "observer.sales_order_invoice_save_after",
        "data": {"invoice": invoice, "order": ORDER},
    }


def creditmemo_event(number: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    skeleton = json.loads(
        (SAMPLES / "event_schema_sales_order_creditmemo_save_after.json").read_text()
    )
    memo = _concrete(skeleton, {"increment_id": number, "order_id": 42, "items": items})
    return {
        "eventName": "observer.sales_order_creditmemo_save_after",
        "data": {"creditmemo": memo, "order": ORDER},
    }


async def send(gw: Gateway, event: dict[str, Any], key: rsa.RSAPrivateKey = KEY) -> Answer:
    body = json.dumps(event).encode()
    return await post(
        gw, "magento", body, {HEADER: sign(body, key), "Content-Type": "application/json"}
    )


async def test_an_invoice_earns_and_credit_memos_refund_it(gw: Gateway) -> None:
    paid = await send(gw, invoice_event())
    assert (paid.status, paid.body) == (200, {"op": "success"})
    assert await points(gw, "7") == Points(available=0, pending=24)

    # One INK of three credited: 6.10 of 24.00, floor(24 × 6.10 / 24) = 6.
    memo = await send(gw, creditmemo_event("000000201", [item("INK", 1.0, 6.1, order_item_id=2)]))
    assert (memo.status, memo.body) == (200, {"op": "success"})
    assert await points(gw, "7") == Points(available=0, pending=18)

    rest = [item("PEN", 3.0, 1.9, order_item_id=1), item("INK", 2.0, 6.1, order_item_id=2)]
    assert (await send(gw, creditmemo_event("000000202", rest))).status == 200
    assert await points(gw, "7") == Points(available=0, pending=0)
    rows = [(row.event_id, row.outcome) for row in await inbound_deliveries(gw)]
    assert rows == [
        ("000000042:observer.sales_order_invoice_save_after:000000101", "APPLIED"),
        ("000000042:observer.sales_order_creditmemo_save_after:000000201", "APPLIED"),
        ("000000042:observer.sales_order_creditmemo_save_after:000000202", "APPLIED"),
    ]


async def test_discounts_and_decimal_amounts_are_exact(gw: Gateway) -> None:
    # 2 × 19.99 − 4.99 = 34.99 → 34 points.
    answer = await send(gw, invoice_event(items=[item("MUG", 2, 19.99, 4.99)]))
    assert answer.status == 200
    assert await points(gw, "7") == Points(available=0, pending=34)


async def test_a_repeated_call_applies_once(gw: Gateway) -> None:
    assert (await send(gw, invoice_event())).status == 200
    again = await send(gw, invoice_event())
    assert (again.status, again.body) == (200, {"op": "success"})
    # A second invoice of the same order (a partial invoice later completed): one earn.
    second = await send(gw, invoice_event("000000102"))
    assert (second.status, second.body) == (200, {"op": "success"})
    assert await points(gw, "7") == Points(available=0, pending=24)
    rows = [(row.attempts, row.outcome) for row in await inbound_deliveries(gw)]
    assert rows == [(2, "APPLIED"), (1, "DUPLICATE")]


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (invoice_event(state=1), "invoice state 1 is not paid (2)"),
        (
            {
                **invoice_event(),
                "data": {**invoice_event()["data"], "order": {**ORDER, "customer_is_guest": True}},
            },
            "order 000000042 is a guest order",
        ),
        (
            {
                "eventName": "observer.catalog_product_save_after",
                "data": {"data_object": {"sku": "PEN"}},
            },
            "event 'observer.catalog_product_save_after' is not one this source acts on",
        ),
    ],
)
async def test_unpaid_guest_and_other_events_are_ignored(
    gw: Gateway, event: dict[str, Any], reason: str
) -> None:
    before = await counts(gw)
    answer = await send(gw, event)
    assert (answer.status, answer.body) == (200, {"op": "success"})
    assert [
        (row.outcome, row.attempt_log[-1]["reason"]) for row in await inbound_deliveries(gw)
    ] == [("IGNORED", reason)]
    assert await counts(gw) == before


def _reserialized(body: bytes) -> bytes:
    return json.dumps(json.loads(body), indent=2).encode()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            lambda body: (body.replace(b"6.1", b"9.1"), sign(body)),
            f"{HEADER} does not match the body",
        ),
        (lambda body: (body, sign(body, OTHER_KEY)), f"{HEADER} does not match the body"),
        (lambda body: (body, None), f"the {HEADER} header is missing"),
        (lambda body: (_reserialized(body), sign(body)), f"{HEADER} does not match the body"),
        (
            # Signed over the raw body rather than its base64: not what Commerce signs.
            lambda body: (
                body,
                base64.b64encode(KEY.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode(),
            ),
            f"{HEADER} does not match the body",
        ),
        (lambda body: (body, "not base64!"), f"{HEADER} is not base64"),
    ],
    ids=["tampered", "wrong-key", "missing", "reserialized", "raw-body-signed", "garbage"],
)
async def test_bad_signatures_are_401_and_store_nothing(
    gw: Gateway, change: Any, reason: str
) -> None:
    before = await counts(gw)
    sent, signature = change(json.dumps(invoice_event()).encode())
    headers = {"Content-Type": "application/json"} | (
        {} if signature is None else {HEADER: signature}
    )
    answer = await post(gw, "magento", sent, headers)
    assert (answer.status, answer.body) == (
        401,
        {"op": "exception", "message": f"INVALID_SIGNATURE: {reason}"},
    )
    assert await counts(gw) == before
    assert await inbound_deliveries(gw) == []


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (
            invoice_event(items=[item("PEN", 3, "one ninety")]),
            "data.invoice.items.0.price: 'one ninety' is not a decimal",
        ),
        (
            creditmemo_event("000000201", [item("INK", 1.5, 6.1)]),
            "data.creditmemo.items.0.qty must be a whole number of units",
        ),
        (
            {"eventName": "observer.sales_order_invoice_save_after", "data": {"invoice": {}}},
            "data.order must be an object",
        ),
    ],
)
async def test_a_call_that_can_never_apply_is_422_and_writes_nothing(
    gw: Gateway, event: dict[str, Any], message: str
) -> None:
    before = await counts(gw)
    answer = await send(gw, event)
    assert (answer.status, answer.body) == (
        422,
        {"op": "exception", "message": f"INVALID_PAYLOAD: {message}"},
    )
    assert await counts(gw) == before


def test_the_program_file_needs_an_rsa_public_key() -> None:
    with pytest.raises(ProgramFileError) as caught:
        make_program(webhook_secrets={"magento": "not a key"})
    assert "webhook_secrets.magento" in str(caught.value)
    assert "PEM public key" in str(caught.value)
    assert make_program(webhook_secrets={"magento": [pem(KEY), pem(OTHER_KEY)]})
