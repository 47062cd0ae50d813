"""The read side: every query the API answers, batched by key.

Each function takes a list of keys and answers all of them with one statement, so a
page of members costs one query per field, never one per member. Pages are keysets
(`after` is the last id seen), newest first for histories, oldest first for catalogs.
Forgotten members are not found.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, bindparam, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ledger import figures
from ledger.models import (
    Account,
    Base,
    Entry,
    EntryKind,
    EntryStatus,
    Hold,
    Lot,
    LotStatus,
    Member,
    Order,
    Redemption,
    RedemptionStatus,
    Reward,
)

M = TypeVar("M", bound=Base)


async def members_by_ids(
    session: AsyncSession, program_id: str, ids: Sequence[int], *, forgotten: bool = False
) -> dict[int, tuple[Member, Account | None]]:
    """Members by id with their accounts (None before the first posting), in one statement."""
    statement = _BY_ID_ANY if forgotten else _BY_ID
    rows = await session.execute(statement, {"program_id": program_id, "keys": list(ids)})
    return {member.id: (member, account) for member, account in rows}


async def members_by_customer_ids(
    session: AsyncSession, program_id: str, customer_ids: Sequence[str]
) -> dict[str, tuple[Member, Account | None]]:
    """Members by customer id with their accounts, in one statement."""
    keys = {"program_id": program_id, "keys": list(customer_ids)}
    rows = await session.execute(_BY_CUSTOMER_ID, keys)
    return {member.customer_id: (member, account) for member, account in rows}


def _with_accounts(key: Any, forgotten: bool) -> Select[Member, Account]:
    # A member and its account are read together: nearly every read of a member asks
    # for its points or tier, and one statement is one round trip instead of two.
    # Built once (bound parameters, the keys expanding): building a statement and its
    # cache key costs more than running this one on an indexed key.
    query = (
        select(Member, Account)
        .outerjoin(Account, Account.member_id == Member.id)
        .where(
            Member.program_id == bindparam("program_id"),
            key.in_(bindparam("keys", expanding=True)),
        )
    )
    if not forgotten:
        query = query.where(Member.forgotten_at.is_(None))
    return query


_BY_ID = _with_accounts(Member.id, False)
_BY_ID_ANY = _with_accounts(Member.id, True)
_BY_CUSTOMER_ID = _with_accounts(Member.customer_id, False)


async def members_page(
    session: AsyncSession, program_id: str, tier: str | None, after: int | None, limit: int
) -> list[Member]:
    """Members in enrolment (id) order after `after`, optionally those of one tier."""
    query = select(Member).where(Member.program_id == program_id, Member.forgotten_at.is_(None))
    if tier is not None:
        query = query.join(Account, Account.member_id == Member.id).where(Account.tier == tier)
    if after is not None:
        query = query.where(Member.id > after)
    return list(await session.scalars(query.order_by(Member.id).limit(limit)))


async def accounts_by_member_ids(
    session: AsyncSession, program_id: str, member_ids: Sequence[int]
) -> dict[int, Account]:
    query = select(Account).where(
        Account.program_id == program_id, Account.member_id.in_(member_ids)
    )
    return {account.member_id: account for account in await session.scalars(query)}


async def _pages(
    session: AsyncSession, model: type[M], query: Select[Any], member_ids: Sequence[int], limit: int
) -> dict[int, list[M]]:
    """The newest `limit` rows of each member (by id, descending), in one statement."""
    id_column: Any = model.id  # type: ignore[attr-defined]
    member_column: Any = model.member_id  # type: ignore[attr-defined]
    ranked = query.add_columns(
        func.row_number().over(partition_by=member_column, order_by=id_column.desc()).label("rank")
    ).where(member_column.in_(member_ids))
    inner = ranked.subquery()
    rows = await session.execute(
        select(model)
        .join(inner, id_column == inner.c.id)
        .where(inner.c.rank <= limit)
        .order_by(member_column, id_column.desc())
    )
    pages: dict[int, list[M]] = defaultdict(list)
    for (row,) in rows:
        pages[row.member_id].append(row)  # type: ignore[attr-defined]
    return pages


async def transaction_pages(
    session: AsyncSession,
    program_id: str,
    member_ids: Sequence[int],
    kinds: Sequence[EntryKind] | None,
    before: int | None,
    limit: int,
) -> dict[int, list[Entry]]:
    """Each member's entries of `kinds` (None: of every kind; empty: none), newest
    first, with ids below `before`."""
    query = select(Entry.id).where(Entry.program_id == program_id)
    if kinds is not None:
        query = query.where(Entry.kind.in_(list(kinds)))
    if before is not None:
        query = query.where(Entry.id < before)
    return await _pages(session, Entry, query, member_ids, limit)


async def redemption_pages(
    session: AsyncSession,
    program_id: str,
    member_ids: Sequence[int],
    before: int | None,
    limit: int,
) -> dict[int, list[Redemption]]:
    """Each member's redemptions, newest first, with ids below `before`."""
    query = select(Redemption.id).where(Redemption.program_id == program_id)
    if before is not None:
        query = query.where(Redemption.id < before)
    return await _pages(session, Redemption, query, member_ids, limit)


async def rewards_page(
    session: AsyncSession, program_id: str, after: str | None, limit: int
) -> list[Reward]:
    """The active catalog in id order after `after`."""
    query = select(Reward).where(Reward.program_id == program_id, Reward.active.is_(True))
    if after is not None:
        query = query.where(Reward.id > after)
    return list(await session.scalars(query.order_by(Reward.id).limit(limit)))


async def active_rewards(session: AsyncSession, program_id: str) -> list[Reward]:
    query = select(Reward).where(Reward.program_id == program_id, Reward.active.is_(True))
    return list(await session.scalars(query.order_by(Reward.id)))


async def rewards_by_ids(
    session: AsyncSession, program_id: str, ids: Sequence[str]
) -> dict[str, Reward]:
    query = select(Reward).where(Reward.program_id == program_id, Reward.id.in_(ids))
    return {reward.id: reward for reward in await session.scalars(query)}


async def redemption_counts(
    session: AsyncSession, member_ids: Sequence[int]
) -> dict[int, dict[str, int]]:
    """Redemptions not cancelled, per member and reward (what per-member limits count)."""
    rows = await session.execute(
        select(Redemption.member_id, Redemption.reward_id, func.count())
        .where(
            Redemption.member_id.in_(member_ids),
            Redemption.status != RedemptionStatus.CANCELLED,
        )
        .group_by(Redemption.member_id, Redemption.reward_id)
    )
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    for member_id, reward_id, count in rows:
        counts[member_id][reward_id] = int(count)
    return counts


async def expiring_points(
    session: AsyncSession, member_ids: Sequence[int], now: datetime, until: datetime
) -> dict[int, list[tuple[datetime, int]]]:
    """Unspent available points per member and expiry instant, soonest first."""
    rows = await session.execute(
        select(Lot.member_id, Lot.expires_at, func.sum(Lot.remaining))
        .where(
            Lot.member_id.in_(member_ids),
            Lot.status == LotStatus.AVAILABLE,
            Lot.remaining > 0,
            Lot.expires_at > now,
            Lot.expires_at <= until,
        )
        .group_by(Lot.member_id, Lot.expires_at)
        .order_by(Lot.member_id, Lot.expires_at)
    )
    expiring: dict[int, list[tuple[datetime, int]]] = defaultdict(list)
    for member_id, expires_at, points in rows:
        assert expires_at is not None
        expiring[member_id].append((expires_at, int(points)))
    return expiring


async def by_ids(
    session: AsyncSession, model: type[M], program_id: str, ids: Sequence[int]
) -> dict[int, M]:
    """Entries, holds or redemptions of the program by id."""
    id_column: Any = model.id  # type: ignore[attr-defined]
    program_column: Any = model.program_id  # type: ignore[attr-defined]
    rows = await session.scalars(
        select(model).where(program_column == program_id, id_column.in_(ids))
    )
    return {row.id: row for row in rows}  # type: ignore[attr-defined]


async def program_totals(
    session: AsyncSession, program_id: str, since: datetime
) -> figures.ProgramTotals:
    """The raw sums of the program's figures (`figures.program_stats` computes them):
    members not forgotten, members with an entry since `since`, points per entry kind
    (entries not pending; all, and the positive ones), balances, members per tier."""
    members = await session.scalar(
        select(func.count()).where(Member.program_id == program_id, Member.forgotten_at.is_(None))
    )
    active = await session.scalar(
        select(func.count(func.distinct(Entry.member_id))).where(
            Entry.program_id == program_id, Entry.occurred_at >= since
        )
    )
    points_by_kind: dict[str, int] = {}
    credits_by_kind: dict[str, int] = {}
    rows = await session.execute(
        select(
            Entry.kind,
            func.sum(Entry.points),
            func.sum(case((Entry.points > 0, Entry.points), else_=0)),
        )
        .where(Entry.program_id == program_id, Entry.status != EntryStatus.PENDING)
        .group_by(Entry.kind)
    )
    for kind, total, positive in rows:
        points_by_kind[EntryKind(kind)] = int(total or 0)
        credits_by_kind[EntryKind(kind)] = int(positive or 0)
    balances = await session.execute(
        select(func.sum(Account.available), func.sum(Account.held)).where(
            Account.program_id == program_id
        )
    )
    available, held = balances.one()
    per_tier = await session.execute(
        select(Account.tier, func.count())
        .join(Member, Member.id == Account.member_id)
        .where(Account.program_id == program_id, Member.forgotten_at.is_(None))
        .group_by(Account.tier)
    )
    return figures.ProgramTotals(
        members=int(members or 0),
        active_members=int(active or 0),
        points_by_kind=points_by_kind,
        credits_by_kind=credits_by_kind,
        available=int(available or 0),
        held=int(held or 0),
        members_by_tier={tier: int(count) for tier, count in per_tier},
    )


async def member_history(
    session: AsyncSession, member_id: int
) -> tuple[list[Entry], list[Redemption], list[Hold], list[Order]]:
    """Every entry, redemption, hold and order of a member, oldest first (the export)."""

    async def rows(model: Any) -> list[Any]:
        found = await session.scalars(
            select(model).where(model.member_id == member_id).order_by(model.id)
        )
        return list(found.all())

    return await rows(Entry), await rows(Redemption), await rows(Hold), await rows(Order)
