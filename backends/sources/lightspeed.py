"""`lightspeed`: Lightspeed Retail (X-Series, formerly Vend) webhooks (DESIGN §7).

A delivery is `application/x-www-form-urlencoded` with a `payload` field holding the
JSON of the changed object, an API 1.0 `register_sale` for `sale.update`. It is signed
`X-Signature: signature=<hex>,algorithm=HMAC-SHA256`: the lowercase hex HMAC-SHA256
of the raw request body (the form-encoded bytes as received) keyed with the app's
client secret (`[webhook_secrets] lightspeed`; docs/platforms/lightspeed.md says why
this one scheme and no other).

- a closed sale (`CLOSED`, `ONACCOUNT_CLOSED`, `LAYBY_CLOSED`) with a customer other
  than the walk-in one and no `return_for`: a purchase, order id = the sale id;
- a closed sale with `return_for` (negative quantities): a refund of the original sale
  by lines (sku, quantity);
- an open, parked, voided, on-account or layby sale, or one without a customer: 200,
  ignored; so is anything that is not a sale (another webhook type sent here).

Lines come from `register_sale_products`: `price` is the unit price, tax exclusive and
already net of the line's discount (`price_total` = `price` × `quantity` and
`totals.total_price` = Σ `price_total`), so `discount` is not taken off again. The
dedupe key is the sale id and its `version` (its status when a payload has none).
"""

from __future__ import annotations

import urllib.parse
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
from ledger.commands import MemberRef, RecordPurchase, RefundPurchase
from ledger.program import Channel
from ledger.rules import Line

SIGNATURE_HEADER = "x-signature"
ALGORITHM = "HMAC-SHA256"
CLOSED = frozenset({"CLOSED", "ONACCOUNT_CLOSED", "LAYBY_CLOSED"})
WALK_IN = "WALKIN"  # the customer code of the store's default, anonymous customer
MAX_FORM_FIELDS = 50
TOPIC = "sale.update"


def signature_of(secret: str, body: bytes) -> str:
    """The `signature` member of `X-Signature` for `body`."""
    return hmac_sha256(secret, body).hex()


def _signature_members(header: str) -> dict[str, str]:
    members: dict[str, str] = {}
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        members[name.strip().lower()] = value.strip()
    return members


class Lightspeed(WebhookSource):
    name = "lightspeed"

    async def verify(self, delivery: Delivery, secrets: tuple[str, ...]) -> None:
        header = delivery.header(SIGNATURE_HEADER)
        if not header:
            raise BadSignature("the X-Signature header is missing")
        members = _signature_members(header)
        if members.get("algorithm", "").upper() != ALGORITHM:
            raise BadSignature(f"X-Signature must name algorithm={ALGORITHM}")
        given = members.get("signature", "").lower().encode()
        if not given:
            raise BadSignature("X-Signature has no signature")
        if not any(same(signature_of(secret, delivery.body).encode(), given) for secret in secrets):
            raise BadSignature("X-Signature does not match the body")

    def identify(self, delivery: Delivery) -> Identity:
        sale, topic = _payload(delivery)
        sale_id = text(sale.get("id"), "payload.id")
        version = sale.get("version")
        if version is not None and version != "":
            return Identity(f"{sale_id}:v{text(version, 'payload.version')}", topic)
        status = sale.get("status")
        return Identity(f"{sale_id}:{status if isinstance(status, str) else ''}", topic)

    async def parse(self, delivery: Delivery, identity: Identity) -> Parsed:
        sale, topic = _payload(delivery)
        if topic != TOPIC:
            return Ignored(f"a {topic or 'non-sale'} webhook is not one this source acts on")
        sale_id = text(sale["id"], "payload.id")
        status = sale.get("status")
        if status not in CLOSED:
            return Ignored(f"sale {sale_id} is {status!r}, not closed")
        products = payloads.items(sale.get("register_sale_products"), "register_sale_products")
        original = sale.get("return_for")
        if original:
            return _refund(sale_id, text(original, "payload.return_for"), products)
        customer = _customer(sale)
        if customer is None:
            return Ignored(f"sale {sale_id} has no customer")
        lines = [_line(item, index) for index, item in _live(products)]
        if not lines:
            return Ignored(f"sale {sale_id} has no product lines")
        return [
            RecordPurchase(
                f"sale:{sale_id}",
                MemberRef(customer_id=customer),
                sale_id,
                delivery.program.currency,
                tuple(lines),
                channel=Channel.POS,
                occurred_at=payloads.timestamp(sale.get("sale_date"), "payload.sale_date"),
            )
        ]


def _payload(delivery: Delivery) -> tuple[dict[str, Any], str]:
    """The `payload` object and the webhook type it is (a sale, or something else)."""
    try:
        form = urllib.parse.parse_qs(
            delivery.body.decode("utf-8"),
            keep_blank_values=True,
            max_num_fields=MAX_FORM_FIELDS,
        )
    except UnicodeDecodeError:
        raise Unprocessable("the body is not UTF-8") from None
    except ValueError:
        raise Unprocessable("the body is not a form of a few fields") from None
    values = form.get("payload")
    if not values or len(values) != 1:
        raise Unprocessable("the form must carry exactly one payload field")
    payload = payloads.mapping(payloads.loads(values[0], "payload"), "payload")
    kind = form.get("type", [""])[0]
    if not kind and "register_sale_products" in payload:
        kind = TOPIC
    return payload, kind


def _customer(sale: dict[str, Any]) -> str | None:
    customer_id = sale.get("customer_id")
    if not customer_id:
        return None
    customer = sale.get("customer")
    if isinstance(customer, dict) and customer.get("customer_code") == WALK_IN:
        return None
    return text(customer_id, "payload.customer_id")


def _live(products: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    return [
        (index, item)
        for index, item in enumerate(products)
        if str(item.get("status", "")).upper() != "VOIDED"
    ]


def _sku(item: dict[str, Any], where: str) -> str:
    sku = item.get("sku") or item.get("product_id")
    return text(sku, f"{where}.sku")


def _line(item: dict[str, Any], index: int) -> Line:
    where = f"register_sale_products.{index}"
    quantity = payloads.amount(item.get("quantity"), f"{where}.quantity")
    price = payloads.amount(item.get("price"), f"{where}.price")
    if quantity <= 0:
        raise Unprocessable(f"{where}.quantity must be positive on a sale")
    if quantity != quantity.to_integral_value():  # weighed goods: one line of the amount
        return Line(_sku(item, where), None, 1, price * quantity)
    return Line(_sku(item, where), None, payloads.whole(quantity, f"{where}.quantity"), price)


def _refund(sale_id: str, original: str, products: list[dict[str, Any]]) -> Parsed:
    lines: list[tuple[str, int]] = []
    amount = Decimal(0)
    fractional = False
    for index, item in _live(products):
        where = f"register_sale_products.{index}"
        quantity = payloads.amount(item.get("quantity"), f"{where}.quantity")
        if quantity >= 0:
            continue  # an exchange's new items are not part of the refund
        price = payloads.amount(item.get("price"), f"{where}.price")
        amount += -quantity * price
        if quantity != quantity.to_integral_value():
            fractional = True
        else:
            lines.append((_sku(item, where), payloads.whole(-quantity, f"{where}.quantity")))
    if amount == 0 and not lines:
        return Ignored(f"return sale {sale_id} returns no products")
    key = f"return:{sale_id}"
    # Lightspeed does not promise order: a return may arrive before its sale, and is kept.
    if fractional:  # weighed goods cannot be returned by whole units: refund the amount
        return [RefundPurchase(key, original, amount=amount, keep_until_purchase=True)]
    return [RefundPurchase(key, original, lines=tuple(lines), keep_until_purchase=True)]


SOURCE = Lightspeed()
