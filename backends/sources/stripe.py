"""`stripe`: Stripe event webhooks (DESIGN §7, docs/platforms/stripe.md).

`Stripe-Signature` (`t=<unix>,v1=<hex>[,v1=<hex>...]`) is checked by the `stripe`
package's own `WebhookSignature.verify_header` with 300 s tolerance, against the
program's `[webhook_secrets] stripe` (or any of a list, during a rotation). Dedupe on
the event `id`.

- `payment_intent.succeeded` with `metadata.customer_id` and `metadata.order_id`:
  a purchase of one line, `amount_received`;
- `charge.refunded`: a refund by amount, what this event added to the charge's
  cumulative `amount_refunded`;
- anything else, or a PaymentIntent without that metadata: ignored (200).

Amounts are integers in the currency's minor unit (`backends.amounts`: JPY and the other
zero-decimal currencies are whole units). A charge does not carry its PaymentIntent's
metadata, so the order of a refunded charge is its own `metadata.order_id` when the
shop set one, else the PaymentIntent's, read from the Stripe API (`[stripe] api_key`).

The ledger's refund by amount adds to what the order has had refunded, while Stripe
reports the charge's running total: each event refunds `amount_refunded` minus its
`previous_attributes.amount_refunded`, under an idempotency key of the charge and the
new total, so a refund is applied once whichever events carry it, in any order.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from stripe import SignatureVerificationError, WebhookSignature

from backends.amounts import from_minor_units
from backends.inbound import (
    BadSignature,
    Delivery,
    Identity,
    Ignored,
    Parsed,
    Unprocessable,
    WebhookSource,
    integer,
    json_object,
    text,
)
from backends.stripe_api import StripeClient
from ledger.commands import MemberRef, RecordPurchase, RefundPurchase
from ledger.rules import Line

SIGNATURE = "stripe-signature"
TOLERANCE_SECONDS = 300
MAX_AMOUNT = 10**15  # minor units; the ledger bounds what it accepts further
MAX_ID = 255


class Stripe(WebhookSource):
    name = "stripe"

    async def verify(self, delivery: Delivery, secrets: tuple[str, ...]) -> None:
        header = delivery.header(SIGNATURE)
        if not header:
            raise BadSignature(f"the {SIGNATURE} header is missing")
        try:
            payload = delivery.body.decode("utf-8")
        except UnicodeDecodeError:
            raise BadSignature("the body is not UTF-8") from None
        reason = "no signature matches"
        for secret in secrets:
            try:
                WebhookSignature.verify_header(payload, header, secret, TOLERANCE_SECONDS)
                return
            except SignatureVerificationError as exc:
                reason = str(exc)
        raise BadSignature(reason)

    def identify(self, delivery: Delivery) -> Identity:
        event = json_object(delivery)
        event_id = text(event.get("id"), "id")
        kind = event.get("type")
        if len(event_id) > MAX_ID:
            raise Unprocessable(f"id is longer than {MAX_ID} characters")
        return Identity(event_id, kind if isinstance(kind, str) else "")

    async def parse(self, delivery: Delivery, identity: Identity) -> Parsed:
        event = json_object(delivery)
        if identity.topic not in ("payment_intent.succeeded", "charge.refunded"):
            return Ignored(f"event type {identity.topic!r} is not one this source acts on")
        data = event.get("data")
        if not isinstance(data, dict):
            raise Unprocessable("data must be an object")
        obj = data.get("object")
        if not isinstance(obj, dict):
            raise Unprocessable("data.object must be an object")
        if identity.topic == "payment_intent.succeeded":
            return _purchase(obj, event.get("created"))
        return await _refund(delivery, obj, data)


def _metadata(obj: dict[str, Any], where: str) -> dict[str, Any]:
    metadata = obj.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise Unprocessable(f"{where}.metadata must be an object")
    return metadata


def _amount(obj: dict[str, Any], name: str, where: str) -> int:
    return integer(obj.get(name), f"{where}.{name}", low=0, high=MAX_AMOUNT)


def _currency(obj: dict[str, Any], where: str) -> str:
    currency = obj.get("currency")
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
        raise Unprocessable(f"{where}.currency must be a three-letter currency code")
    return currency.upper()


def _purchase(intent: dict[str, Any], created: object) -> Parsed:
    """`created`: the event's, when the payment succeeded (the intent's own `created`
    may be days older, for a manual capture)."""
    where = "data.object"
    metadata = _metadata(intent, where)
    customer_id, order_id = metadata.get("customer_id"), metadata.get("order_id")
    if customer_id in (None, "") or order_id in (None, ""):
        return Ignored("a PaymentIntent without metadata.customer_id and metadata.order_id")
    intent_id = text(intent.get("id"), f"{where}.id")
    currency = _currency(intent, where)
    received = "amount_received" if intent.get("amount_received") is not None else "amount"
    amount = from_minor_units(_amount(intent, received, where), currency)
    occurred = None
    if created is not None:
        occurred = datetime.fromtimestamp(integer(created, "created", low=0, high=2**40), UTC)
    return [
        RecordPurchase(
            f"payment_intent:{intent_id}",
            MemberRef(customer_id=text(customer_id, f"{where}.metadata.customer_id")),
            text(order_id, f"{where}.metadata.order_id"),
            currency,
            (Line(None, None, 1, amount),),
            occurred_at=occurred,
        )
    ]


async def _refund(delivery: Delivery, charge: dict[str, Any], data: dict[str, Any]) -> Parsed:
    where = "data.object"
    charge_id = text(charge.get("id"), f"{where}.id")
    currency = _currency(charge, where)
    total = _amount(charge, "amount_refunded", where)
    previous = data.get("previous_attributes")
    if not isinstance(previous, dict) or "amount_refunded" not in previous:
        raise Unprocessable("data.previous_attributes.amount_refunded is missing")
    before = _amount(previous, "amount_refunded", "data.previous_attributes")
    if total <= before:
        return Ignored("the charge's refunded amount did not grow")
    order_id = await _order_of(delivery, charge)
    if order_id is None:
        return Ignored(
            "the charge paid no loyalty order (no metadata.order_id on it or its intent)"
        )
    return [
        RefundPurchase(
            f"charge:{charge_id}:refunded:{total}",
            order_id,
            amount=from_minor_units(total - before, currency),
        )
    ]


async def _order_of(delivery: Delivery, charge: dict[str, Any]) -> str | None:
    """The order a charge paid: its own metadata, else its PaymentIntent's; None when
    the payment was not a loyalty one (no PaymentIntent, or one without our metadata)."""
    order_id = _metadata(charge, "data.object").get("order_id")
    if order_id not in (None, ""):
        return text(order_id, "data.object.metadata.order_id")
    intent_id = charge.get("payment_intent")
    if intent_id is None:
        return None
    if not isinstance(intent_id, str) or not intent_id:
        raise Unprocessable("data.object.payment_intent must be a PaymentIntent id")
    config = delivery.program.stripe
    if config is None or delivery.http is None:
        raise Unprocessable(
            "the charge has no metadata.order_id; set [stripe] api_key so that its "
            "PaymentIntent can be read"
        )
    intent = await StripeClient(delivery.http, config).payment_intent(intent_id)
    metadata = _metadata(intent, "payment_intent")
    if metadata.get("order_id") in (None, "") or metadata.get("customer_id") in (None, ""):
        return None
    return text(metadata["order_id"], "payment_intent.metadata.order_id")


SOURCE = Stripe()
