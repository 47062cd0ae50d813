"""Balances, tier standing and the history of a member."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ledger import rules
from ledger.models import Account, Entry, EntryKind, Member
from ledger.program import Program, Tier
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


async def balance(ctx: Context, member: Member) -> Balance:
    return balance_of(member, await ctx.loaders.account_by_member_id.load(member.id))


def balance_of(member: Member, account: Account | None) -> Balance:
    """The balances of a member's account (zero before its first posting)."""
    if account is None:
        return Balance(member.id, 0, 0, 0, 0)
    return Balance(
        member.id, account.available, account.pending, account.held, account.lifetime_earned
    )


async def expiring_soon(ctx: Context, member_id: int) -> list[Expiry]:
    """Unspent points that expire in the next 30 days, soonest first."""
    lots = await ctx.loaders.expiring_points.load(member_id)
    return [Expiry(points, expires_at) for expires_at, points in lots]


async def tier(ctx: Context, member: Member) -> tuple[Tier, Tier | None]:
    """The member's tier and the next one: its account alone, no qualifying value."""
    return tier_of(ctx.program, await ctx.loaders.account_by_member_id.load(member.id))


def tier_of(program: Program, account: Account | None) -> tuple[Tier, Tier | None]:
    """The tier an account is at and the next one (no qualifying value)."""
    current = rules.standing(program.tiers, account.tier if account else None, 0).current
    return current, rules.next_tier(program.tiers, current)


async def standing(ctx: Context, member: Member) -> rules.Standing:
    account = await ctx.loaders.account_by_member_id.load(member.id)
    value = await ctx.loaders.qualifying_value.load(member.id)
    return rules.standing(ctx.program.tiers, account.tier if account else None, value)


async def transactions(
    ctx: Context,
    member: Member,
    first: int | None,
    after: str | None,
    kinds: list[EntryKind] | None,
) -> pagination.Page[Entry]:
    size = pagination.page_size(first)
    before = pagination.decode_int("transaction", after)
    key = PageKey(member.id, before, size + 1, rules.kinds_matching(kinds))
    rows = await ctx.loaders.transactions.load(key)
    return pagination.page("transaction", rows, size)
