"""The program: tiers and the numbers of the program."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, NewType

import strawberry

from auth import scopes
from auth.permissions import needs
from ledger.figures import MAX_BUCKETS
from ledger.figures import Interval as FiguresInterval
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


Interval = strawberry.enum(
    FiguresInterval,
    name="Interval",
    description="A bucket of the program's calendar: a day, an ISO week (from Monday), a month",
)


@strawberry.type(description="The points of one day, week or month of the program.")
class PointsBucket:
    start: datetime = strawberry.field(
        description="The first instant of the period, in the program's time zone"
    )
    issued: Long = strawberry.field(
        description="Points that became available in the period, net of refunds"
    )
    redeemed: Long = strawberry.field(
        description="Points spent on rewards and checkouts, net of cancellations"
    )
    expired: Long


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

    @strawberry.field(
        extensions=needs(scopes.ANALYTICS_READ),
        description=(
            "Points issued, redeemed and expired per period of the program's calendar, over"
            " the whole periods that overlap [from, to): every period, zeros where nothing"
            f" happened; the figures of programStats over time. At most {MAX_BUCKETS} buckets."
        ),
    )
    async def points_series(
        self,
        info: strawberry.Info[Context],
        from_: Annotated[datetime, strawberry.argument(name="from")],
        to: datetime,
        interval: Interval = FiguresInterval.DAY,  # type: ignore[valid-type]
    ) -> list[PointsBucket]:
        series = await resolve.points_series(info.context, from_, to, FiguresInterval(interval))
        return [
            PointsBucket(
                start=bucket.start,
                issued=Long(bucket.issued),
                redeemed=Long(bucket.redeemed),
                expired=Long(bucket.expired),
            )
            for bucket in series
        ]
