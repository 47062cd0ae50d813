"""The SQL of webhook deliveries: the operator's pages and the dispatcher's claims.

A dispatcher claims due deliveries (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so two
replicas never take the same row; SQLite has one writer at a time) by setting a lease:
a token, and `next_attempt_at` moved to when the lease runs out. It then sends without
holding any transaction, and records the attempt only while the lease is still its own.
A process killed mid-attempt leaves the lease to run out; any replica then tries again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.models import (
    DeliveryDirection,
    DeliveryOutcome,
    Member,
    OutboxEvent,
    WebhookDelivery,
    WebhookEndpoint,
)

_FAILED = (DeliveryOutcome.DEAD, DeliveryOutcome.REFUSED, DeliveryOutcome.DISABLED)


async def deliveries_page(
    session: AsyncSession,
    program_id: str,
    before: int | None,
    limit: int,
    *,
    direction: DeliveryDirection | None,
    failed_only: bool,
) -> list[WebhookDelivery]:
    """A program's deliveries, newest first, with ids below `before`."""
    query = select(WebhookDelivery).where(WebhookDelivery.program_id == program_id)
    if before is not None:
        query = query.where(WebhookDelivery.id < before)
    if direction is not None:
        query = query.where(WebhookDelivery.direction == direction)
    if failed_only:
        query = query.where(
            or_(
                WebhookDelivery.outcome.in_(_FAILED),
                and_(
                    WebhookDelivery.outcome == DeliveryOutcome.PENDING,
                    WebhookDelivery.attempts > 0,
                ),
            )
        )
    query = query.order_by(WebhookDelivery.id.desc()).limit(limit)
    return list((await session.scalars(query)).all())


async def delivery(
    session: AsyncSession, program_id: str, delivery_id: int, *, lock: bool = False
) -> WebhookDelivery | None:
    query = select(WebhookDelivery).where(
        WebhookDelivery.program_id == program_id, WebhookDelivery.id == delivery_id
    )
    if lock:
        query = query.with_for_update()
    return await session.scalar(query)


async def disabled_endpoints(session: AsyncSession) -> set[tuple[str, str]]:
    """(program id, url) of every endpoint a 410 disabled."""
    rows = await session.execute(
        select(WebhookEndpoint.program_id, WebhookEndpoint.url).where(
            WebhookEndpoint.disabled_at.is_not(None)
        )
    )
    return {(program_id, url) for program_id, url in rows.all()}


async def disable_endpoint(
    session: AsyncSession, program_id: str, url: str, at: datetime, reason: str
) -> None:
    """Disable the endpoint and every delivery still waiting for it."""
    found = await session.get(WebhookEndpoint, (program_id, url), with_for_update=True)
    if found is None:
        session.add(WebhookEndpoint(program_id=program_id, url=url, disabled_at=at, reason=reason))
    elif found.disabled_at is None:
        found.disabled_at, found.reason = at, reason
    await session.flush()
    await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.direction == DeliveryDirection.OUT,
            WebhookDelivery.program_id == program_id,
            WebhookDelivery.endpoint == url,
            WebhookDelivery.outcome == DeliveryOutcome.PENDING,
        )
        .values(outcome=DeliveryOutcome.DISABLED, next_attempt_at=None, lease=None, updated_at=at)
    )


async def enable_endpoint(session: AsyncSession, program_id: str, url: str) -> None:
    await session.execute(
        delete(WebhookEndpoint).where(
            WebhookEndpoint.program_id == program_id, WebhookEndpoint.url == url
        )
    )


async def claim_due(
    session: AsyncSession,
    program_id: str,
    url: str,
    now: datetime,
    limit: int,
    *,
    lease: str,
    lease_until: datetime,
    skip_locked: bool,
) -> list[WebhookDelivery]:
    """Up to `limit` deliveries to one endpoint due at `now`, oldest due first, leased to
    `lease` until `lease_until`."""
    claim = (
        select(WebhookDelivery)
        .where(
            WebhookDelivery.direction == DeliveryDirection.OUT,
            WebhookDelivery.outcome == DeliveryOutcome.PENDING,
            WebhookDelivery.next_attempt_at <= now,
            WebhookDelivery.program_id == program_id,
            WebhookDelivery.endpoint == url,
        )
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
    )
    if skip_locked:
        claim = claim.with_for_update(skip_locked=True)
    rows = list((await session.scalars(claim)).all())
    for row in rows:
        row.lease = lease
        row.next_attempt_at = lease_until
    await session.flush()
    return rows


async def due_endpoints(session: AsyncSession, now: datetime) -> list[tuple[str, str]]:
    """(program id, url) of the endpoints with a delivery due at `now`."""
    rows = await session.execute(
        select(WebhookDelivery.program_id, WebhookDelivery.endpoint)
        .where(
            WebhookDelivery.direction == DeliveryDirection.OUT,
            WebhookDelivery.outcome == DeliveryOutcome.PENDING,
            WebhookDelivery.next_attempt_at <= now,
        )
        .distinct()
    )
    return [(program_id, url) for program_id, url in rows.all()]


async def next_due(session: AsyncSession) -> datetime | None:
    """The soonest `next_attempt_at` of a pending outbound delivery."""
    return await session.scalar(
        select(func.min(WebhookDelivery.next_attempt_at)).where(
            WebhookDelivery.direction == DeliveryDirection.OUT,
            WebhookDelivery.outcome == DeliveryOutcome.PENDING,
        )
    )


async def events_by_ids(session: AsyncSession, ids: Sequence[int]) -> dict[int, OutboxEvent]:
    rows = await session.scalars(select(OutboxEvent).where(OutboxEvent.id.in_(ids)))
    return {row.id: row for row in rows}


async def members_by_ids(session: AsyncSession, ids: Sequence[int]) -> dict[int, Member]:
    rows = await session.scalars(select(Member).where(Member.id.in_(ids)))
    return {row.id: row for row in rows}


async def member_sequence(
    session: AsyncSession, member_id: int, event_id: int, types: Sequence[str]
) -> int:
    """How many of the member's events of `types` the outbox holds up to `event_id`: the
    event's sequence number (a member's writes are serialized by its account lock, so
    its events' ids follow their commit order)."""
    count = await session.scalar(
        select(func.count()).where(
            OutboxEvent.member_id == member_id,
            OutboxEvent.id <= event_id,
            OutboxEvent.type.in_(types),
        )
    )
    return int(count or 0)


async def record_attempt(
    session: AsyncSession,
    delivery_id: int,
    lease: str,
    *,
    outcome: DeliveryOutcome,
    next_attempt_at: datetime | None,
    status: int | None,
    sequence: int | None,
    attempt: dict[str, Any],
    log_limit: int,
    at: datetime,
) -> bool:
    """Record one attempt of a delivery still leased to `lease`; False when the lease was
    lost (it ran out and another dispatcher took the delivery, or an operator retried)."""
    row = await session.scalar(
        select(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.lease == lease)
        .with_for_update()
    )
    if row is None:
        return False
    row.attempts += 1
    row.attempt_log = [*row.attempt_log, attempt][-log_limit:]
    row.outcome = outcome
    row.next_attempt_at = next_attempt_at
    row.last_status = status
    row.lease = None
    if sequence is not None:
        row.sequence = sequence
    row.updated_at = at
    await session.flush()
    return True
