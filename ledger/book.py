"""The account book: how entries move balances and lots, shared by every command.

Invariants kept here: `available + pending + held` equals the sum of the member's entries
plus what is held; the unspent points of available lots add up to `max(available, 0)`;
a credit while the balance is negative first pays that debt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ledger import outbox, repository, rules
from ledger.errors import InvalidAmount, InvalidInput, UnknownMember
from ledger.models import (
    Account,
    Entry,
    EntryKind,
    EntryStatus,
    Lot,
    LotStatus,
    Member,
)
from ledger.program import Program

Allocations = list[list[int]]
LOT_BATCH = 50


@dataclass
class Context:
    """What every command handler works with: one session, one program, one instant."""

    session: AsyncSession
    program: Program
    now: datetime

    @property
    def program_id(self) -> str:
        return self.program.id


async def find_member(ctx: Context, member_id: int | None, customer_id: str | None) -> Member:
    """The member a reference names, or UNKNOWN_MEMBER (another program's ids too)."""
    if (member_id is None) == (customer_id is None):
        raise InvalidInput("give exactly one of id and customerId", ["member"])
    if member_id is not None:
        member = await repository.member_by_id(ctx.session, ctx.program_id, member_id)
    else:
        assert customer_id is not None
        member = await repository.member_by_customer_id(ctx.session, ctx.program_id, customer_id)
    if member is None:
        raise UnknownMember("no such member in this program", ["member"])
    return member


async def ensure_not_forgotten(
    ctx: Context, member_id: int, field: Sequence[str] | None = None
) -> None:
    """Refuse (UNKNOWN_MEMBER) a write on what a forgotten member left behind."""
    member = await repository.any_member(ctx.session, ctx.program_id, member_id)
    if member is None or member.forgotten_at is not None:
        raise UnknownMember("this belongs to a forgotten member", field)


def balances(account: Account) -> rules.Balances:
    return rules.Balances(account.available, account.pending, account.held, account.lifetime_earned)


def check_balances(after: rules.Balances, field: Sequence[str] | None = None) -> None:
    """Refuse (INVALID_AMOUNT) a change that would leave balances beyond their bounds."""
    problem = rules.balance_problem(after)
    if problem:
        raise InvalidAmount(problem, field)


def credit_fits(
    ctx: Context, account: Account, points: int, *, pending_until: datetime | None = None
) -> bool:
    """Whether a credit of `points` keeps the account within its bounds."""
    is_pending = pending_until is not None and pending_until > ctx.now
    after = rules.credited(balances(account), points, pending=is_pending, earned=True)
    return points <= rules.MAX_POINTS and rules.balance_problem(after) is None


async def lock(ctx: Context, *member_ids: int) -> dict[int, Account]:
    """Lock the accounts (in id order) before any balance changes."""
    accounts = await repository.lock_accounts(ctx.session, member_ids)
    return {account.member_id: account for account in accounts}


async def add_entry(
    ctx: Context,
    account: Account,
    kind: EntryKind,
    points: int,
    source: str,
    *,
    status: EntryStatus = EntryStatus.AVAILABLE,
    occurred_at: datetime | None = None,
    order_id: str | None = None,
    reason: str | None = None,
    available_at: datetime | None = None,
    expires_at: datetime | None = None,
    lot_id: int | None = None,
    dedupe_key: str | None = None,
    details: dict[str, Any] | None = None,
) -> Entry:
    entry = Entry(
        program_id=ctx.program_id,
        member_id=account.member_id,
        kind=kind,
        points=points,
        status=status,
        source=source,
        order_id=order_id,
        reason=reason,
        occurred_at=occurred_at or ctx.now,
        available_at=available_at,
        expires_at=expires_at,
        created_at=ctx.now,
        lot_id=lot_id,
        dedupe_key=dedupe_key,
        details=details,
    )
    ctx.session.add(entry)
    await ctx.session.flush()
    return entry


async def credit(
    ctx: Context,
    account: Account,
    kind: EntryKind,
    points: int,
    source: str,
    *,
    occurred_at: datetime | None = None,
    pending_until: datetime | None = None,
    order_id: str | None = None,
    reason: str | None = None,
    dedupe_key: str | None = None,
    counts_as_earned: bool = True,
    field: Sequence[str] | None = None,
) -> tuple[Entry, Lot]:
    """Credit `points` as a new lot: pending until `pending_until`, else available now.

    The lot expires `expiry_days` after it becomes available, reckoned from `occurred_at`.
    A credit that would take the balances beyond their bounds is INVALID_AMOUNT (`field`),
    refused before anything is written.
    """
    occurred = occurred_at or ctx.now
    available = pending_until if pending_until is not None else occurred
    is_pending = available > ctx.now
    if points > rules.MAX_POINTS:
        raise InvalidAmount(f"one entry may credit at most {rules.MAX_POINTS} points", field)
    check_balances(
        rules.credited(balances(account), points, pending=is_pending, earned=counts_as_earned),
        field,
    )
    expires = rules.expires_at(available, ctx.program.expiry_days)
    lot = Lot(
        program_id=ctx.program_id,
        member_id=account.member_id,
        points=points,
        remaining=points,
        status=LotStatus.PENDING if is_pending else LotStatus.AVAILABLE,
        available_at=available,
        expires_at=expires,
    )
    ctx.session.add(lot)
    await ctx.session.flush()
    entry = await add_entry(
        ctx,
        account,
        kind,
        points,
        source,
        status=EntryStatus.PENDING if is_pending else EntryStatus.AVAILABLE,
        occurred_at=occurred,
        order_id=order_id,
        reason=reason,
        available_at=available,
        expires_at=expires,
        lot_id=lot.id,
        dedupe_key=dedupe_key,
    )
    lot.entry_id = entry.id
    if is_pending:
        account.pending += points
    else:
        lot.remaining = _receive(account, points)
        if counts_as_earned:
            account.lifetime_earned += points
    account.updated_at = ctx.now
    return entry, lot


def _receive(account: Account, points: int) -> int:
    """Add `points` to `available`; returns what is left for lots once any debt is paid."""
    debt = max(0, -account.available)
    account.available += points
    return points - min(debt, points)


async def debit(
    ctx: Context,
    account: Account,
    points: int,
    *,
    allow_negative: bool = False,
    first: Lot | None = None,
) -> Allocations:
    """Take `points` from available lots, the first to expire first (`first` before all).

    The caller has checked the balance unless `allow_negative`; the lots then give what
    they have and `available` goes below zero.
    """
    allocations: Allocations = []
    left = points
    if first is not None and first.status == LotStatus.AVAILABLE and first.remaining:
        take = min(first.remaining, left)
        first.remaining -= take
        left -= take
        allocations.append([first.id, take])
    while left:
        # Autoflush writes the lots emptied so far, so each batch starts after them.
        lots = await repository.spendable_lots(ctx.session, account.member_id, LOT_BATCH)
        for lot in lots:
            take = min(lot.remaining, left)
            lot.remaining -= take
            left -= take
            allocations.append([lot.id, take])
            if not left:
                break
        if len(lots) < LOT_BATCH:
            break
    if left and not allow_negative:
        raise AssertionError("debit beyond the lots of a checked balance")
    account.available -= points
    account.updated_at = ctx.now
    return allocations


async def restore(ctx: Context, account: Account, allocations: Allocations) -> None:
    """Give points back to the lots they were taken from (a cancel or a release).

    A lot that expired meanwhile becomes available again so the next job expires it
    with its own entry; points never outlive their lot.
    """
    total = sum(points for _, points in allocations)
    to_lots = _receive(account, total)
    lots = await repository.lots_by_ids(ctx.session, [lot_id for lot_id, _ in allocations])
    skip = total - to_lots
    for lot_id, points in allocations:
        give = max(0, points - skip)
        skip = max(0, skip - points)
        lot = lots[lot_id]
        lot.remaining += give
        if give and lot.status == LotStatus.EXPIRED:
            lot.status = LotStatus.AVAILABLE
    account.updated_at = ctx.now


async def activate(ctx: Context, account: Account, lot: Lot) -> None:
    """A pending lot becomes available: its points move from pending to available."""
    lot.status = LotStatus.AVAILABLE
    account.pending -= lot.remaining
    account.lifetime_earned += lot.remaining
    lot.remaining = _receive(account, lot.remaining)
    account.updated_at = ctx.now
    await repository.mark_lot_entries(ctx.session, lot.id, EntryStatus.AVAILABLE)


async def qualifying_value(ctx: Context, member_ids: list[int] | None) -> dict[int, int]:
    """The tier-qualifying value per member as of now (basis and window of the program)."""
    since = rules.qualifying_since(ctx.now, ctx.program.tiering.window_days)
    if ctx.program.tiering.basis == "points":
        return await repository.qualifying_points(ctx.session, ctx.program_id, since, member_ids)
    cents = await repository.qualifying_spend_cents(ctx.session, ctx.program_id, since, member_ids)
    return {member_id: value // 100 for member_id, value in cents.items()}


async def evaluate_tier(ctx: Context, account: Account, *, allow_downgrade: bool = False) -> None:
    """Move the member to the tier its qualifying value reaches; upgrades on any write,
    downgrades only when the scheduled jobs re-evaluate."""
    values = await qualifying_value(ctx, [account.member_id])
    set_tier(ctx, account, values.get(account.member_id, 0), allow_downgrade=allow_downgrade)


def set_tier(ctx: Context, account: Account, value: int, *, allow_downgrade: bool) -> None:
    tiers = ctx.program.tiers
    reached = rules.tier_for(tiers, value)
    current = rules.tier_rank(tiers, account.tier)
    target = rules.tier_rank(tiers, reached.name)
    if target == current or (target < current and not allow_downgrade):
        return
    previous = account.tier
    account.tier = reached.name
    account.updated_at = ctx.now
    outbox.record(
        ctx.session,
        ctx.program_id,
        "tier.changed",
        account,
        ctx.now,
        {"from": previous, "to": reached.name, "qualifyingValue": value},
    )
