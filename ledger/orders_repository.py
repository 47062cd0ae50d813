"""The SQL of orders: an order id's state and lock, the refunds that wait for their
purchase, and the sums over orders that tiers qualify by."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.models import Lot, LotStatus, Order, PendingRefund


async def order_by_order_id(
    session: AsyncSession, program_id: str, order_id: str, *, lock: bool = False
) -> Order | None:
    query = select(Order).where(Order.program_id == program_id, Order.order_id == order_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return await session.scalar(query)


# Built once (every purchase asks it): executed with the program and order ids.
_ORDER_STATE = select(
    select(Order.id)
    .where(Order.program_id == bindparam("program_id"), Order.order_id == bindparam("order_id"))
    .exists(),
    select(PendingRefund.id)
    .where(
        PendingRefund.program_id == bindparam("program_id"),
        PendingRefund.order_id == bindparam("order_id"),
        PendingRefund.applied_at.is_(None),
    )
    .exists(),
)


async def order_state(session: AsyncSession, program_id: str, order_id: str) -> tuple[bool, bool]:
    """Whether the order id has earned already, and whether refunds of it wait for its
    purchase: both in one round trip."""
    params = {"program_id": program_id, "order_id": order_id}
    row = (await session.execute(_ORDER_STATE, params)).one()
    return bool(row[0]), bool(row[1])


async def lock_order_id(session: AsyncSession, program_id: str, order_id: str) -> None:
    """Serialize a purchase and a refund of one order id that has no order row yet
    (PostgreSQL: a transaction-scoped advisory lock; SQLite has one writer at a time)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    await session.execute(
        select(func.pg_advisory_xact_lock(func.hashtextextended(f"{program_id}/{order_id}", 0)))
    )


async def pending_refunds(
    session: AsyncSession, program_id: str, order_id: str
) -> list[PendingRefund]:
    """The refunds of an order still waiting for its purchase, in arrival order."""
    query = (
        select(PendingRefund)
        .where(
            PendingRefund.program_id == program_id,
            PendingRefund.order_id == order_id,
            PendingRefund.applied_at.is_(None),
        )
        .order_by(PendingRefund.id)
        .with_for_update()
    )
    return list((await session.scalars(query)).all())


async def has_orders(session: AsyncSession, member_id: int) -> bool:
    found = await session.scalar(select(Order.id).where(Order.member_id == member_id).limit(1))
    return found is not None


async def net_spend_cents(session: AsyncSession, member_id: int) -> int:
    """Eligible spend net of refunds of every order of the member, in cents."""
    total = await session.scalar(
        select(func.sum(Order.net_spend_cents)).where(Order.member_id == member_id)
    )
    return int(total or 0)


async def qualifying_points(
    session: AsyncSession, program_id: str, since: datetime | None, member_ids: Sequence[int] | None
) -> dict[int, int]:
    """EARN points net of refunds of available orders since `since`, per member."""
    return await _order_sums(
        session, program_id, since, member_ids, func.sum(Order.points - Order.reversed)
    )


async def qualifying_spend_cents(
    session: AsyncSession, program_id: str, since: datetime | None, member_ids: Sequence[int] | None
) -> dict[int, int]:
    """Eligible spend net of refunds (in cents) of available orders since `since`, per member."""
    return await _order_sums(
        session, program_id, since, member_ids, func.sum(Order.net_spend_cents)
    )


async def _order_sums(
    session: AsyncSession,
    program_id: str,
    since: datetime | None,
    member_ids: Sequence[int] | None,
    total: ColumnElement[Any],
) -> dict[int, int]:
    query = (
        select(Order.member_id, total)
        .join(Lot, Lot.id == Order.lot_id)
        .where(Order.program_id == program_id, Lot.status != LotStatus.PENDING)
        .group_by(Order.member_id)
    )
    if since is not None:
        query = query.where(Order.occurred_at >= since)
    if member_ids is not None:
        query = query.where(Order.member_id.in_(member_ids))
    rows = await session.execute(query)
    return {member_id: int(value or 0) for member_id, value in rows}
