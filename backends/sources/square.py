"""`square`: Square webhooks (DESIGN §7; facts in docs/platforms/square.md).

Signature: `x-square-hmacsha256-signature` = base64 HMAC-SHA256(signature key,
notification URL + raw body), the URL being `[webhook_secrets] square_notification_url`
exactly as registered in Square. Dedupe: the envelope's `event_id`.

| event | acts |
|---|---|
| `payment.updated`, status `COMPLETED` | purchase by `customer_id` (payment's, else order's) |
| `refund.updated`, status `COMPLETED` | refund of `amount_money` |

The ledger's order id is the Square **payment id**: a refund names its payment
(`payment_id`), while its `order_id` is the new order Square creates for the refund, not
the sale's. The purchase lines are the order's `line_items`, read from the Orders API
(`[square]`), when the payment has an `order_id` and is the order's only tender; else
one line of the payment's `amount_money`. Money is in minor units by the currency's
exponent. Square also sends `payment.updated` (still `COMPLETED`) when a payment is
refunded: that payment already earned, so the ledger answers it as a duplicate order.
A payment without a customer (a guest sale) is ignored (200).
"""

from __future__ import annotations

import base64
import binascii
from decimal import Decimal
from typing import Any

from backends import square
from backends.currency import from_minor
from backends.inbound import (
    BadSignature,
    Delivery,
    Identity,
    Ignored,
    Parsed,
    SourceUnavailable,
    Unprocessable,
    WebhookSource,
    hmac_sha256,
    integer,
    json_object,
    money,
    same,
    text,
)
from ledger.commands import MemberRef, RecordPurchase, RefundPurchase
from ledger.program import Channel
from ledger.rules import Line

HEADER = "x-square-hmacsha256-signature"
MAX_MINOR = 10**15
MAX_QUANTITY = 10**6
SKIPPED_ITEM_TYPES = frozenset({"GIFT_CARD"})  # selling a gift card is not spend yet


class SquareSource(WebhookSource):
    name = "square"

    async def verify(self, delivery: Delivery, secrets: tuple[str, ...]) -> None:
        given = delivery.header(HEADER)
        if not given:
            raise BadSignature(f"the {HEADER} header is missing")
        try:
            signature = base64.b64decode(given, validate=True)
        except (binascii.Error, ValueError):
            raise BadSignature(f"{HEADER} is not base64") from None
        url = delivery.program.webhook_secrets.square_notification_url
        if not delivery.body or not url:
            raise BadSignature("an empty body is never signed")
        message = url.encode() + delivery.body
        if not any(same(hmac_sha256(secret, message), signature) for secret in secrets):
            raise BadSignature(f"{HEADER} does not match the notification URL and the body")

    def identify(self, delivery: Delivery) -> Identity:
        body = json_object(delivery)
        kind = body.get("type")
        return Identity(
            text(body.get("event_id"), "event_id"), kind if isinstance(kind, str) else ""
        )

    async def parse(self, delivery: Delivery, identity: Identity) -> Parsed:
        body = json_object(delivery)
        if identity.topic == "payment.updated":
            return await self._payment(delivery, _object(body, "payment"), identity.event_id)
        if identity.topic == "refund.updated":
            return _refund(_object(body, "refund"), delivery.program.currency)
        return Ignored(f"event type {identity.topic!r} is not one this source acts on")

    async def _payment(self, delivery: Delivery, payment: dict[str, Any], event_id: str) -> Parsed:
        status = payment.get("status")
        if status != "COMPLETED":
            return Ignored(f"payment status {status!r} is not COMPLETED")
        payment_id = text(payment.get("id"), "data.object.payment.id")
        amount, currency = _money(payment.get("amount_money"), "data.object.payment.amount_money")
        customer = payment.get("customer_id")
        lines: tuple[Line, ...] = (Line(None, None, 1, amount, Decimal(0)),)
        order_id = payment.get("order_id")
        if order_id is not None:
            order_id = text(order_id, "data.object.payment.order_id")
            order = await _order(delivery, order_id)
            customer = customer or order.get("customer_id")
            tenders = order.get("tenders")
            if not isinstance(tenders, list) or len(tenders) <= 1:
                listed = _lines(order, currency)
                if listed == ():
                    return Ignored("the order has no line items that earn")
                lines = listed or lines
        if customer is None or customer == "":
            return Ignored("the payment and its order name no customer")
        return [
            RecordPurchase(
                event_id,
                MemberRef(customer_id=text(customer, "customer_id")),
                payment_id,
                currency,
                lines,
                channel=Channel.POS,
            )
        ]


def _object(body: dict[str, Any], kind: str) -> dict[str, Any]:
    data = body.get("data")
    found = data.get("object") if isinstance(data, dict) else None
    found = found.get(kind) if isinstance(found, dict) else None
    if not isinstance(found, dict):
        raise Unprocessable(f"data.object.{kind} must be an object")
    return found


def _money(value: object, field: str, currency: str | None = None) -> tuple[Decimal, str]:
    """A Square `Money` (`amount` in minor units, `currency`) in major units."""
    if not isinstance(value, dict):
        raise Unprocessable(f"{field} must be an object")
    amount = integer(value.get("amount"), f"{field}.amount", low=0, high=MAX_MINOR)
    code = value.get("currency")
    if not isinstance(code, str) or len(code) != 3 or not code.isascii() or not code.isupper():
        raise Unprocessable(f"{field}.currency must be an ISO 4217 code")
    if currency is not None and code != currency:
        raise Unprocessable(f"{field}.currency is {code}, not {currency}")
    return money(str(from_minor(amount, code)), f"{field}.amount"), code


def _lines(order: dict[str, Any], currency: str) -> tuple[Line, ...] | None:
    """The order's line items: unit price × quantity less the line's discounts (Square
    spreads order-level discounts onto the lines). A measured quantity (`2.25` kg) is
    one line of its gross sales. None when the order lists no line items at all."""
    items = order.get("line_items")
    if items is None:  # an amount-only order: the payment's amount earns
        return None
    if not isinstance(items, list):
        raise Unprocessable("the order's line_items must be a list")
    lines = []
    for index, item in enumerate(items):
        where = f"order.line_items.{index}"
        if not isinstance(item, dict):
            raise Unprocessable(f"{where} must be an object")
        if item.get("item_type") in SKIPPED_ITEM_TYPES:
            continue
        quantity = _quantity(item.get("quantity"), f"{where}.quantity")
        discount = Decimal(0)
        if item.get("total_discount_money") is not None:
            discount, _ = _money(
                item["total_discount_money"], f"{where}.total_discount_money", currency
            )
        sku = item.get("catalog_object_id")
        sku = sku if isinstance(sku, str) and sku else None
        if isinstance(quantity, int):
            if quantity == 0:
                continue
            price, _ = _money(item.get("base_price_money"), f"{where}.base_price_money", currency)
            lines.append(Line(sku, None, quantity, price, discount))
        else:
            gross, _ = _money(item.get("gross_sales_money"), f"{where}.gross_sales_money", currency)
            lines.append(Line(sku, None, 1, gross, discount))
    return tuple(lines)


def _quantity(value: object, field: str) -> int | Decimal:
    """Square's quantity string: a whole count, or a measurement such as `2.25`."""
    if not isinstance(value, str) or not 0 < len(value) <= 20:
        raise Unprocessable(f"{field} must be a decimal string")
    try:
        parsed = Decimal(value)
    except ArithmeticError:
        raise Unprocessable(f"{field} must be a decimal string") from None
    if not parsed.is_finite() or parsed < 0 or parsed > MAX_QUANTITY:
        raise Unprocessable(f"{field} must be between 0 and {MAX_QUANTITY}")
    return int(parsed) if parsed == parsed.to_integral_value() else parsed


async def _order(delivery: Delivery, order_id: str) -> dict[str, Any]:
    config = delivery.program.square
    if config is None:  # the program file requires [square] with the square secret
        raise Unprocessable("the program has no [square] section to read the order with")
    if delivery.http is None:
        raise SourceUnavailable("no HTTP session to reach Square with")
    return await square.retrieve_order(delivery.http, config, order_id)


def _refund(refund: dict[str, Any], program_currency: str) -> Parsed:
    status = refund.get("status")
    if status != "COMPLETED":
        return Ignored(f"refund status {status!r} is not COMPLETED")
    refund_id = text(refund.get("id"), "data.object.refund.id")
    payment_id = text(refund.get("payment_id"), "data.object.refund.payment_id")
    amount, _ = _money(
        refund.get("amount_money"), "data.object.refund.amount_money", program_currency
    )
    # One refund, one effect: its id is the key, however many refund.updated name it.
    # Kept when its payment has not arrived yet: webhooks come in any order.
    return [RefundPurchase(f"refund:{refund_id}", payment_id, amount, keep_until_purchase=True)]


SOURCE = SquareSource()
