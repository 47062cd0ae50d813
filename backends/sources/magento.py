"""`magento`: Adobe Commerce (Magento 2) webhooks (DESIGN §7).

Adobe Commerce calls the hook synchronously with `{"eventName": ..., "data": {...}}`
and signs it: `x-adobe-commerce-webhook-signature` is the base64 RSA signature
(PKCS#1 v1.5, SHA-256) of the **base64 encoding of the raw body**, made with the
store's private key and verified with the PEM public key of its webhook configuration
(`[webhook_secrets] magento`; list the new and the old key while regenerating).

- `observer.sales_order_invoice_save_after` with `data.invoice` (state 2, paid) and
  `data.order`: a purchase of the invoiced items;
- `observer.sales_order_creditmemo_save_after` with `data.creditmemo` and `data.order`:
  a refund of the credited items (the README gives the hooks' `fields`).

The order id is the order's `increment_id`; the member is the order's `customer_id`
(guest orders are ignored). Money arrives as JSON numbers in major units and is read as
Decimal. Child rows of configurable and bundle items (`parent_item_id` set) are left
out, so an item counts once. The dedupe key is the order increment id, the event and
the invoice's or credit memo's increment id (an order may have several of each).

Commerce reads the answer's body: 200 carries `{"op": "success"}`; any other answer
carries `{"op": "exception", "message": ...}` and Commerce treats the call as failed
(it logs it and, for a hook with `required="false"`, goes on).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from backends import payloads
from backends.inbound import (
    BadSignature,
    Delivery,
    Identity,
    Ignored,
    Parsed,
    Unprocessable,
    WebhookSource,
    text,
)
from ledger.commands import MemberRef, RecordPurchase, RefundPurchase
from ledger.program import Channel
from ledger.rules import Line

SIGNATURE_HEADER = "x-adobe-commerce-webhook-signature"
INVOICE = "observer.sales_order_invoice_save_after"
CREDIT_MEMO = "observer.sales_order_creditmemo_save_after"
DOCUMENTS = {INVOICE: "invoice", CREDIT_MEMO: "creditmemo"}
INVOICE_PAID = 2  # Magento\Sales\Model\Order\Invoice::STATE_PAID (1 open, 3 canceled)
MAX_SIGNATURE = 2048


def signed_message(body: bytes) -> bytes:
    """What Adobe Commerce signs: the base64 text of the raw body."""
    return base64.b64encode(body)


@lru_cache(maxsize=16)
def _public_key(pem: str) -> rsa.RSAPublicKey:
    key = load_pem_public_key(pem.strip().encode())
    assert isinstance(key, rsa.RSAPublicKey)  # the program file checked it
    return key


class Magento(WebhookSource):
    name = "magento"

    async def verify(self, delivery: Delivery, secrets: tuple[str, ...]) -> None:
        header = delivery.header(SIGNATURE_HEADER)
        if not header:
            raise BadSignature(f"the {SIGNATURE_HEADER} header is missing")
        try:
            signature = base64.b64decode(header[:MAX_SIGNATURE], validate=True)
        except (binascii.Error, ValueError):
            raise BadSignature(f"{SIGNATURE_HEADER} is not base64") from None
        message = signed_message(delivery.body)
        for pem in secrets:
            try:
                _public_key(pem).verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
                return
            except InvalidSignature:
                continue
        raise BadSignature(f"{SIGNATURE_HEADER} does not match the body")

    def identify(self, delivery: Delivery) -> Identity:
        body = payloads.mapping(payloads.loads(delivery.body), "the body")
        event = body.get("eventName")
        if not isinstance(event, str) or not event:
            raise Unprocessable("eventName is missing")
        kind = DOCUMENTS.get(event)
        if kind is None:
            return Identity(f"{event}:sha256:{hashlib.sha256(delivery.body).hexdigest()}", event)
        data = payloads.mapping(body.get("data"), "data")
        order = payloads.mapping(data.get("order"), "data.order")
        document = payloads.mapping(data.get(kind), f"data.{kind}")
        order_number = text(order.get("increment_id"), "data.order.increment_id")
        number = text(document.get("increment_id"), f"data.{kind}.increment_id")
        return Identity(f"{order_number}:{event}:{number}", event)

    async def parse(self, delivery: Delivery, identity: Identity) -> Parsed:
        kind = DOCUMENTS.get(identity.topic)
        if kind is None:
            return Ignored(f"event {identity.topic!r} is not one this source acts on")
        data = payloads.mapping(payloads.loads(delivery.body), "the body")["data"]
        order, document = data["order"], data[kind]
        order_number = text(order["increment_id"], "data.order.increment_id")
        items = payloads.items(document.get("items"), f"data.{kind}.items")
        if identity.topic == CREDIT_MEMO:
            return _refund(identity.event_id, order_number, items)
        state = document.get("state")
        if state is not None and str(state) != str(INVOICE_PAID):
            return Ignored(f"invoice state {state} is not paid ({INVOICE_PAID})")
        customer = order.get("customer_id")
        if order.get("customer_is_guest") in (True, 1, "1") or customer in (None, "", 0):
            return Ignored(f"order {order_number} is a guest order")
        lines = [
            _line(item, f"data.invoice.items.{index}")
            for index, item in _own(items)
            if _qty(item, f"data.invoice.items.{index}")
        ]
        if not lines:
            return Ignored(f"invoice {identity.event_id} has no items")
        currency = document.get("order_currency_code") or order.get("order_currency_code")
        return [
            RecordPurchase(
                identity.event_id,
                MemberRef(customer_id=text(customer, "data.order.customer_id")),
                order_number,
                text(currency, "data.invoice.order_currency_code")
                if currency
                else delivery.program.currency,
                tuple(lines),
                channel=Channel.ONLINE,
                occurred_at=payloads.timestamp(
                    document.get("created_at"), "data.invoice.created_at"
                ),
            )
        ]

    def response_body(self, status: int, body: dict[str, Any]) -> dict[str, Any]:
        if status == 200:
            return {"op": "success"}
        reason = body.get("reason") or body.get("error") or "refused"
        return {"op": "exception", "message": f"{body.get('error', 'ERROR')}: {reason}"}


def _own(items: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """Items that are not the child row of a configurable or bundle item."""
    return [(index, item) for index, item in enumerate(items) if not item.get("parent_item_id")]


def _qty(item: dict[str, Any], where: str) -> bool:
    """Whether the item moves any units (Commerce lists unbilled items with qty 0)."""
    value = item.get("qty")
    return value is not None and payloads.amount(value, f"{where}.qty") != 0


def _line(item: dict[str, Any], where: str) -> Line:
    quantity = payloads.amount(item.get("qty"), f"{where}.qty")
    price = payloads.amount(item.get("price"), f"{where}.price")
    discount = payloads.amount(item.get("discount_amount") or 0, f"{where}.discount_amount")
    sku = text(item.get("sku"), f"{where}.sku")
    if quantity < 0:
        raise Unprocessable(f"{where}.qty must not be negative")
    if quantity != quantity.to_integral_value():  # sold by weight: one line of the amount
        return Line(sku, None, 1, price * quantity, discount)
    return Line(sku, None, payloads.whole(quantity, f"{where}.qty"), price, discount)


def _refund(key: str, order_number: str, items: list[dict[str, Any]]) -> Parsed:
    lines = []
    for index, item in _own(items):
        where = f"data.creditmemo.items.{index}"
        if not _qty(item, where):
            continue
        quantity = payloads.whole(item["qty"], f"{where}.qty")
        lines.append((text(item.get("sku"), f"{where}.sku"), quantity))
    if not lines:
        return Ignored(f"credit memo {key} refunds no items")
    # Two hooks, two calls: a credit memo may reach us before its invoice, and is kept.
    return [RefundPurchase(key, order_number, lines=tuple(lines), keep_until_purchase=True)]


SOURCE = Magento()
