"""`quickbooks`: QuickBooks Online (Intuit) webhooks (DESIGN §7).

Signed `intuit-signature` = base64 HMAC-SHA256(verifier token, raw body), the token of
`[webhook_secrets] quickbooks`. A notification only names entities, in either of
Intuit's two formats:

- legacy: `{"eventNotifications": [{"realmId", "dataChangeEvent": {"entities": [{"name",
  "id", "operation", "lastUpdated"}]}}]}`;
- CloudEvents: `[{"id", "type": "qbo.payment.created.v1", "intuitaccountid",
  "intuitentityid", "time", ...}]`.

For each created `Payment` the source reads the payment and every invoice it pays
(`Line[].LinkedTxn[]` of `TxnType` `Invoice`) from the QuickBooks Online API
(`[quickbooks]`), and records a purchase for each invoice that is paid in full
(`Balance` 0): member = the invoice's `CustomerRef`, order id = `{realmId}:{invoice Id}`,
lines = its `SalesItemLineDetail` lines (`Qty` × `UnitPrice`, sku = `ItemRef`). An
invoice still owing is left for the payment that settles it.

For each created `RefundReceipt` or `CreditMemo` the source reads it and refunds, by
amount, the one invoice it links (`LinkedTxn[]` of `TxnType` `Invoice`, or a credit
memo's `InvoiceRef`): order id `{realmId}:{invoice Id}`, amount = the sum of its
`SalesItemLineDetail` lines' `Amount` (before tax, as the purchase earned). The refund
is kept by the ledger if the invoice has not earned yet. One that links no invoice, or
several (its amount cannot be split), is ignored with the reason. Other entities and
operations are ignored.

One notification may name several entities: the delivery is applied atomically. Every
entity and invoice is read first; if any read fails the answer is 503 and nothing is
written, and Intuit's retry applies the whole notification once. The dedupe key is the
entities' ids and `lastUpdated` (the CloudEvents `id`s in that format).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from backends import payloads
from backends.inbound import (
    BadSignature,
    Delivery,
    Identity,
    Ignored,
    Parsed,
    Unprocessable,
    WebhookSource,
    hmac_sha256,
    same,
    text,
)
from backends.quickbooks import QuickBooksClient
from ledger.commands import Command, MemberRef, RecordPurchase, RefundPurchase
from ledger.rules import Line

SIGNATURE_HEADER = "intuit-signature"
MAX_ENTITIES = 100
MAX_EVENT_ID = 200
REFUNDS = {"refundreceipt": "RefundReceipt", "creditmemo": "CreditMemo"}


def signature_of(token: str, body: bytes) -> str:
    """The `intuit-signature` of `body`."""
    return base64.b64encode(hmac_sha256(token, body)).decode()


@dataclass(frozen=True)
class Entity:
    """One changed entity a notification names."""

    realm: str
    name: str  # Payment, Invoice, ... as Intuit capitalises it
    id: str
    operation: str  # Create, Update, ...
    stamp: str  # lastUpdated (legacy) or the CloudEvent's id

    @property
    def is_created(self) -> bool:
        return self.operation.lower() in {"create", "created"}

    @property
    def is_created_payment(self) -> bool:
        return self.is_created and self.name.lower() == "payment"

    @property
    def is_created_refund(self) -> bool:
        """A created RefundReceipt or CreditMemo (`Refundreceipt` in CloudEvents)."""
        return self.is_created and self.name.lower() in REFUNDS


class QuickBooksOnline(WebhookSource):
    name = "quickbooks"

    async def verify(self, delivery: Delivery, secrets: tuple[str, ...]) -> None:
        given = delivery.header(SIGNATURE_HEADER)
        if not given:
            raise BadSignature("the intuit-signature header is missing")
        if not any(
            same(signature_of(token, delivery.body).encode(), given.strip().encode())
            for token in secrets
        ):
            raise BadSignature("intuit-signature does not match the body")

    def identify(self, delivery: Delivery) -> Identity:
        entities = _entities(delivery)
        names = sorted({f"{entity.name}.{entity.operation}" for entity in entities})
        key = ";".join(f"{e.realm}/{e.name}/{e.id}@{e.stamp}" for e in entities)
        if len(key) > MAX_EVENT_ID:
            key = f"sha256:{hashlib.sha256(key.encode()).hexdigest()}"
        return Identity(key, ",".join(names))

    async def parse(self, delivery: Delivery, identity: Identity) -> Parsed:
        entities = _entities(delivery)
        payments = [entity for entity in entities if entity.is_created_payment]
        refunds = [entity for entity in entities if entity.is_created_refund]
        if not payments and not refunds:
            return Ignored(
                f"{identity.topic or 'nothing'}: no created Payment, RefundReceipt"
                " or CreditMemo is named"
            )
        config = delivery.program.quickbooks
        if config is None or delivery.http is None:  # the program file requires it
            raise Unprocessable("the program has no [quickbooks] section to read payments")
        client = QuickBooksClient(delivery.http, config)
        commands: list[Command] = []
        skipped: list[str] = []
        for entity in payments:
            payment = await client.payment(entity.realm, entity.id)
            for invoice_id in _invoices_paid(payment, entity.id):
                invoice = await client.invoice(entity.realm, invoice_id)
                purchase = _purchase(entity, invoice, delivery.program.currency)
                if purchase is None:
                    skipped.append(invoice_id)
                else:
                    commands.append(purchase)
        reasons: list[str] = []
        if payments and not commands:  # only read when nothing applies
            owing = ", ".join(skipped) or "none"
            reasons.append(f"no invoice is paid in full by these payments (invoices: {owing})")
        for entity in refunds:
            if entity.name.lower() == "refundreceipt":
                value = await client.refund_receipt(entity.realm, entity.id)
            else:
                value = await client.credit_memo(entity.realm, entity.id)
            refund = _refund(entity, value)
            if isinstance(refund, str):
                reasons.append(refund)
            else:
                commands.append(refund)
        if not commands:
            return Ignored("; ".join(reasons))
        return commands


def _entities(delivery: Delivery) -> list[Entity]:
    body = payloads.loads(delivery.body)
    entities = _cloud_events(body) if isinstance(body, list) else _legacy(body)
    if not entities:
        raise Unprocessable("the notification names no entity")
    if len(entities) > MAX_ENTITIES:
        raise Unprocessable(f"the notification names more than {MAX_ENTITIES} entities")
    return entities


def _legacy(body: object) -> list[Entity]:
    body = payloads.mapping(body, "the body")
    notifications = payloads.items(body.get("eventNotifications"), "eventNotifications")
    found = []
    for n, notification in enumerate(notifications):
        where = f"eventNotifications.{n}"
        realm = text(notification.get("realmId"), f"{where}.realmId")
        change = payloads.mapping(notification.get("dataChangeEvent"), f"{where}.dataChangeEvent")
        for e, entity in enumerate(
            payloads.items(change.get("entities"), f"{where}.dataChangeEvent.entities")
        ):
            at = f"{where}.dataChangeEvent.entities.{e}"
            found.append(
                Entity(
                    realm,
                    text(entity.get("name"), f"{at}.name"),
                    text(entity.get("id"), f"{at}.id"),
                    text(entity.get("operation"), f"{at}.operation"),
                    text(entity.get("lastUpdated"), f"{at}.lastUpdated"),
                )
            )
    return found


def _cloud_events(body: list[Any]) -> list[Entity]:
    found = []
    for index, event in enumerate(payloads.items(body, "the body")):
        where = f"{index}"
        kind = text(event.get("type"), f"{where}.type")
        parts = kind.split(".")  # qbo.<entity>.<operation>.v<N>
        if len(parts) != 4 or parts[0] != "qbo":
            raise Unprocessable(f"{where}.type {kind!r} is not qbo.<entity>.<operation>.v<N>")
        found.append(
            Entity(
                text(event.get("intuitaccountid"), f"{where}.intuitaccountid"),
                parts[1].capitalize(),
                text(event.get("intuitentityid"), f"{where}.intuitentityid"),
                parts[2],
                text(event.get("id"), f"{where}.id"),
            )
        )
    return found


def _invoices_paid(payment: dict[str, Any], payment_id: str) -> list[str]:
    invoices: list[str] = []
    for index, line in enumerate(payloads.items(payment.get("Line", []), "Payment.Line")):
        for linked in payloads.items(line.get("LinkedTxn", []), f"Payment.Line.{index}.LinkedTxn"):
            if linked.get("TxnType") == "Invoice":
                invoice_id = text(linked.get("TxnId"), f"Payment {payment_id} LinkedTxn.TxnId")
                if invoice_id not in invoices:
                    invoices.append(invoice_id)
    return invoices


def _purchase(entity: Entity, invoice: dict[str, Any], currency: str) -> RecordPurchase | None:
    invoice_id = text(invoice.get("Id"), "Invoice.Id")
    where = f"Invoice {invoice_id}"
    if payloads.amount(invoice.get("Balance", 0), f"{where}.Balance") != 0:
        return None
    customer = payloads.mapping(invoice.get("CustomerRef"), f"{where}.CustomerRef")
    lines = []
    for index, line in enumerate(payloads.items(invoice.get("Line", []), f"{where}.Line")):
        if line.get("DetailType") != "SalesItemLineDetail":
            continue  # subtotal, discount, description lines earn nothing themselves
        lines.append(_line(line, f"{where}.Line.{index}"))
    if not lines:
        raise Unprocessable(f"{where} has no SalesItemLineDetail line")
    currency_ref = invoice.get("CurrencyRef")
    if isinstance(currency_ref, dict) and currency_ref.get("value"):
        currency = text(currency_ref["value"], f"{where}.CurrencyRef.value")
    return RecordPurchase(
        f"{entity.realm}:payment:{entity.id}:invoice:{invoice_id}",
        MemberRef(customer_id=text(customer.get("value"), f"{where}.CustomerRef.value")),
        f"{entity.realm}:{invoice_id}",
        currency,
        tuple(lines),
    )


def _line(line: dict[str, Any], where: str) -> Line:
    detail = payloads.mapping(line.get("SalesItemLineDetail"), f"{where}.SalesItemLineDetail")
    item = detail.get("ItemRef")
    sku = text(item.get("value"), f"{where}.ItemRef.value") if isinstance(item, dict) else None
    quantity = payloads.amount(detail.get("Qty", 1), f"{where}.Qty")
    if "UnitPrice" not in detail or quantity != quantity.to_integral_value() or quantity <= 0:
        # hours, weights, or no unit price: the line's Amount as one unit
        return Line(sku, None, 1, payloads.amount(line.get("Amount"), f"{where}.Amount"))
    unit = payloads.amount(detail["UnitPrice"], f"{where}.UnitPrice")
    return Line(sku, None, payloads.whole(quantity, f"{where}.Qty"), unit, Decimal(0))


def _refund(entity: Entity, value: dict[str, Any]) -> RefundPurchase | str:
    """The refund of the one invoice a RefundReceipt or CreditMemo links, or why not."""
    label = REFUNDS[entity.name.lower()]
    refund_id = text(value.get("Id"), f"{label}.Id")
    where = f"{label} {refund_id}"
    invoices = _invoices_linked(value, where)
    if not invoices:
        return f"{where} links no invoice"
    if len(invoices) > 1:
        return f"{where} links several invoices ({', '.join(invoices)}): its amount is not split"
    amount = Decimal(0)
    for index, line in enumerate(payloads.items(value.get("Line", []), f"{where}.Line")):
        if line.get("DetailType") == "SalesItemLineDetail":
            amount += payloads.amount(line.get("Amount"), f"{where}.Line.{index}.Amount")
    if amount <= 0:
        return f"{where} has no SalesItemLineDetail amount to refund"
    return RefundPurchase(
        f"{entity.realm}:{entity.name.lower()}:{refund_id}",
        f"{entity.realm}:{invoices[0]}",
        amount,
        keep_until_purchase=True,
    )


def _invoices_linked(value: dict[str, Any], where: str) -> list[str]:
    """The invoice ids of `LinkedTxn[]` (TxnType Invoice) and of a credit memo's
    `InvoiceRef`, without repeats."""
    invoices: list[str] = []
    reference = value.get("InvoiceRef")
    if isinstance(reference, dict) and reference.get("value") not in (None, ""):
        invoices.append(text(reference["value"], f"{where}.InvoiceRef.value"))
    for index, linked in enumerate(
        payloads.items(value.get("LinkedTxn", []), f"{where}.LinkedTxn")
    ):
        if linked.get("TxnType") == "Invoice":
            invoice_id = text(linked.get("TxnId"), f"{where}.LinkedTxn.{index}.TxnId")
            if invoice_id not in invoices:
                invoices.append(invoice_id)
    return invoices


SOURCE = QuickBooksOnline()
