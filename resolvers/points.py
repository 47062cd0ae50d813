"""Balances, tier standing and the history of a member."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ledger import rules
from ledger.models import Entry, EntryKind, Member
from ledger.program import Tier
from resolvers import pagination
from resolvers.context import Context
from resolvers.loaders import PageKey


@dataclass(frozen=True)
class Balance:
    member_id: int
    available: int
    pending: int
    held: int
    lifetime_earned: int


@dataclass(frozen=True)
class Expiry:
    points: int
    expires_at: datetime


@dataclass(frozen=True)
class Standing:
    current: Tier
    next: Tier | None
    qualifying_value: int
    to_next: int | None


async def balance(ctx: Context, member: Member) -> Balance:
    account = await ctx.loaders.account_by_member_id.load(member.id)
    if account is None:
        return Balance(member.id, 0, 0, 0, 0)
    return Balance(
        member.id, account.available, account.pending, account.held, account.lifetime_earned
    )


async def expiring_soon(ctx: Context, member_id: int) -> list[Expiry]:
    """Unspent points that expire in the next 30 days, soonest first."""
    lots = await ctx.loaders.expiring_points.load(member_id)
    return [Expiry(points, expires_at) for expires_at, points in lots]


async def standing(ctx: Context, member: Member) -> Standing:
    program = ctx.program
    account = await ctx.loaders.account_by_member_id.load(member.id)
    current = program.tier(account.tier) if account else program.tiers[0]
    value = await ctx.loaders.qualifying_value.load(member.id)
    upcoming = rules.next_tier(program.tiers, current)
    to_next = max(0, upcoming.threshold - value) if upcoming else None
    return Standing(current, upcoming, value, to_next)


async def transactions(
    ctx: Context,
    member: Member,
    first: int | None,
    after: str | None,
    kinds: list[EntryKind] | None,
) -> pagination.Page[Entry]:
    size = pagination.page_size(first)
    before = pagination.decode_int("transaction", after)
    if kinds is not None and not kinds:
        return pagination.Page([], False, [])  # no kind asked for: nothing matches
    key = PageKey(member.id, before, size + 1, tuple(sorted(set(kinds or ()))))
    rows = await ctx.loaders.transactions.load(key)
    return pagination.page("transaction", rows, size)
