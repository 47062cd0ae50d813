"""Sending platform webhooks to a running gateway: signed as each platform signs them
(Standard Webhooks with the `standardwebhooks` package, Shopify with hmac), and reading
back what the ledger holds."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook

from ledger.models import (
    DeliveryDirection,
    Entry,
    IdempotencyRecord,
    Member,
    Order,
    WebhookDelivery,
)
from tests.support.gateway import Gateway

EVENTS_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
EVENTS_OLD_SECRET = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
SHOPIFY_SECRET = "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"
SHOPIFY_OLD_SECRET = "shpss_0123456789abcdef0123456789abcdef"
SECRETS = {
    "events": [EVENTS_SECRET, EVENTS_OLD_SECRET],
    "shopify": [SHOPIFY_SECRET, SHOPIFY_OLD_SECRET],
}


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def encode(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def events_headers(
    body: bytes, message_id: str, secret: str = EVENTS_SECRET, at: datetime | None = None
) -> dict[str, str]:
    """Standard Webhooks headers for `body`, signed at `at` (now by default)."""
    moment = at or datetime.now(UTC)
    signature = Webhook(secret).sign(message_id, moment, body.decode())
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


def shopify_headers(
    body: bytes, topic: str, webhook_id: str, secret: str = SHOPIFY_SECRET
) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return {
        "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
        "X-Shopify-Topic": topic,
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Shop-Domain": "acme.myshopify.com",
        "X-Shopify-API-Version": "2025-10",
        "Content-Type": "application/json",
    }


async def post(
    gw: Gateway, source: str, body: bytes, headers: dict[str, str], program: str = "test"
) -> Answer:
    # aiohttp warns of raw bytes past 1 MiB (they are sent from the loop); a file object
    # is streamed instead, with the same Content-Length.
    data: bytes | io.BytesIO = io.BytesIO(body) if len(body) > 1024 * 1024 else body
    async with gw.http.post(
        f"{gw.url}/webhooks/{program}/{source}", data=data, headers=headers
    ) as response:
        text = await response.text()
        parsed = json.loads(text) if text else {}
        return Answer(
            response.status,
            parsed,
            {name.lower(): value for name, value in response.headers.items()},
        )


async def send_event(
    gw: Gateway,
    kind: str,
    data: dict[str, Any],
    message_id: str,
    *,
    secret: str = EVENTS_SECRET,
    program: str = "test",
) -> Answer:
    body = encode({"type": kind, "timestamp": "2026-03-02T15:00:00Z", "data": data})
    return await post(gw, "events", body, events_headers(body, message_id, secret), program)


async def send_shopify(
    gw: Gateway,
    topic: str,
    payload: dict[str, Any],
    webhook_id: str,
    *,
    secret: str = SHOPIFY_SECRET,
) -> Answer:
    body = encode(payload)
    return await post(gw, "shopify", body, shopify_headers(body, topic, webhook_id, secret))


@dataclass(frozen=True)
class Points:
    available: int
    pending: int


async def points(gw: Gateway, customer_id: str) -> Points | None:
    data = await gw.partner(
        """query($ref: MemberRef!) { member(ref: $ref) { points { available pending } } }""",
        {"ref": {"customerId": customer_id}},
    )
    member = data["member"]
    if member is None:
        return None
    return Points(member["points"]["available"], member["points"]["pending"])


@dataclass(frozen=True)
class Counts:
    """Rows of the ledger a refused delivery must leave as they were."""

    members: int
    entries: int
    orders: int
    keys: int


async def counts(gw: Gateway) -> Counts:
    async with gw.database.reading() as session:

        async def count(model: Any) -> int:
            return int(await session.scalar(select(func.count()).select_from(model)) or 0)

        return Counts(
            await count(Member),
            await count(Entry),
            await count(Order),
            await count(IdempotencyRecord),
        )


async def inbound_deliveries(gw: Gateway) -> list[WebhookDelivery]:
    async with gw.database.reading() as session:
        query = (
            select(WebhookDelivery)
            .where(WebhookDelivery.direction == DeliveryDirection.IN)
            .order_by(WebhookDelivery.id)
        )
        return list((await session.scalars(query)).all())


def purchase_data(
    order_id: str, customer_id: str = "cust-1", *lines: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    """A PurchaseInput as JSON; by default one line of 2 × 25.00 = 50.00."""
    return {
        "member": {"customerId": customer_id},
        "orderId": order_id,
        "currency": "USD",
        "lines": list(lines) or [{"sku": "TEE", "quantity": 2, "unitPrice": "25.00"}],
        **extra,
    }
