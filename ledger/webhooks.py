"""Outgoing webhooks, the ledger's side: which events go out under which public topic,
the delivery rows a change writes in its own transaction, the payload receivers get,
and the operations on deliveries (list, fetch, retry now).

The HTTP side (signing, sending, the address guard) is `events/webhooks.py` and the
`events/webhook_*.py` beside it; the ledger transaction only writes rows, so no
endpoint can slow a ledger write.

Topics. The outbox types map to the public topics of DESIGN §7:

| outbox type | topic | note |
|---|---|---|
| `member.enrolled` | `member.enrolled` | |
| `points.earned` | `points.earned` | EARN and BONUS (`data.kind` tells which) |
| `points.redeemed` | `points.redeemed` | a captured checkout hold |
| `reward.redeemed` | `reward.redeemed` | a reward redemption (its REDEEM entry) |
| `points.adjusted` | `points.adjusted` | an operator's adjustment |
| `points.refunded` | `points.adjusted` | a refund's reversal, kind REFUND |
| `points.returned` | `points.adjusted` | points of a cancelled redemption, kind CANCEL |
| `points.expired` | `points.expired` | |
| `tier.changed` | `tier.changed` | |

Not sent: `member.updated`, `member.forgotten`, `points.activated`, `points.held`,
`points.released`, `redemption.used` (live subscriptions still get them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from ledger import deliveries_repository
from ledger.commands import Outcome, RetryWebhookDelivery
from ledger.deliveries_repository import DueDelivery
from ledger.errors import InvalidState, LedgerError
from ledger.models import (
    DeliveryDirection,
    DeliveryOutcome,
    Member,
    OutboxEvent,
    WebhookDelivery,
)

if TYPE_CHECKING:
    from ledger.program import Program
    from ledger.scope import LedgerScope

TOPICS = (
    "member.enrolled",
    "points.earned",
    "points.redeemed",
    "points.adjusted",
    "points.expired",
    "tier.changed",
    "reward.redeemed",
)
TOPIC_OF = {
    "member.enrolled": "member.enrolled",
    "points.earned": "points.earned",
    "points.redeemed": "points.redeemed",
    "reward.redeemed": "reward.redeemed",
    "points.adjusted": "points.adjusted",
    "points.refunded": "points.adjusted",
    "points.returned": "points.adjusted",
    "points.expired": "points.expired",
    "tier.changed": "tier.changed",
}
# The session.info key under which a ledger scope leaves its program for the outbox.
PROGRAM_KEY = "loyalty_program"
ATTEMPT_LOG_LIMIT = 20  # attempts kept per delivery (a manual retry adds more)
BODY_LIMIT = 1024  # bytes of a receiver's answer kept per attempt


class UnknownDelivery(LedgerError):
    code = "UNKNOWN_DELIVERY"


def fan_out(session: AsyncSession, program: Program, event: OutboxEvent, now: datetime) -> None:
    """One delivery row per endpoint of `program` that takes the event's topic, due now;
    written in the transaction of the change (the outbox row's own)."""
    topic = TOPIC_OF.get(event.type)
    if topic is None:
        return
    for endpoint in program.webhooks:
        if endpoint.events and topic not in endpoint.events:
            continue
        session.add(
            WebhookDelivery(
                direction=DeliveryDirection.OUT,
                program_id=program.id,
                endpoint=endpoint.url,
                event=event,
                topic=topic,
                outcome=DeliveryOutcome.PENDING,
                attempts=0,
                next_attempt_at=now,
                attempt_log=[],
                created_at=now,
                updated_at=now,
            )
        )


def message_id(delivery: WebhookDelivery | DueDelivery) -> str:
    """The `webhook-id`: one per (event, endpoint), the same on every attempt."""
    return f"msg_{delivery.program_id}_{delivery.id}"


def payload(
    delivery: WebhookDelivery, event: OutboxEvent, member: Member | None, sequence: int
) -> dict[str, Any]:
    """`{"type", "timestamp", "data"}`: the event as the outbox holds it (erased when the
    member was forgotten), with the member's customerId and its sequence number."""
    customer_id = None if member is None or member.forgotten_at is not None else member.customer_id
    return _payload(
        delivery.topic, event.id, event.payload, event.created_at, customer_id, sequence
    )


def claimed_body(delivery: DueDelivery, sequence: int) -> str:
    """`payload` of a delivery as the dispatcher claims it, as the JSON text that is
    signed and sent, built from the event's stored text with orjson: the standard
    library's decoder and encoder cost more than the rest of the claim."""
    payload = _payload(
        delivery.topic,
        delivery.event_id,
        orjson.loads(delivery.event_payload),
        delivery.event_created_at,
        delivery.customer_id,
        sequence,
    )
    return orjson.dumps(payload).decode()


def _payload(
    topic: str,
    event_id: int,
    event_payload: dict[str, Any],
    created_at: datetime,
    customer_id: str | None,
    sequence: int,
) -> dict[str, Any]:
    data = {
        **event_payload,
        "eventId": str(event_id),
        "customerId": customer_id,
        "sequence": sequence,
    }
    return {"type": topic, "timestamp": _iso(created_at), "data": data}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# -- operations on deliveries (the GraphQL layer's `webhookDeliveries` and retry) -------


@dataclass(frozen=True)
class DeliveryPage:
    deliveries: list[WebhookDelivery]
    has_next_page: bool


async def list_deliveries(
    session: AsyncSession,
    program_id: str,
    *,
    first: int,
    after: int | None = None,
    direction: DeliveryDirection | None = None,
    failed_only: bool = False,
) -> DeliveryPage:
    """A program's deliveries, newest first, with ids below `after` (the keyset cursor);
    `failed_only`: dead, refused, disabled, or pending after a failed attempt."""
    rows = await deliveries_repository.deliveries_page(
        session, program_id, after, first + 1, direction=direction, failed_only=failed_only
    )
    return DeliveryPage(rows[:first], len(rows) > first)


async def delivery(session: AsyncSession, program_id: str, delivery_id: int) -> WebhookDelivery:
    """One delivery of the program; another program's id is UNKNOWN_DELIVERY."""
    found = await deliveries_repository.delivery(session, program_id, delivery_id)
    if found is None:
        raise UnknownDelivery("no such webhook delivery in this program", ["id"])
    return found


async def retry_delivery(
    session: AsyncSession, program_id: str, delivery_id: int, now: datetime
) -> WebhookDelivery:
    """Send an outbound delivery again, now, whatever its outcome. A delivery of an
    endpoint that a 410 disabled enables the endpoint again (the operator fixed it);
    one that fails again goes on with the schedule from its attempt count."""
    found = await deliveries_repository.delivery(session, program_id, delivery_id, lock=True)
    if found is None:
        raise UnknownDelivery("no such webhook delivery in this program", ["id"])
    if found.direction != DeliveryDirection.OUT:
        raise InvalidState("only outbound deliveries are sent again", ["id"])
    await deliveries_repository.enable_endpoint(session, program_id, found.endpoint)
    found.outcome = DeliveryOutcome.PENDING
    found.next_attempt_at = now
    found.lease = None
    found.updated_at = now
    await session.flush()
    return found


async def retry(scope: LedgerScope, command: RetryWebhookDelivery) -> Outcome:
    """`retryWebhookDelivery`: the delivery, due now (`retry_delivery`). One to an
    endpoint no longer in the program file is INVALID_STATE: nothing would send it."""
    found = await delivery(scope.session, scope.program_id, command.delivery_id)
    configured = {hook.url for hook in scope.program.webhooks}
    if found.direction == DeliveryDirection.OUT and found.endpoint not in configured:
        raise InvalidState("this endpoint is no longer among the program's webhooks", ["id"])
    found = await retry_delivery(scope.session, scope.program_id, found.id, scope.now)
    return Outcome(delivery_id=found.id)


# -- what an operator is shown of a delivery -----------------------------------------


@dataclass(frozen=True)
class AttemptRecord:
    """One attempt as the delivery's log keeps it."""

    at: datetime
    status: int | None
    latency_ms: int | None
    response_excerpt: str | None
    error: str | None


def attempt_records(delivery: WebhookDelivery) -> list[AttemptRecord]:
    """The attempts kept for the delivery (the last `ATTEMPT_LOG_LIMIT`), oldest first."""
    return [
        AttemptRecord(
            at=datetime.fromisoformat(entry["at"]),
            status=entry.get("status"),
            latency_ms=entry.get("latencyMs"),
            response_excerpt=entry.get("body"),
            error=entry.get("error"),
        )
        for entry in delivery.attempt_log
    ]


def webhook_id(delivery: WebhookDelivery) -> str | None:
    """The `webhook-id` an outbound delivery is sent under (None for inbound ones)."""
    return message_id(delivery) if delivery.direction == DeliveryDirection.OUT else None


def event_id(delivery: WebhookDelivery) -> str | None:
    """OUT: the outbox event's id (`data.eventId` of the payload); IN: the platform's."""
    if delivery.direction == DeliveryDirection.OUT:
        return None if delivery.outbox_id is None else str(delivery.outbox_id)
    return delivery.event_id


def shown_url(url: str) -> str:
    """An endpoint URL as an operator may see it: credentials in it (`user:pass@`)
    replaced, since a URL can carry a secret as well as the signing key does."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))
