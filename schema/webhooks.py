"""Webhook deliveries, inbound and outbound: the operator's list and the retry of an
outbound one (scope `webhooks:manage`). Endpoint secrets are never part of a delivery."""

from __future__ import annotations

from datetime import datetime

import strawberry

from auth import scopes
from auth.permissions import needs
from ledger import webhooks
from ledger.models import DeliveryDirection, DeliveryOutcome
from ledger.models import WebhookDelivery as WebhookDeliveryModel
from resolvers import webhooks as resolve
from resolvers.context import Context
from schema.pagination import Connection, connection
from schema.payloads import UserError, user_errors

WebhookDirection = strawberry.enum(DeliveryDirection, name="WebhookDirection")
WebhookDeliveryOutcome = strawberry.enum(DeliveryOutcome, name="WebhookDeliveryOutcome")


@strawberry.type(description="One attempt to send an outbound delivery.")
class WebhookAttempt:
    at: datetime
    http_status: int | None = strawberry.field(
        description="The receiver's status; null when no answer came (timeout, refused)"
    )
    latency_ms: int | None
    response_excerpt: str | None = strawberry.field(
        description="The first KiB of the receiver's answer"
    )
    error: str | None


@strawberry.type(
    description="A platform's webhook received (IN) or an event sent to an endpoint (OUT)."
)
class WebhookDelivery:
    id: strawberry.ID
    direction: WebhookDirection  # type: ignore[valid-type]
    source: str | None = strawberry.field(description="IN: the platform (shopify, stripe, ...)")
    url: str | None = strawberry.field(description="OUT: the endpoint's URL")
    event_id: str | None = strawberry.field(
        description="OUT: the event's id (data.eventId); IN: the platform's event id"
    )
    webhook_id: str | None = strawberry.field(
        description="OUT: the webhook-id header, the same on every attempt"
    )
    topic: str
    outcome: WebhookDeliveryOutcome  # type: ignore[valid-type]
    attempt_count: int = strawberry.field(description="Every attempt made so far")
    last_status: int | None
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime
    attempts: list[WebhookAttempt] = strawberry.field(
        description="The last attempts (at most 20), oldest first"
    )

    @classmethod
    def of(cls, model: WebhookDeliveryModel) -> WebhookDelivery:
        direction = DeliveryDirection(model.direction)
        outbound = direction == DeliveryDirection.OUT
        return cls(
            id=strawberry.ID(str(model.id)),
            direction=direction,
            source=None if outbound else model.endpoint,
            url=webhooks.shown_url(model.endpoint) if outbound else None,
            event_id=webhooks.event_id(model),
            webhook_id=webhooks.webhook_id(model),
            topic=model.topic,
            outcome=DeliveryOutcome(model.outcome),
            attempt_count=model.attempts,
            last_status=model.last_status,
            next_attempt_at=model.next_attempt_at,
            created_at=model.created_at,
            updated_at=model.updated_at,
            attempts=[
                WebhookAttempt(
                    at=record.at,
                    http_status=record.status,
                    latency_ms=record.latency_ms,
                    response_excerpt=record.response_excerpt,
                    error=record.error,
                )
                for record in webhooks.attempt_records(model)
            ],
        )


WebhookDeliveryConnection = Connection[WebhookDelivery]


@strawberry.input
class RetryWebhookDeliveryInput:
    idempotency_key: str | None = strawberry.field(
        default=None, description="Optional: with a key, a repeat replays the first answer"
    )
    id: strawberry.ID


@strawberry.type
class RetryWebhookDeliveryPayload:
    delivery: WebhookDelivery | None
    user_errors: list[UserError]


@strawberry.type
class WebhooksQuery:
    @strawberry.field(extensions=needs(scopes.WEBHOOKS_MANAGE))
    async def webhook_deliveries(
        self,
        info: strawberry.Info[Context],
        first: int | None = 20,
        after: str | None = None,
        direction: WebhookDirection | None = None,  # type: ignore[valid-type]
        failed_only: bool | None = False,
    ) -> WebhookDeliveryConnection:
        """Recent deliveries, newest first. `failedOnly`: dead, refused, disabled, or
        waiting for another attempt after a failed one."""
        page = await resolve.deliveries_page(
            info.context, first, after, direction, failed_only is True
        )
        return connection(page, WebhookDelivery.of)  # type: ignore[no-any-return]


@strawberry.type
class WebhooksMutation:
    @strawberry.mutation(extensions=needs(scopes.WEBHOOKS_MANAGE))
    async def retry_webhook_delivery(
        self, info: strawberry.Info[Context], input: RetryWebhookDeliveryInput
    ) -> RetryWebhookDeliveryPayload:
        """Send an outbound delivery again, due now."""
        ctx = info.context
        outcome, found = await resolve.retry(ctx, input.idempotency_key, str(input.id))
        return RetryWebhookDeliveryPayload(
            delivery=WebhookDelivery.of(found) if found is not None else None,
            user_errors=user_errors(outcome),
        )
