"""The program: tiers and the numbers of the program."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from auth import scopes
from auth.permissions import needs
from ledger.program import Tier as ProgramTier
from resolvers import program as resolve
from resolvers.context import Context


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
    points_issued: int
    points_redeemed: int
    points_expired: int
    outstanding_points: int
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
            points_issued=s.points_issued,
            points_redeemed=s.points_redeemed,
            points_expired=s.points_expired,
            outstanding_points=s.outstanding_points,
            liability=s.liability,
            redemption_rate=s.redemption_rate,
            tiers=[TierCount(tier=name, members=count) for name, count in s.tiers],
        )
