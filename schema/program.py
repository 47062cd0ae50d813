"""The program: tiers and the numbers of the program."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, NewType

import strawberry

from auth import scopes
from auth.permissions import needs
from ledger.program import Tier as ProgramTier
from resolvers import program as resolve
from resolvers.context import Context

MAX_LONG = 2**63 - 1


def _parse_long(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > MAX_LONG:
        raise ValueError("Long is a whole number of at most 64 bits")
    return value


# Program-wide sums add up every member's points: each balance fits an Int, their sum
# over many members does not. A JSON number, as Int is, so every value an Int could carry
# reads the same; exact in JavaScript up to 2^53.
Long = NewType("Long", int)
LongScalar = strawberry.scalar(
    name="Long",
    description="A whole number of up to 64 bits, as a JSON number",
    serialize=int,
    parse_value=_parse_long,
)


@strawberry.type
class Tier:
    name: str
    threshold: int
    earn_multiplier: Decimal


@strawberry.type
class TierCount:
    tier: str
    members: int


@strawberry.type
class ProgramStats:
    members: int
    active_members30d: int = strawberry.field(name="activeMembers30d")
    points_issued: Long
    points_redeemed: Long
    points_expired: Long
    outstanding_points: Long
    liability: Decimal
    redemption_rate: float
    tiers: list[TierCount]


def tier(model: ProgramTier) -> Tier:
    return Tier(name=model.name, threshold=model.threshold, earn_multiplier=model.earn_multiplier)


@strawberry.type
class ProgramQuery:
    @strawberry.field(extensions=needs(None, member=True))
    def tiers(self, info: strawberry.Info[Context]) -> list[Tier]:
        """The program's tiers, lowest first."""
        return [tier(t) for t in info.context.program.tiers]

    @strawberry.field(extensions=needs(scopes.ANALYTICS_READ))
    async def program_stats(self, info: strawberry.Info[Context]) -> ProgramStats:
        s = await resolve.stats(info.context)
        return ProgramStats(
            members=s.members,
            active_members30d=s.active_members_30d,
            points_issued=Long(s.points_issued),
            points_redeemed=Long(s.points_redeemed),
            points_expired=Long(s.points_expired),
            outstanding_points=Long(s.outstanding_points),
            liability=s.liability,
            redemption_rate=s.redemption_rate,
            tiers=[TierCount(tier=name, members=count) for name, count in s.tiers],
        )
