"""`paypal`: PayPal webhooks (DESIGN §7; facts in docs/platforms/paypal.md).

Signature: the `PAYPAL-TRANSMISSION-ID/-TIME/-SIG/-CERT-URL/-AUTH-ALGO` headers, checked
by PayPal's verify-webhook-signature API with the program's PayPal app and the Webhook
ID of the listener (`[paypal]`); `FAILURE` is 401. A transmission time more than five
minutes from our clock is refused first (401) without asking PayPal. The offline check
with PayPal's certificate is not done: the certificate URL is never fetched.
Dedupe: the event `id`.

| event | acts |
|---|---|
| `PAYMENT.CAPTURE.COMPLETED` | purchase: `custom_id` = customer id, `invoice_id` = order id |
| `PAYMENT.CAPTURE.REFUNDED` | refund of the refund's `amount` |

`amount.value` is a decimal string in major units, at most the currency's decimal places.
A capture without `invoice_id` is recorded under its capture id; a capture without
`custom_id` names no customer and is ignored (200). A refund names its order by its own
`invoice_id` (PayPal carries the capture's onto the refund) or, without one, through the
capture its `links[rel=up]` names, read from PayPal (`GET /v2/payments/captures/{id}`):
that capture's `invoice_id`, else its id.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from backends import paypal
from backends.currency import places_fit
from backends.inbound import (
    BadSignature,
    Delivery,
    Identity,
    Ignored,
    Parsed,
    SourceUnavailable,
    Unprocessable,
    WebhookSource,
    json_object,
    money,
    text,
)
from ledger.commands import MemberRef, RecordPurchase, RefundPurchase
from ledger.program import Channel, Program
from ledger.program_sections import Paypal
from ledger.rules import Line

HEADERS = {
    "transmission_id": ("paypal-transmission-id", 50),
    "transmission_time": ("paypal-transmission-time", 100),
    "transmission_sig": ("paypal-transmission-sig", 500),
    "cert_url": ("paypal-cert-url", 500),
    "auth_algo": ("paypal-auth-algo", 100),
}
TOLERANCE = timedelta(minutes=5)
AMOUNT = re.compile(r"[0-9]{1,20}(\.[0-9]{1,6})?")  # PayPal's money pattern, unsigned
CAPTURE_PATH = "/v2/payments/captures/"


class PaypalSource(WebhookSource):
    name = "paypal"

    def secrets(self, program: Program) -> tuple[str, ...]:
        """The listener's Webhook ID stands for a secret: without `[paypal]`, 404."""
        return () if program.paypal is None else (program.paypal.webhook_id,)

    async def verify(self, delivery: Delivery, secrets: tuple[str, ...]) -> None:
        values: dict[str, str] = {}
        for field, (header, limit) in HEADERS.items():
            value = delivery.header(header)
            if not value:
                raise BadSignature(f"the {header} header is missing")
            if len(value) > limit:
                raise BadSignature(f"{header} is longer than {limit} characters")
            values[field] = value
        transmission = paypal.Transmission(**values)
        _fresh(transmission.transmission_time, delivery.received_at)
        try:
            json_object(delivery)
        except Unprocessable as exc:
            raise BadSignature(f"PayPal signs JSON objects only: {exc.reason}") from None
        if delivery.http is None:
            raise SourceUnavailable("no HTTP session to reach PayPal with")
        ok, reason = await paypal.verify_signature(
            delivery.http, _config(delivery), transmission, delivery.body
        )
        if not ok:
            raise BadSignature(reason)

    def identify(self, delivery: Delivery) -> Identity:
        body = json_object(delivery)
        kind = body.get("event_type")
        return Identity(text(body.get("id"), "id"), kind if isinstance(kind, str) else "")

    async def parse(self, delivery: Delivery, identity: Identity) -> Parsed:
        body = json_object(delivery)
        resource = body.get("resource")
        if identity.topic not in {"PAYMENT.CAPTURE.COMPLETED", "PAYMENT.CAPTURE.REFUNDED"}:
            return Ignored(f"event type {identity.topic!r} is not one this source acts on")
        if not isinstance(resource, dict):
            raise Unprocessable("resource must be an object")
        if identity.topic == "PAYMENT.CAPTURE.COMPLETED":
            return _purchase(resource, identity.event_id)
        return await _refund(delivery, resource)


def _config(delivery: Delivery) -> Paypal:
    config = delivery.program.paypal
    assert config is not None  # `secrets` answers 404 without it
    return config


def _fresh(value: str, now: datetime) -> None:
    try:
        sent = datetime.fromisoformat(value) if len(value) <= 40 else None
    except ValueError:
        sent = None
    if sent is None or sent.tzinfo is None:
        raise BadSignature("paypal-transmission-time is not an Internet date-time")
    if abs(now - sent) > TOLERANCE:
        raise BadSignature("paypal-transmission-time is more than 5 minutes from now")


def _amount(resource: dict[str, Any]) -> tuple[Decimal, str]:
    amount = resource.get("amount")
    if not isinstance(amount, dict):
        raise Unprocessable("resource.amount must be an object")
    currency = amount.get("currency_code")
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isupper():
        raise Unprocessable("resource.amount.currency_code must be an ISO 4217 code")
    value = amount.get("value")
    if not isinstance(value, str) or not AMOUNT.fullmatch(value):
        raise Unprocessable("resource.amount.value must be a decimal string such as 10.99")
    parsed = money(value, "resource.amount.value")
    if not places_fit(parsed, currency):
        raise Unprocessable(f"resource.amount.value has more decimal places than {currency} has")
    return parsed, currency


def _string(resource: dict[str, Any], name: str) -> str | None:
    value = resource.get(name)
    if value is None or value == "":
        return None
    return text(value, f"resource.{name}")


def _purchase(capture: dict[str, Any], event_id: str) -> Parsed:
    capture_id = text(capture.get("id"), "resource.id")
    amount, currency = _amount(capture)
    customer = _string(capture, "custom_id")
    if customer is None:
        return Ignored("the capture has no custom_id naming a customer")
    order_id = _string(capture, "invoice_id") or capture_id
    return [
        RecordPurchase(
            event_id,
            MemberRef(customer_id=customer),
            order_id,
            currency,
            (Line(None, None, 1, amount, Decimal(0)),),
            channel=Channel.ONLINE,
        )
    ]


def _capture_id(refund: dict[str, Any]) -> str:
    links = refund.get("links")
    for link in links if isinstance(links, list) else ():
        if isinstance(link, dict) and link.get("rel") == "up":
            href = link.get("href")
            path = urlsplit(href).path if isinstance(href, str) else ""
            if path.startswith(CAPTURE_PATH) and path[len(CAPTURE_PATH) :].isalnum():
                return path[len(CAPTURE_PATH) :]
    raise Unprocessable("resource.links has no rel=up link to the refunded capture")


async def _refund(delivery: Delivery, refund: dict[str, Any]) -> Parsed:
    refund_id = text(refund.get("id"), "resource.id")
    amount, currency = _amount(refund)
    if currency != delivery.program.currency:
        raise Unprocessable(
            f"resource.amount.currency_code is {currency}, not {delivery.program.currency}"
        )
    order_id = _string(refund, "invoice_id")
    if order_id is None:
        capture_id = _capture_id(refund)
        if delivery.http is None:
            raise SourceUnavailable("no HTTP session to reach PayPal with")
        captured = await paypal.capture(delivery.http, _config(delivery), capture_id)
        order_id = _string(captured, "invoice_id") or capture_id
    # One refund, one effect: its id is the key, however many deliveries name it.
    # Kept when its capture has not arrived yet: webhooks come in any order.
    return [RefundPurchase(f"refund:{refund_id}", order_id, amount, keep_until_purchase=True)]


SOURCE = PaypalSource()
