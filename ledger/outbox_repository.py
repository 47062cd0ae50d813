"""The SQL of the rows that make a write happen once and its events go out: the
idempotency records, and the outbox rows the relay claims and marks published."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.models import IdempotencyRecord, OutboxEvent


async def idempotency_record(
    session: AsyncSession, program_id: str, client_id: str, key: str
) -> IdempotencyRecord | None:
    return await session.scalar(
        select(IdempotencyRecord)
        .where(
            IdempotencyRecord.program_id == program_id,
            IdempotencyRecord.client_id == client_id,
            IdempotencyRecord.key == key,
        )
        .execution_options(populate_existing=True)
    )


async def delete_idempotency_records(
    session: AsyncSession, program_id: str, client_id: str
) -> None:
    await session.execute(
        delete(IdempotencyRecord).where(
            IdempotencyRecord.program_id == program_id, IdempotencyRecord.client_id == client_id
        )
    )


async def purge_idempotency_records(
    session: AsyncSession, program_id: str, older_than: datetime
) -> int:
    """Delete the program's idempotency records made before `older_than`; how many."""
    result = await session.execute(
        delete(IdempotencyRecord).where(
            IdempotencyRecord.program_id == program_id, IdempotencyRecord.created_at < older_than
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def claim_unpublished(
    session: AsyncSession, limit: int, *, skip_locked: bool
) -> list[OutboxEvent]:
    """The oldest outbox rows not yet published, locked for this transaction; with
    `skip_locked` (PostgreSQL) rows another relay holds are passed over."""
    claim = (
        select(OutboxEvent)
        .where(OutboxEvent.published_at.is_(None))
        .order_by(OutboxEvent.id)
        .limit(limit)
    )
    if skip_locked:
        claim = claim.with_for_update(skip_locked=True)
    return list((await session.scalars(claim)).all())


async def mark_published(session: AsyncSession, ids: Sequence[int], at: datetime) -> None:
    await session.execute(
        update(OutboxEvent).where(OutboxEvent.id.in_(ids)).values(published_at=at)
    )
