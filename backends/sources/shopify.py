"""`shopify`: Shopify's webhooks (DESIGN §7; research in docs/platforms/shopify.md).

Signature: `X-Shopify-Hmac-Sha256` is base64 HMAC-SHA256 of the raw body keyed with the
app's client secret, compared in constant time. `[webhook_secrets] shopify` takes one
secret, or a list (`["new", "old"]`) while a rotation takes effect (Shopify says up to an
hour). There is no timestamp in the signature: dedupe on `X-Shopify-Webhook-Id` is the
replay defence, and the ledger's one earn per order id is the business one. The shop
domain and topic headers are not signed; the program comes from our URL.

Topics (`X-Shopify-Topic`):

- `orders/paid`: a purchase. `customer.id` is the customerId, the order `id` the
  orderId, `currency` the currency; one line per line item at
  `price × quantity − Σ discount_allocations` (shipping and tax earn nothing; with
  `taxes_included` the line's tax comes off too), keeping the line item `id` as the
  line's ref; `processed_at` (else `created_at`) is occurredAt; `source_name` `pos`
  is the POS channel.
- `refunds/create`: a refund by lines. Each `refund_line_items[]`
  `(line_item_id, quantity)` is refunded from the line stored under that id, at the
  amount that line earned on, never Shopify's `subtotal` (which Shopify's own sample
  swaps between two lines). Before its purchase, the ledger keeps it until it arrives.
- `customers/create`: enrol the customer (`id`, `email`, `first_name last_name`) when
  the program has `auto_enroll`.
- `customers/redact`: forget the member (GDPR erase); an unknown customer is nothing
  to erase (200).
- `customers/data_request`: recorded as IGNORED; the merchant answers it with
  `exportMember` (members:pii).
- `shop/redact`: recorded as IGNORED; erasing a whole program is its operator's act,
  not a webhook's.

Decisions where the payload leaves room: an order without a customer (a guest checkout)
is ignored; line items priced 0 (free gifts) are left out (they earn nothing, and the
ledger takes only priced lines), as are their refund lines (`subtotal` 0); a refund
with no line items (shipping only, or an order adjustment) takes no points back.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from decimal import Decimal
from typing import Any

from backends.inbound import (
    BadSignature,
    Delivery,
    Identity,
    Ignored,
    Parsed,
    Unprocessable,
    WebhookSource,
    hmac_sha256,
    integer,
    json_object,
    money,
    required_header,
    same,
    text,
)
from ledger.commands import (
    Command,
    EnrollMember,
    ForgetMember,
    MemberRef,
    RecordPurchase,
    RefundPurchase,
)
from ledger.program import Channel
from ledger.rules import Line

HMAC_HEADER = "x-shopify-hmac-sha256"
MAX_NAME = 200


class Shopify(WebhookSource):
    name = "shopify"

    async def verify(self, delivery: Delivery, secrets: tuple[str, ...]) -> None:
        header = delivery.header(HMAC_HEADER)
        if not header:
            raise BadSignature("the X-Shopify-Hmac-Sha256 header is missing")
        try:
            given = base64.b64decode(header, validate=True)
        except (binascii.Error, ValueError):
            raise BadSignature("X-Shopify-Hmac-Sha256 is not base64") from None
        if not any(same(hmac_sha256(secret, delivery.body), given) for secret in secrets):
            raise BadSignature("X-Shopify-Hmac-Sha256 does not match the body")

    def identify(self, delivery: Delivery) -> Identity:
        return Identity(
            required_header(delivery, "x-shopify-webhook-id"),
            required_header(delivery, "x-shopify-topic"),
        )

    async def parse(self, delivery: Delivery, identity: Identity) -> Parsed:
        handler = TOPICS.get(identity.topic)
        if handler is None:
            return Ignored(f"topic {identity.topic!r} is not one this source acts on")
        return handler(delivery, json_object(delivery))


def _id(value: object, field: str) -> str:
    return text(value, field)


def _object(data: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Unprocessable(f"{key} must be an object")
    return value


def _list(data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise Unprocessable(f"{key} must be a list of objects")
    return value


def _sum(items: list[dict[str, Any]], key: str, where: str) -> Decimal:
    return sum(
        (money(item.get(key), f"{where}.{index}.{key}") for index, item in enumerate(items)),
        Decimal(0),
    )


def order_paid(delivery: Delivery, order: dict[str, Any]) -> Parsed:
    customer = _object(order, "customer")
    if customer is None or customer.get("id") is None:
        return Ignored("a guest order: no customer to credit")
    order_id = _id(order.get("id"), "id")
    taxes_included = order.get("taxes_included") is True
    lines = []
    for index, item in enumerate(_list(order, "line_items")):
        where = f"line_items.{index}"
        price = money(item.get("price"), f"{where}.price")
        if price == 0:
            continue  # a free item earns nothing
        discount = _sum(_list(item, "discount_allocations"), "amount", where)
        if taxes_included:  # the price holds the tax, which earns nothing
            discount += _sum(_list(item, "tax_lines"), "price", where)
        sku = item.get("sku")
        lines.append(
            Line(
                sku if isinstance(sku, str) and sku else None,
                None,
                integer(item.get("quantity"), f"{where}.quantity"),
                price,
                discount,
                ref=_id(item.get("id"), f"{where}.id"),
            )
        )
    if not lines:
        return Ignored("no priced line items: nothing earns")
    occurred = order.get("processed_at") or order.get("created_at")
    return [
        RecordPurchase(
            f"shopify:order:{order_id}",
            MemberRef(customer_id=_id(customer["id"], "customer.id")),
            order_id,
            text(order.get("currency"), "currency"),
            tuple(lines),
            channel=Channel.POS if order.get("source_name") == "pos" else Channel.ONLINE,
            occurred_at=_moment(occurred, "processed_at"),
        )
    ]


def _moment(value: object, field: str) -> datetime:
    if not isinstance(value, str) or len(value) > 40:
        raise Unprocessable(f"{field} must be an ISO-8601 time")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Unprocessable(f"{field} must be an ISO-8601 time") from None
    if moment.tzinfo is None:
        raise Unprocessable(f"{field} needs an offset")
    return moment


def _zero(value: object) -> bool:
    """A refund line's `subtotal` of 0 (Shopify sends it as a JSON number, or a string)."""
    if isinstance(value, str):
        return money(value, "subtotal") == 0
    return isinstance(value, int | float) and not isinstance(value, bool) and value == 0


def refund_created(delivery: Delivery, refund: dict[str, Any]) -> Parsed:
    refund_id = _id(refund.get("id"), "id")
    lines = []
    for index, item in enumerate(_list(refund, "refund_line_items")):
        where = f"refund_line_items.{index}"
        quantity = integer(item.get("quantity"), f"{where}.quantity", low=0)
        if quantity == 0 or _zero(item.get("subtotal")):
            continue  # nothing refunded on this line, or a free item
        lines.append((_id(item.get("line_item_id"), f"{where}.line_item_id"), quantity))
    if not lines:
        return Ignored("no line items refunded: shipping, tax and adjustments took no points")
    return [
        RefundPurchase(
            f"shopify:refund:{refund_id}",
            _id(refund.get("order_id"), "order_id"),
            line_refs=tuple(lines),
            keep_until_purchase=True,  # refunds/create may come before orders/paid
        )
    ]


def customer_created(delivery: Delivery, customer: dict[str, Any]) -> Parsed:
    if not delivery.program.auto_enroll:
        return Ignored("the program does not enrol customers on the fly (auto_enroll)")
    customer_id = _id(customer.get("id"), "id")
    names = [customer.get("first_name"), customer.get("last_name")]
    name = " ".join(part for part in names if isinstance(part, str) and part) or None
    email = customer.get("email")
    return [
        EnrollMember(
            f"shopify:customer:{customer_id}",
            customer_id,
            email=email if isinstance(email, str) and email else None,
            name=name[:MAX_NAME] if name else None,
        )
    ]


def customer_redact(delivery: Delivery, body: dict[str, Any]) -> Parsed:
    customer = _object(body, "customer")
    if customer is None:
        raise Unprocessable("customer is missing")
    customer_id = _id(customer.get("id"), "customer.id")
    command: Command = ForgetMember(
        f"shopify:redact:{customer_id}", MemberRef(customer_id=customer_id)
    )
    return [command]


def data_request(delivery: Delivery, body: dict[str, Any]) -> Parsed:
    customer = _object(body, "customer") or {}
    return Ignored(
        f"a data request for customer {customer.get('id')!r}: answer it with exportMember"
    )


def shop_redact(delivery: Delivery, body: dict[str, Any]) -> Parsed:
    return Ignored("shop/redact: erasing the program's data is left to its operator")


TOPICS = {
    "orders/paid": order_paid,
    "refunds/create": refund_created,
    "customers/create": customer_created,
    "customers/redact": customer_redact,
    "customers/data_request": data_request,
    "shop/redact": shop_redact,
}

SOURCE = Shopify()
