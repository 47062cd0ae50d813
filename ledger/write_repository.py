"""The SQL of the write side: members, accounts, lots, entries, rewards, holds and
redemptions, and the inserts every new row goes through. Functions take the session and
return rows. Orders are `orders_repository`, idempotency records and the outbox
`outbox_repository`."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Insert,
    Table,
    Update,
    bindparam,
    delete,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from ledger.models import (
    Account,
    Base,
    Entry,
    EntryKind,
    EntryStatus,
    ForgottenCustomer,
    Hold,
    HoldStatus,
    Lot,
    LotStatus,
    Member,
    OutboxEvent,
    Redemption,
    RedemptionStatus,
    Reward,
)


async def member_by_id(session: AsyncSession, program_id: str, member_id: int) -> Member | None:
    return await session.scalar(
        select(Member).where(
            Member.program_id == program_id,
            Member.id == member_id,
            Member.forgotten_at.is_(None),
        )
    )


# Built once (every write by customer id starts here).
_MEMBER_BY_CUSTOMER_ID = select(Member).where(
    Member.program_id == bindparam("program_id"),
    Member.customer_id == bindparam("customer_id"),
    Member.forgotten_at.is_(None),
)


async def member_by_customer_id(
    session: AsyncSession, program_id: str, customer_id: str
) -> Member | None:
    params = {"program_id": program_id, "customer_id": customer_id}
    return await session.scalar(_MEMBER_BY_CUSTOMER_ID, params)


async def any_member(session: AsyncSession, program_id: str, member_id: int) -> Member | None:
    """The member of this id, forgotten or not."""
    return await session.scalar(
        select(Member).where(Member.program_id == program_id, Member.id == member_id)
    )


async def member_by_referral_code(
    session: AsyncSession, program_id: str, code: str
) -> Member | None:
    return await session.scalar(
        select(Member).where(
            Member.program_id == program_id,
            Member.referral_code == code,
            Member.forgotten_at.is_(None),
        )
    )


# Built once (every posting starts here).
_LOCK_ACCOUNTS = (
    select(Account)
    .where(Account.member_id.in_(bindparam("member_ids", expanding=True)))
    .order_by(Account.member_id)
    .with_for_update()
    .execution_options(populate_existing=True)
)


async def lock_accounts(session: AsyncSession, member_ids: Sequence[int]) -> list[Account]:
    """Lock the accounts of `member_ids` in primary-key order, and return them in that order.

    A row lock on PostgreSQL; on SQLite the write transaction (BEGIN IMMEDIATE) already
    holds the database lock.
    """
    ordered = sorted(set(member_ids))
    return list(await session.scalars(_LOCK_ACCOUNTS, {"member_ids": ordered}))


async def account(session: AsyncSession, member_id: int) -> Account | None:
    return await session.get(Account, member_id)


async def referrals_since(session: AsyncSession, referrer_id: int, since: datetime) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(Member)
        .where(Member.referred_by_id == referrer_id, Member.enrolled_at >= since)
    )
    return int(count or 0)


async def lot(session: AsyncSession, lot_id: int) -> Lot | None:
    return await session.get(Lot, lot_id, populate_existing=True)


async def spendable_lots(session: AsyncSession, member_id: int, limit: int) -> list[Lot]:
    """Available lots with points left, the first to expire first (never-expiring last)."""
    rows = await session.scalars(
        select(Lot)
        .where(
            Lot.member_id == member_id,
            Lot.status == LotStatus.AVAILABLE,
            Lot.remaining > 0,
        )
        .order_by(Lot.expires_at.is_(None), Lot.expires_at, Lot.id)
        .limit(limit)
        .execution_options(populate_existing=True)
    )
    return list(rows)


async def lots_by_ids(session: AsyncSession, lot_ids: Sequence[int]) -> dict[int, Lot]:
    rows = await session.scalars(
        select(Lot).where(Lot.id.in_(lot_ids)).execution_options(populate_existing=True)
    )
    return {row.id: row for row in rows}


async def count_action_entries(
    session: AsyncSession, member_id: int, source: str, since: datetime | None = None
) -> int:
    query = (
        select(func.count())
        .select_from(Entry)
        .where(Entry.member_id == member_id, Entry.kind == EntryKind.BONUS)
        .where(Entry.source == source)
    )
    if since is not None:
        query = query.where(Entry.occurred_at >= since)
    return int(await session.scalar(query) or 0)


async def entry_by_dedupe_key(session: AsyncSession, program_id: str, key: str) -> Entry | None:
    return await session.scalar(
        select(Entry).where(Entry.program_id == program_id, Entry.dedupe_key == key)
    )


async def mark_lot_entries(session: AsyncSession, lot_id: int, status: EntryStatus) -> None:
    """Move the pending entries of a lot (its earn and any refund of it) to `status`."""
    await session.execute(
        update(Entry)
        .where(Entry.lot_id == lot_id, Entry.status == EntryStatus.PENDING)
        .values(status=status)
        .execution_options(synchronize_session=False)
    )


async def reward(
    session: AsyncSession, program_id: str, reward_id: str, *, fresh: bool = False
) -> Reward | None:
    """The catalog row; with `fresh`, read again from the database."""
    return await session.get(Reward, (program_id, reward_id), populate_existing=fresh)


async def insert_new(session: AsyncSession, row: Base) -> bool:
    """Insert `row` in a savepoint; False, with nothing written and the transaction
    still usable, when the database refuses it (an integrity error: in practice a row
    of the same unique key). On PostgreSQL a concurrent insert of that key makes this
    one wait for it to commit (then False) or roll back (then True)."""
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:
        return False
    return True


Row = TypeVar("Row", bound=Base)


def _values(row: Base) -> dict[str, Any]:
    """The column values set on a new, unsaved object (the rest take their defaults)."""
    state = row.__dict__
    return {key: state[key] for key, _ in _columns(type(row)) if key in state}


@functools.cache
def _columns(model: type[Base]) -> tuple[tuple[str, ColumnElement[Any]], ...]:
    """The model's (attribute, column) pairs."""
    return tuple((attr.key, attr.columns[0]) for attr in inspect(model).column_attrs)


@functools.cache
def _insert_statement(model: type[Base], dialect: str, unless_exists: bool) -> Insert:
    """One Core INSERT ... RETURNING per model (and dialect), built once: executed with
    each row's values, its compiled form comes from the engine's cache."""
    table = cast(Table, model.__table__)
    columns = [column for _, column in _columns(model)]
    if not unless_exists:
        return insert(table).returning(*columns)
    insert_of = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert_of(table).on_conflict_do_nothing().returning(*columns)


async def _insert(session: AsyncSession, row: Row, *, unless_exists: bool) -> Row | None:
    """The Core insert of `insert_row`: no ORM bulk insert, no unit-of-work flush. The
    stored values (ids, defaults) are set on `row`, which joins the session as a loaded,
    persistent object."""
    model = type(row)
    dialect = session.get_bind().dialect.name
    statement = _insert_statement(model, dialect, unless_exists)
    stored = (await session.execute(statement, _values(row))).one_or_none()
    if stored is None:
        return None
    for (key, _), value in zip(_columns(model), stored, strict=True):
        set_committed_value(row, key, value)
    make_transient_to_detached(row)
    session.add(row)
    return row


async def insert_row(session: AsyncSession, row: Row) -> Row:
    """Insert the new object `row` in one INSERT ... RETURNING, without a unit-of-work
    flush; returns it stored (ids filled in), persistent in the session."""
    stored = await _insert(session, row, unless_exists=False)
    assert stored is not None
    return stored


@functools.cache
def _primary_key(model: type[Base]) -> tuple[tuple[str, ColumnElement[Any]], ...]:
    """The model's (attribute, column) pairs of its primary key."""
    mapper = inspect(model)
    return tuple((mapper.get_property_by_column(c).key, c) for c in mapper.primary_key)


@functools.cache
def _update_statement(model: type[Base], keys: tuple[str, ...]) -> Update:
    """One Core UPDATE of the attributes `keys` by primary key per model, built once."""
    table = cast(Table, model.__table__)
    columns = dict(_columns(model))
    where = [column == bindparam(f"k_{key}") for key, column in _primary_key(model)]
    values: dict[ColumnElement[Any], Any] = {columns[key]: bindparam(f"v_{key}") for key in keys}
    return update(table).where(*where).values(values)


async def update_row(session: AsyncSession, row: Base, **values: Any) -> None:
    """Set `values` on the persistent object `row` with one Core UPDATE by its primary
    key, no unit-of-work flush; the object holds them as loaded, with nothing pending."""
    model = type(row)
    identity = inspect(row).identity
    if identity is None:  # not stored yet: the UPDATE would match nothing
        raise ValueError(f"{model.__name__} is not in the database yet")
    keys = tuple(sorted(values))
    params = {f"v_{key}": values[key] for key in keys}
    for (key, _), value in zip(_primary_key(model), identity, strict=True):
        params[f"k_{key}"] = value
    result = await session.execute(_update_statement(model, keys), params)
    if cast(CursorResult[Any], result).rowcount != 1:
        raise RuntimeError(f"{model.__name__} {identity} was not updated")
    for key in keys:
        set_committed_value(row, key, values[key])


async def insert_unless_exists(session: AsyncSession, row: Row) -> Row | None:
    """`insert_row`, or None with nothing written when a row of the same unique key is
    there already (INSERT ... ON CONFLICT DO NOTHING: no savepoint needed). On PostgreSQL
    a concurrent insert of that key makes this one wait for it to commit (then None) or
    roll back (then the row)."""
    return await _insert(session, row, unless_exists=True)


async def take_stock(session: AsyncSession, program_id: str, reward_id: str) -> bool:
    """Take one unit of a stocked reward; False when none is left. Atomic."""
    result = await session.execute(
        update(Reward)
        .where(Reward.program_id == program_id, Reward.id == reward_id, Reward.stock > 0)
        .values(stock=Reward.stock - 1)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def return_stock(session: AsyncSession, program_id: str, reward_id: str) -> None:
    await session.execute(
        update(Reward)
        .where(Reward.program_id == program_id, Reward.id == reward_id, Reward.stock.is_not(None))
        .values(stock=Reward.stock + 1)
        .execution_options(synchronize_session=False)
    )


async def active_redemptions(session: AsyncSession, member_id: int, reward_id: str) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(Redemption)
        .where(
            Redemption.member_id == member_id,
            Redemption.reward_id == reward_id,
            Redemption.status != RedemptionStatus.CANCELLED,
        )
    )
    return int(count or 0)


async def redemption(
    session: AsyncSession, program_id: str, *, redemption_id: int | None = None, code: str = ""
) -> Redemption | None:
    query = select(Redemption).where(Redemption.program_id == program_id)
    if redemption_id is not None:
        query = query.where(Redemption.id == redemption_id)
    else:
        query = query.where(Redemption.code == code)
    return await session.scalar(query.with_for_update().execution_options(populate_existing=True))


async def hold(session: AsyncSession, program_id: str, hold_id: int) -> Hold | None:
    return await session.scalar(
        select(Hold)
        .where(Hold.program_id == program_id, Hold.id == hold_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def lock_jobs(session: AsyncSession, program_id: str) -> None:
    """One job run per program at a time across replicas (SQLite: the write lock)."""
    if session.get_bind().dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(f"jobs:{program_id}".encode()).digest()[:8], "big")
        await session.execute(select(func.pg_advisory_xact_lock(key - 2**63)))


async def due_lots(session: AsyncSession, program_id: str, now: datetime) -> list[Lot]:
    rows = await session.scalars(
        select(Lot)
        .where(
            Lot.program_id == program_id,
            Lot.status == LotStatus.PENDING,
            Lot.available_at <= now,
        )
        .order_by(Lot.member_id, Lot.id)
    )
    return list(rows)


async def expired_lots(session: AsyncSession, program_id: str, now: datetime) -> list[Lot]:
    rows = await session.scalars(
        select(Lot)
        .where(
            Lot.program_id == program_id,
            Lot.status == LotStatus.AVAILABLE,
            Lot.expires_at <= now,
        )
        .order_by(Lot.member_id, Lot.expires_at, Lot.id)
    )
    return list(rows)


async def stale_holds(
    session: AsyncSession, program_id: str, now: datetime, *, lock: bool = False
) -> list[Hold]:
    query = (
        select(Hold)
        .where(
            Hold.program_id == program_id,
            Hold.status == HoldStatus.HELD,
            Hold.expires_at <= now,
        )
        .order_by(Hold.member_id, Hold.id)
    )
    if lock:
        query = query.with_for_update()
    return list(await session.scalars(query))


async def birthday_candidates(session: AsyncSession, program_id: str, year: int) -> list[Member]:
    rows = await session.scalars(
        select(Member).where(
            Member.program_id == program_id,
            Member.forgotten_at.is_(None),
            Member.birthday.is_not(None),
            (Member.last_birthday_year.is_(None)) | (Member.last_birthday_year < year),
        )
    )
    return list(rows)


async def program_accounts(session: AsyncSession, program_id: str) -> list[Account]:
    rows = await session.scalars(
        select(Account).where(Account.program_id == program_id).order_by(Account.member_id)
    )
    return list(rows)


async def is_forgotten(session: AsyncSession, program_id: str, customer_hash: str) -> bool:
    found = await session.get(ForgottenCustomer, (program_id, customer_hash))
    return found is not None


async def mark_forgotten(
    session: AsyncSession, program_id: str, customer_hash: str, now: datetime
) -> None:
    if not await is_forgotten(session, program_id, customer_hash):
        session.add(
            ForgottenCustomer(program_id=program_id, customer_hash=customer_hash, forgotten_at=now)
        )
        await session.flush()


async def unmark_forgotten(session: AsyncSession, program_id: str, customer_hash: str) -> None:
    await session.execute(
        delete(ForgottenCustomer).where(
            ForgottenCustomer.program_id == program_id,
            ForgottenCustomer.customer_hash == customer_hash,
        )
    )


MemberRow = TypeVar("MemberRow", Hold, Redemption, OutboxEvent)


async def _member_rows(
    session: AsyncSession,
    model: type[MemberRow],
    member_id: int,
    *where: ColumnElement[bool],
    lock: bool,
) -> list[MemberRow]:
    """A member's rows of `model` that match `where`, in id order, read afresh; with
    `lock`, locked for this transaction."""
    query = select(model).where(model.member_id == member_id, *where).order_by(model.id)
    if lock:
        query = query.with_for_update()
    return list(await session.scalars(query.execution_options(populate_existing=True)))


async def open_holds(session: AsyncSession, member_id: int) -> list[Hold]:
    return await _member_rows(session, Hold, member_id, Hold.status == HoldStatus.HELD, lock=True)


async def issued_redemptions(session: AsyncSession, member_id: int) -> list[Redemption]:
    return await _member_rows(
        session, Redemption, member_id, Redemption.status == RedemptionStatus.ISSUED, lock=True
    )


async def member_events(session: AsyncSession, member_id: int) -> list[OutboxEvent]:
    """The member's outbox rows, read afresh and not locked."""
    return await _member_rows(session, OutboxEvent, member_id, lock=False)


async def erase_adjust_reasons(session: AsyncSession, member_id: int) -> None:
    """Adjustment reasons are free text about the member: erased with the member."""
    await session.execute(
        update(Entry)
        .where(Entry.member_id == member_id, Entry.kind == EntryKind.ADJUST)
        .values(reason=None)
        .execution_options(synchronize_session=False)
    )
