"""The program's figures as pure functions: the program at a glance, and its points over
time in buckets of the program's calendar. No I/O, no clock, no database: the read side
adds up the raw sums (`read_repository.program_totals`, `stats_repository.points_by_bucket`)
and these functions make the figures of them.

Both count points the same way, so the buckets of a series that covers every entry add
up to the program's totals: issued = EARN + BONUS + adjustments up + REFUND (entries no
longer pending), redeemed = −(REDEEM + CANCEL), expired = −EXPIRE.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

from ledger.errors import InvalidInput
from ledger.program import Program
from ledger.rules import hold_discount


def issued(sums: Mapping[str, int], credits: Mapping[str, int]) -> int:
    """Points issued, net of refunds, from Σ points per kind and Σ positive points per kind:
    earned + bonuses + adjustments up + refunds (negative)."""
    return (
        sums.get("EARN", 0)
        + sums.get("BONUS", 0)
        + credits.get("ADJUST", 0)
        + sums.get("REFUND", 0)
    )


def redeemed(sums: Mapping[str, int]) -> int:
    """Points spent on rewards and checkouts, net of cancelled redemptions."""
    return -(sums.get("REDEEM", 0) + sums.get("CANCEL", 0))


def expired(sums: Mapping[str, int]) -> int:
    return -sums.get("EXPIRE", 0)


@dataclass(frozen=True)
class ProgramTotals:
    """The raw sums the program's figures come from, as the read side adds them up.

    `points_by_kind`: Σ points of the entries of each kind (by kind name) that are not
    pending; `credits_by_kind`: the same over positive entries only."""

    members: int
    active_members: int
    points_by_kind: Mapping[str, int]
    credits_by_kind: Mapping[str, int]
    available: int
    held: int
    members_by_tier: Mapping[str, int]


@dataclass(frozen=True)
class ProgramStats:
    members: int
    active_members_30d: int
    points_issued: int
    points_redeemed: int
    points_expired: int
    outstanding_points: int
    liability: Decimal
    redemption_rate: float
    tiers: list[tuple[str, int]]


def program_stats(totals: ProgramTotals, program: Program) -> ProgramStats:
    """The program at a glance. Issued: points credited and available (or since expired),
    net of refunds (earned + bonuses + adjustments up + refunds); redeemed: spent on
    rewards and checkouts, net of cancellations; outstanding: available plus held;
    liability: outstanding at the point value (to the cent); the redemption rate is
    redeemed / issued, 0.0 while nothing was issued."""
    sums, credits = totals.points_by_kind, totals.credits_by_kind
    points_issued = issued(sums, credits)
    points_redeemed = redeemed(sums)
    outstanding = totals.available + totals.held
    return ProgramStats(
        members=totals.members,
        active_members_30d=totals.active_members,
        points_issued=points_issued,
        points_redeemed=points_redeemed,
        points_expired=expired(sums),
        outstanding_points=outstanding,
        liability=hold_discount(outstanding, program.point_value),
        redemption_rate=points_redeemed / points_issued if points_issued > 0 else 0.0,
        tiers=[(tier.name, totals.members_by_tier.get(tier.name, 0)) for tier in program.tiers],
    )


# Points over time.
class Interval(StrEnum):
    """The length of a bucket, in the program's calendar."""

    DAY = "DAY"
    WEEK = "WEEK"  # ISO weeks: Monday to Sunday
    MONTH = "MONTH"


# One year of days, seven of weeks, thirty of months: what one chart can show, and one
# statement's bounded work (each boundary is one comparison of the bucketing expression).
MAX_BUCKETS = 366
# The range a series may ask: far enough for any program's history, and clear of the
# calendar's ends (year 1 and 9999), where the next period would not exist.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def period_start(day: date, interval: Interval) -> date:
    """The first day of the period that holds `day`."""
    if interval is Interval.WEEK:
        return day - timedelta(days=day.weekday())
    if interval is Interval.MONTH:
        return day.replace(day=1)
    return day


def next_period(day: date, interval: Interval) -> date:
    """The first day of the period after the one that starts on `day`."""
    if interval is Interval.DAY:
        return day + timedelta(days=1)
    if interval is Interval.WEEK:
        return day + timedelta(days=7)
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The first instant of `day` in `zone`, in UTC. Where midnight is skipped (a zone
    that springs forward at 00:00), the day starts at the transition; where it repeats,
    at its first occurrence (zoneinfo's fold=0 for both)."""
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


def bucket_bounds(
    start: datetime, end: datetime, interval: Interval, zone: ZoneInfo
) -> list[datetime]:
    """The boundaries of the buckets that cover [start, end), as UTC instants: the first
    instant (in `zone`) of the period that holds `start`, then that of each following
    period, up to the first boundary at or after `end`. Each bucket is a whole period,
    so a day's figures do not depend on the range asked. n buckets: n + 1 boundaries.

    InvalidInput when `end` is not after `start`, when either lies outside
    EARLIEST..LATEST, or when it would take more than MAX_BUCKETS buckets."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    for name, value in (("from", start), ("to", end)):
        if not EARLIEST <= value <= LATEST:
            raise InvalidInput(
                f"{name} must lie between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}", [name]
            )
    if end <= start:
        raise InvalidInput("to must be after from", ["to"])
    day = period_start(start.astimezone(zone).date(), interval)
    bounds = [local_midnight(day, zone)]
    while bounds[-1] < end:
        if len(bounds) > MAX_BUCKETS:
            raise InvalidInput(
                f"at most {MAX_BUCKETS} buckets: ask a shorter range or a longer interval",
                ["to"],
            )
        day = next_period(day, interval)
        bounds.append(local_midnight(day, zone))
    return bounds


# The shortest period of each interval, in days: what bounds the buckets of a range in
# any calendar.
SHORTEST_DAYS = {Interval.DAY: 1, Interval.WEEK: 7, Interval.MONTH: 28}


def most_buckets(start: datetime, end: datetime, interval: Interval) -> int:
    """At most how many buckets `bucket_bounds` gives for [start, end) in any zone: the
    whole periods that overlap the range, with a day to spare on each side for the
    zone's offset. Cheap (no calendar walk), for costing a query before it runs; never
    below 1, never above MAX_BUCKETS (beyond, the series itself is refused)."""
    if end.tzinfo is None or start.tzinfo is None or end <= start:
        return 1
    days = (end - start).total_seconds() / 86400 + 2
    return max(1, min(MAX_BUCKETS, int(days // SHORTEST_DAYS[interval]) + 2))


@dataclass(frozen=True)
class BucketSums:
    """The raw sums of one bucket: Σ points and Σ positive points per entry kind."""

    points_by_kind: Mapping[str, int]
    credits_by_kind: Mapping[str, int]


@dataclass(frozen=True)
class PointsBucket:
    start: datetime  # the first instant of the period, in the program's time zone
    issued: int
    redeemed: int
    expired: int


def points_series(
    bounds: Sequence[datetime], sums: Mapping[int, BucketSums], zone: ZoneInfo
) -> list[PointsBucket]:
    """One bucket per period between `bounds`, in order, with no gaps: a period without
    entries (absent from `sums`, keyed by bucket index) is all zeros."""
    empty = BucketSums({}, {})
    series = []
    for index, at in enumerate(bounds[:-1]):
        bucket = sums.get(index, empty)
        series.append(
            PointsBucket(
                start=at.astimezone(zone),
                issued=issued(bucket.points_by_kind, bucket.credits_by_kind),
                redeemed=redeemed(bucket.points_by_kind),
                expired=expired(bucket.points_by_kind),
            )
        )
    return series
