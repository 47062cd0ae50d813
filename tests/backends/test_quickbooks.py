"""The `quickbooks` source over real HTTP: Intuit webhook notifications signed with the
verifier token, the payment and its invoices read from the fake QuickBooks Online API
(backends/fakes/quickbooks.py), and what an API outage does to a delivery.

The Payment and Invoice are Intuit's documented read responses
(tests/samples/quickbooks/), with ids, `CustomerRef`, `Balance` and lines changed per
test; notifications are the documented legacy envelope and the CloudEvents array,
naming a `Payment` `Create` instead of the samples' Customer and Account. Refunds are
Intuit's documented RefundReceipt and CreditMemo read responses with their `Id`, sales
lines and link to the invoice (`LinkedTxn`, `InvoiceRef`) set per test.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from backends.fakes.quickbooks import FakeQuickBooks
from backends.sources.quickbooks import signature_of
from ledger.errors import ProgramFileError
from tests.support.gateway import Gateway, running_gateway
from tests.support.inbound import Answer, Points, counts, inbound_deliveries, points, post
from tests.support.ledger import make_program

TOKEN = "intuit-verifier-token-8d1f0b2c"
REALM = "1185883450"
SAMPLES = Path(__file__).parents[1] / "samples" / "quickbooks"
NO_BONUSES = {"signup": 0, "referrer": 0, "referee": 0}


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text(), parse_float=Decimal)


@pytest.fixture
async def qbo() -> AsyncIterator[FakeQuickBooks]:
    async with FakeQuickBooks().serving() as fake:
        yield fake


@pytest.fixture
async def gw(database_url: str, qbo: FakeQuickBooks) -> AsyncIterator[Gateway]:
    async with running_gateway(
        database_url,
        webhook_secrets={"quickbooks": TOKEN},
        quickbooks={"base_url": qbo.base, "token": qbo.token},
        bonuses=NO_BONUSES,
    ) as gw:
        yield gw


def invoice(
    invoice_id: str, customer: str = "24", balance: str = "0", **changes: Any
) -> dict[str, Any]:
    """The documented invoice: 275 + 12.75 + 5 × 9.50 = 335.25 of sales lines."""
    value: dict[str, Any] = copy.deepcopy(sample("invoice_read_response.json")["Invoice"])
    value.update(Id=invoice_id, Balance=Decimal(balance), **changes)
    value["CustomerRef"] = {"name": "Sonnenschein Family Store", "value": customer}
    return value


def payment(payment_id: str, *invoice_ids: str) -> dict[str, Any]:
    value: dict[str, Any] = copy.deepcopy(sample("payment_read_response.json")["Payment"])
    value["Id"] = payment_id
    value["Line"] = [
        {"Amount": Decimal("100.00"), "LinkedTxn": [{"TxnId": invoice_id, "TxnType": "Invoice"}]}
        for invoice_id in invoice_ids
    ]
    return value


def entity(entity_id: str, name: str = "Payment", operation: str = "Create") -> dict[str, str]:
    return {
        "name": name,
        "id": entity_id,
        "operation": operation,
        "lastUpdated": "2026-03-02T14:30:00.000Z",
    }


def notification(*entities: dict[str, str]) -> dict[str, Any]:
    return {
        "eventNotifications": [{"realmId": REALM, "dataChangeEvent": {"entities": list(entities)}}]
    }


def refund(
    kind: str,
    refund_id: str,
    *amounts: str,
    linked: tuple[str, ...] = (),
    invoice_ref: str | None = None,
) -> dict[str, Any]:
    """The documented RefundReceipt or CreditMemo, one sales line per amount, linking
    `linked` invoices through `LinkedTxn` (and `invoice_ref` through `InvoiceRef`)."""
    key = {"refundreceipt": "RefundReceipt", "creditmemo": "CreditMemo"}[kind]
    value: dict[str, Any] = copy.deepcopy(sample(f"{kind}_read_response.json")[key])
    template = value["Line"][0]
    value["Id"] = refund_id
    value["CustomerRef"] = {"name": "Sonnenschein Family Store", "value": "24"}
    value["Line"] = [
        {
            **copy.deepcopy(template),
            "Id": str(n),
            "LineNum": n,
            "Amount": Decimal(amount),
            "SalesItemLineDetail": {
                **template["SalesItemLineDetail"],
                "Qty": 1,
                "UnitPrice": Decimal(amount),
            },
        }
        for n, amount in enumerate(amounts, start=1)
    ]
    value["TotalAmt"] = sum((Decimal(amount) for amount in amounts), Decimal(0))
    if linked:
        value["LinkedTxn"] = [{"TxnId": invoice_id, "TxnType": "Invoice"} for invoice_id in linked]
    if invoice_ref is not None:
        value["InvoiceRef"] = {"value": invoice_ref}
    return value


async def send(gw: Gateway, payload: Any, token: str = TOKEN) -> Answer:
    body = json.dumps(payload).encode()
    headers = {"intuit-signature": signature_of(token, body), "Content-Type": "application/json"}
    return await post(gw, "quickbooks", body, headers)


async def test_a_created_payment_earns_its_invoice_once(gw: Gateway, qbo: FakeQuickBooks) -> None:
    qbo.add(REALM, "invoice", invoice("130"))
    qbo.add(REALM, "payment", payment("163", "130"))
    answer = await send(gw, notification(entity("163")))
    assert (answer.status, answer.body["outcome"]) == (200, "APPLIED")
    assert await points(gw, "24") == Points(available=0, pending=335)
    assert qbo.requests == [
        f"/v3/company/{REALM}/payment/163?minorversion=75",
        f"/v3/company/{REALM}/invoice/130?minorversion=75",
    ]

    again = await send(gw, notification(entity("163")))
    assert (again.status, again.body["repeat"]) == (200, True)
    assert len(qbo.requests) == 2  # a repeat reads nothing
    # Another payment on the same invoice: the order earned already.
    qbo.add(REALM, "payment", payment("164", "130"))
    other = await send(gw, notification(entity("164")))
    assert (other.status, other.body["outcome"]) == (200, "DUPLICATE")
    assert await points(gw, "24") == Points(available=0, pending=335)
    assert (await counts(gw)).orders == 1


async def test_the_cloudevents_format_is_read_too(gw: Gateway, qbo: FakeQuickBooks) -> None:
    qbo.add(REALM, "invoice", invoice("130", customer="58"))
    qbo.add(REALM, "payment", payment("163", "130"))
    event = {
        **sample("notification_cloudevents.json")[0],
        "type": "qbo.payment.created.v1",
        "intuitentityid": "163",
        "intuitaccountid": REALM,
    }
    answer = await send(gw, [event])
    assert (answer.status, answer.body["outcome"]) == (200, "APPLIED")
    assert await points(gw, "58") == Points(available=0, pending=335)
    rows = [(row.event_id, row.topic) for row in await inbound_deliveries(gw)]
    assert rows == [(f"{REALM}/Payment/163@{event['id']}", "Payment.created")]


async def test_an_invoice_still_owing_and_other_entities_are_ignored(
    gw: Gateway, qbo: FakeQuickBooks
) -> None:
    qbo.add(REALM, "invoice", invoice("130", balance="62.07"))
    qbo.add(REALM, "payment", payment("163", "130"))
    owing = await send(gw, notification(entity("163")))
    assert (owing.status, owing.body["outcome"], owing.body["reason"]) == (
        200,
        "IGNORED",
        "no invoice is paid in full by these payments (invoices: 130)",
    )
    others = await send(
        gw,
        {
            "eventNotifications": [
                {**sample("notification_legacy.json")["eventNotifications"][0], "realmId": REALM}
            ]
        },
    )
    assert (others.status, others.body["outcome"], others.body["reason"]) == (
        200,
        "IGNORED",
        "Customer.Create,Vendor.Create: no created Payment, RefundReceipt or CreditMemo is named",
    )
    updated = await send(gw, notification(entity("163", operation="Update")))
    assert (updated.status, updated.body["outcome"]) == (200, "IGNORED")
    assert len(qbo.requests) == 2  # only the first delivery read anything
    assert (await counts(gw)).orders == 0


async def test_an_outage_is_503_writes_nothing_and_the_retry_applies_once(
    gw: Gateway, qbo: FakeQuickBooks
) -> None:
    # One notification, two payments, two invoices: applied as one delivery.
    qbo.add(REALM, "invoice", invoice("130", customer="24"))
    qbo.add(REALM, "invoice", invoice("131", customer="25"))
    qbo.add(REALM, "payment", payment("163", "130"))
    qbo.add(REALM, "payment", payment("165", "131"))
    both = notification(entity("163"), entity("165"))
    before = await counts(gw)

    qbo.status = 503
    down = await send(gw, both)
    assert (down.status, down.body["error"], down.headers["retry-after"]) == (
        503,
        "SERVICE_UNAVAILABLE",
        "5",
    )
    assert down.body["reason"] == "QuickBooks payment 163: QuickBooks answered 503"
    qbo.status = None
    qbo.fault_on_ok = True  # a SystemFault inside a 200 is an outage too
    assert (await send(gw, both)).status == 503
    assert await counts(gw) == before

    qbo.fault_on_ok = False
    back = await send(gw, both)
    assert (back.status, back.body["outcome"]) == (200, "APPLIED")
    assert await points(gw, "24") == Points(available=0, pending=335)
    assert await points(gw, "25") == Points(available=0, pending=335)
    assert (await send(gw, both)).body["repeat"] is True
    assert (await counts(gw)).orders == 2
    [row] = await inbound_deliveries(gw)
    assert (row.outcome, row.attempts) == ("APPLIED", 4)
    assert [attempt["status"] for attempt in row.attempt_log] == [503, 503, 200, 200]


async def test_an_api_slower_than_the_timeout_is_503(gw: Gateway, qbo: FakeQuickBooks) -> None:
    qbo.add(REALM, "invoice", invoice("130"))
    qbo.add(REALM, "payment", payment("163", "130"))
    qbo.latency = 3.0  # past the client's 2.5 s total timeout
    answer = await send(gw, notification(entity("163")))
    assert (answer.status, answer.body["reason"]) == (
        503,
        "QuickBooks payment 163: QuickBooks did not answer in time",
    )
    assert (await counts(gw)).orders == 0


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (
            lambda qbo: qbo.add(REALM, "payment", payment("163", "999")),
            "QuickBooks invoice 999: QuickBooks ValidationFault 610 (400): Object Not Found;"
            " Object Not Found : Something you're trying to use has been made inactive or is"
            " not found: 999",
        ),
        (
            lambda qbo: setattr(qbo, "token", "rotated-elsewhere"),
            "QuickBooks payment 163: QuickBooks AUTHENTICATION 3200 (401):"
            " message=AuthenticationFailed; errorCode=003200; statusCode=401",
        ),
        (
            lambda qbo: (
                qbo.add(REALM, "payment", payment("163", "130")),
                qbo.add(REALM, "invoice", {**invoice("130"), "CustomerRef": None}),
            ),
            "Invoice 130.CustomerRef must be an object",
        ),
    ],
    ids=["invoice-not-found", "token-refused", "no-customer"],
)
async def test_what_can_never_apply_is_422_and_writes_nothing(
    gw: Gateway, qbo: FakeQuickBooks, setup: Any, reason: str
) -> None:
    setup(qbo)
    before = await counts(gw)
    answer = await send(gw, notification(entity("163")))
    assert (answer.status, answer.body["error"], answer.body["reason"]) == (
        422,
        "INVALID_PAYLOAD",
        reason,
    )
    assert await counts(gw) == before


async def test_a_malformed_notification_is_422(gw: Gateway) -> None:
    answer = await send(gw, {"eventNotifications": [{"realmId": REALM, "dataChangeEvent": {}}]})
    assert (answer.status, answer.body["reason"]) == (
        422,
        "eventNotifications.0.dataChangeEvent.entities must be a list",
    )


async def test_a_partial_then_a_full_refund_reverse_exact_points(
    gw: Gateway, qbo: FakeQuickBooks
) -> None:
    qbo.add(REALM, "invoice", invoice("130"))
    qbo.add(REALM, "payment", payment("163", "130"))
    assert (await send(gw, notification(entity("163")))).body["outcome"] == "APPLIED"
    assert await points(gw, "24") == Points(available=0, pending=335)

    # A refund receipt of 60 + 40 of the 335.25 of sales lines: floor(335 × 100 / 335.25)
    # = 99 points back.
    qbo.add(
        REALM, "refundreceipt", refund("refundreceipt", "170", "60.00", "40.00", linked=("130",))
    )
    partial = notification(entity("170", name="RefundReceipt"))
    answer = await send(gw, partial)
    assert (answer.status, answer.body["outcome"]) == (200, "APPLIED")
    assert await points(gw, "24") == Points(available=0, pending=236)
    assert qbo.requests[-1] == f"/v3/company/{REALM}/refundreceipt/170?minorversion=75"

    again = await send(gw, partial)
    assert (again.status, again.body["repeat"]) == (200, True)
    assert await points(gw, "24") == Points(available=0, pending=236)

    # The rest as a credit memo naming the invoice by InvoiceRef, in CloudEvents.
    qbo.add(REALM, "creditmemo", refund("creditmemo", "171", "235.25", invoice_ref="130"))
    event = {
        **sample("notification_cloudevents.json")[0],
        "type": "qbo.creditmemo.created.v1",
        "intuitentityid": "171",
        "intuitaccountid": REALM,
    }
    full = await send(gw, [event])
    assert (full.status, full.body["outcome"]) == (200, "APPLIED")
    assert await points(gw, "24") == Points(available=0, pending=0)
    assert qbo.requests[-1] == f"/v3/company/{REALM}/creditmemo/171?minorversion=75"
    assert (await counts(gw)).orders == 1
    rows = [(row.topic, row.outcome) for row in await inbound_deliveries(gw)]
    assert sorted(rows) == [
        ("Creditmemo.created", "APPLIED"),
        ("Payment.Create", "APPLIED"),
        ("RefundReceipt.Create", "APPLIED"),
    ]


async def test_a_refund_before_the_payment_is_kept_until_the_invoice_earns(
    gw: Gateway, qbo: FakeQuickBooks
) -> None:
    qbo.add(REALM, "creditmemo", refund("creditmemo", "171", "100.00", linked=("130",)))
    early = await send(gw, notification(entity("171", name="CreditMemo")))
    assert (early.status, early.body["outcome"]) == (200, "APPLIED")
    assert await points(gw, "24") is None  # kept by the ledger, no member yet
    qbo.add(REALM, "invoice", invoice("130"))
    qbo.add(REALM, "payment", payment("163", "130"))
    assert (await send(gw, notification(entity("163")))).body["outcome"] == "APPLIED"
    assert await points(gw, "24") == Points(available=0, pending=236)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (
            lambda: sample("refundreceipt_read_response.json")["RefundReceipt"],
            "RefundReceipt 66 links no invoice",
        ),
        (
            lambda: refund("refundreceipt", "66", "20.00", linked=("130", "131")),
            "RefundReceipt 66 links several invoices (130, 131): its amount is not split",
        ),
    ],
    ids=["no-invoice", "several-invoices"],
)
async def test_a_refund_of_no_single_invoice_is_ignored(
    gw: Gateway, qbo: FakeQuickBooks, value: Any, reason: str
) -> None:
    qbo.add(REALM, "invoice", invoice("130"))
    qbo.add(REALM, "payment", payment("163", "130"))
    await send(gw, notification(entity("163")))
    before = await counts(gw)
    qbo.add(REALM, "refundreceipt", value())
    answer = await send(gw, notification(entity("66", name="RefundReceipt")))
    assert (answer.status, answer.body["outcome"], answer.body["reason"]) == (
        200,
        "IGNORED",
        reason,
    )
    assert await points(gw, "24") == Points(available=0, pending=335)
    assert (await counts(gw)).entries == before.entries


async def test_an_outage_during_a_refund_is_503_and_the_retry_applies_once(
    gw: Gateway, qbo: FakeQuickBooks
) -> None:
    qbo.add(REALM, "invoice", invoice("130"))
    qbo.add(REALM, "payment", payment("163", "130"))
    await send(gw, notification(entity("163")))
    qbo.add(REALM, "refundreceipt", refund("refundreceipt", "170", "100.00", linked=("130",)))
    partial = notification(entity("170", name="RefundReceipt"))
    before = await counts(gw)

    qbo.status = 503
    down = await send(gw, partial)
    assert (down.status, down.body["error"], down.body["reason"]) == (
        503,
        "SERVICE_UNAVAILABLE",
        "QuickBooks refundreceipt 170: QuickBooks answered 503",
    )
    assert await counts(gw) == before
    assert await points(gw, "24") == Points(available=0, pending=335)

    qbo.status = None
    back = await send(gw, partial)
    assert (back.status, back.body["outcome"]) == (200, "APPLIED")
    assert await points(gw, "24") == Points(available=0, pending=236)
    assert (await send(gw, partial)).body["repeat"] is True
    assert await points(gw, "24") == Points(available=0, pending=236)
    row = [row for row in await inbound_deliveries(gw) if row.topic == "RefundReceipt.Create"]
    assert [attempt["status"] for attempt in row[0].attempt_log] == [503, 200, 200]


def _reserialized(body: bytes) -> bytes:
    return json.dumps(json.loads(body), indent=2).encode()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            lambda body: (body.replace(b"163", b"164"), signature_of(TOKEN, body)),
            "intuit-signature does not match the body",
        ),
        (
            lambda body: (body, signature_of("another-token", body)),
            "intuit-signature does not match the body",
        ),
        (lambda body: (body, None), "the intuit-signature header is missing"),
        (
            lambda body: (_reserialized(body), signature_of(TOKEN, body)),
            "intuit-signature does not match the body",
        ),
    ],
    ids=["tampered", "wrong-token", "missing", "reserialized"],
)
async def test_bad_signatures_are_401_and_store_nothing(
    gw: Gateway, qbo: FakeQuickBooks, change: Any, reason: str
) -> None:
    qbo.add(REALM, "invoice", invoice("130"))
    qbo.add(REALM, "payment", payment("163", "130"))
    before = await counts(gw)
    sent, signature = change(json.dumps(notification(entity("163"))).encode())
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["intuit-signature"] = signature
    answer = await post(gw, "quickbooks", sent, headers)
    assert (answer.status, answer.body["error"], answer.body["reason"]) == (
        401,
        "INVALID_SIGNATURE",
        reason,
    )
    assert await counts(gw) == before
    assert await inbound_deliveries(gw) == []
    assert qbo.requests == []


def test_the_program_file_needs_the_api_section_with_the_secret() -> None:
    with pytest.raises(ProgramFileError) as caught:
        make_program(webhook_secrets={"quickbooks": TOKEN})
    assert "quickbooks" in str(caught.value)
    assert "needs a [quickbooks] section" in str(caught.value)
