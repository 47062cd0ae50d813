"""Webhook deliveries: the operator's list, one delivery, and a retry of one."""

from __future__ import annotations

from ledger import webhooks
from ledger.commands import Outcome, RetryWebhookDelivery
from ledger.models import DeliveryDirection, WebhookDelivery
from resolvers import pagination, writes
from resolvers.context import Context

CURSOR = "delivery"


async def deliveries_page(
    ctx: Context,
    first: int | None,
    after: str | None,
    direction: DeliveryDirection | None,
    failed_only: bool,
) -> pagination.Page[WebhookDelivery]:
    """The program's deliveries, newest first, keyset-paged by id."""
    size = pagination.page_size(first)
    before = pagination.decode_int(CURSOR, after)
    found = await ctx.reader.run(
        lambda session: webhooks.list_deliveries(
            session,
            ctx.program_id,
            first=size,
            after=before,
            direction=direction,
            failed_only=failed_only,
        )
    )
    items = found.deliveries
    cursors = [pagination.encode(CURSOR, row.id) for row in items]
    return pagination.Page(items, found.has_next_page, cursors)


async def retry(
    ctx: Context, idempotency_key: str | None, delivery_id: str
) -> tuple[Outcome, WebhookDelivery | None]:
    """The retry's outcome and the delivery as the retry left it."""
    # An id that is not one of ours names nothing: UNKNOWN_DELIVERY, as another program's.
    command = RetryWebhookDelivery(idempotency_key, pagination.ascii_int(delivery_id) or 0)
    return await writes.retry_delivery(ctx, command)
