"""`woocommerce`: WooCommerce order webhooks (DESIGN §7, docs/platforms/woocommerce.md).

Signed with `X-WC-Webhook-Signature` = base64 HMAC-SHA256(secret, raw body), the
program's `[webhook_secrets] woocommerce` (or any of a list, during a rotation). The
body of an `order.*` topic is the REST API order (`/wc/v3/orders/<id>`).

- `order.created`, `order.updated` with status `completed`: a purchase of its
  `line_items` (each line's `total`, after discounts), then its refunds;
- the same with any other status: its refunds (`refunds[]`), if it has any;
- the creation ping (an unsigned body `webhook_id=<id>`): answered 200, recorded;
- anything else: ignored (200).

WooCommerce's delivery id is new on every delivery, so the dedupe key is the order's
state: its id, its status and its refunds' ids. Each refund is applied once, by its
own id, for the amount it adds to the order's refunds, capped at the amount the lines
earned on (a refund of shipping or tax past the goods reverses nothing more). A guest
order (`customer_id` 0) earns as the program's `[woocommerce] guests` says.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from backends.amounts import line_of_total
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
from ledger.commands import Command, MemberRef, RecordPurchase, RefundPurchase
from ledger.rules import Line

SIGNATURE = "x-wc-webhook-signature"
TOPIC = "x-wc-webhook-topic"
DELIVERY = "x-wc-webhook-delivery-id"
PING = re.compile(rb"webhook_id=(\d{1,20})")
ORDER_TOPICS = frozenset({"order.created", "order.updated"})
MAX_READABLE_REFUNDS = 120  # characters of refund ids kept readable in a dedupe key
MAX_EMAIL = 254


class WooCommerce(WebhookSource):
    name = "woocommerce"

    async def verify(self, delivery: Delivery, secrets: tuple[str, ...]) -> None:
        given = delivery.header(SIGNATURE)
        if given is None:
            if _ping(delivery) is not None:
                return  # WooCommerce sends its creation ping unsigned and wants a 200
            raise BadSignature(f"the {SIGNATURE} header is missing")
        try:
            digest = base64.b64decode(given.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise BadSignature(f"{SIGNATURE} is not base64") from None
        if not any(same(hmac_sha256(secret, delivery.body), digest) for secret in secrets):
            raise BadSignature(f"{SIGNATURE} does not match the body")

    def identify(self, delivery: Delivery) -> Identity:
        ping = _ping(delivery)
        if ping is not None and delivery.header(SIGNATURE) is None:
            return Identity(f"ping:{ping}", "ping")
        topic = required_header(delivery, TOPIC)
        if topic not in ORDER_TOPICS:
            return Identity(required_header(delivery, DELIVERY), topic)
        order = json_object(delivery)
        order_id = text(order.get("id"), "id")
        status = text(order.get("status"), "status")
        refunds = ",".join(str(refund_id) for refund_id, _ in _refunds(order))
        if len(refunds) > MAX_READABLE_REFUNDS:
            refunds = "sha256:" + hashlib.sha256(refunds.encode()).hexdigest()
        key = f"order:{order_id[:64]}:{status[:32]}"
        return Identity(f"{key}:refunds:{refunds}" if refunds else key, topic)

    async def parse(self, delivery: Delivery, identity: Identity) -> Parsed:
        if identity.topic == "ping":
            return Ignored("the webhook's creation ping")
        if identity.topic not in ORDER_TOPICS:
            return Ignored(f"topic {identity.topic!r} is not one this source acts on")
        order = json_object(delivery)
        order_id = text(order.get("id"), "id")
        status = order.get("status")
        refunds = _refunds(order)
        if status != "completed" and not refunds:
            return Ignored(f"an order {status!r} earns nothing until it is completed")
        member = _member(delivery, order)
        if member is None:
            return Ignored('a guest order (customer_id 0), and [woocommerce] guests = "ignore"')
        lines = _lines(order)
        commands: list[Command] = []
        if status == "completed":
            commands.append(
                RecordPurchase(
                    f"{identity.event_id}:purchase",
                    member,
                    order_id,
                    text(order.get("currency"), "currency"),
                    tuple(lines),
                    occurred_at=_occurred_at(order),
                )
            )
        amounts = (line.quantity * line.unit_price - line.discount for line in lines)
        earned_on = sum(amounts, Decimal(0))
        refunded = Decimal(0)
        for refund_id, amount in refunds:
            before = min(refunded, earned_on)
            refunded += amount
            due = min(refunded, earned_on) - before
            if due > 0:
                commands.append(RefundPurchase(f"refund:{refund_id}", order_id, amount=due))
        if not commands:
            return Ignored("the order's refunds reverse nothing more")
        return commands


def _ping(delivery: Delivery) -> str | None:
    match = PING.fullmatch(delivery.body.strip())
    return match.group(1).decode() if match else None


def _member(delivery: Delivery, order: dict[str, Any]) -> MemberRef | None:
    customer_id = integer(order.get("customer_id"), "customer_id", low=0, high=2**63 - 1)
    if customer_id:
        return MemberRef(customer_id=str(customer_id))
    if delivery.program.woocommerce.guests == "ignore":
        return None
    billing = order.get("billing")
    email = billing.get("email") if isinstance(billing, dict) else None
    if not isinstance(email, str) or "@" not in email or len(email) > MAX_EMAIL:
        raise Unprocessable("a guest order needs billing.email to earn")
    return MemberRef(customer_id=email.strip().lower())


def _lines(order: dict[str, Any]) -> list[Line]:
    items = order.get("line_items")
    if not isinstance(items, list) or not items:
        raise Unprocessable("line_items must be a non-empty list")
    lines = []
    for index, item in enumerate(items):
        where = f"line_items.{index}"
        if not isinstance(item, dict):
            raise Unprocessable(f"{where} must be an object")
        quantity = integer(item.get("quantity"), f"{where}.quantity", low=1)
        total = money(item.get("total"), f"{where}.total")
        subtotal = item.get("subtotal")
        before = total if subtotal is None else money(subtotal, f"{where}.subtotal")
        sku = item.get("sku")
        if not isinstance(sku, str) or not sku:
            product = item.get("product_id")
            sku = f"product-{product}" if isinstance(product, int) else None
        if total < 0 or before < 0:
            raise Unprocessable(f"{where}: amounts must not be negative")
        lines.append(line_of_total(sku, quantity, before, total))
    return lines


def _refunds(order: dict[str, Any]) -> list[tuple[int, Decimal]]:
    """The order's refunds, oldest first: (id, amount refunded, positive)."""
    refunds = order.get("refunds", [])
    if not isinstance(refunds, list):
        raise Unprocessable("refunds must be a list")
    found = []
    for index, refund in enumerate(refunds):
        where = f"refunds.{index}"
        if not isinstance(refund, dict):
            raise Unprocessable(f"{where} must be an object")
        refund_id = integer(refund.get("id"), f"{where}.id", low=1, high=2**63 - 1)
        # "Refund total": the REST API writes it negative; read it either way.
        found.append((refund_id, abs(money(refund.get("total"), f"{where}.total"))))
    return sorted(found)


def _occurred_at(order: dict[str, Any]) -> datetime | None:
    """When it was completed (else paid, else created), from the `_gmt` fields (UTC
    without an offset): an order paid weeks before it ships still earns, its return
    window running from completion."""
    for name in ("date_completed_gmt", "date_paid_gmt", "date_created_gmt"):
        value = order.get(name)
        if isinstance(value, str) and value:
            try:
                parsed = datetime.fromisoformat(value[:40])
            except ValueError:
                raise Unprocessable(f"{name} is not an ISO-8601 date and time") from None
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed
    return None


SOURCE = WooCommerce()
