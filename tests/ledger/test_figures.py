"""The program's figures: the stats at a glance from the raw sums, and the buckets of
the points over time in the program's calendar (days of 23 and 25 hours, months of 28 to
31 days, midnights that do not exist), with boundaries worked out by hand."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import figures, rules
from ledger.errors import InvalidInput
from ledger.figures import BucketSums, Interval, PointsBucket
from tests.support.ledger import make_program

PROGRAM = make_program()
NEW_YORK = ZoneInfo("America/New_York")
SANTIAGO = ZoneInfo("America/Santiago")  # springs forward at midnight
DAY, WEEK, MONTH = Interval.DAY, Interval.WEEK, Interval.MONTH


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# The program's figures from the raw sums.
def totals(
    points: dict[str, int] | None = None,
    credits: dict[str, int] | None = None,
    available: int = 0,
    held: int = 0,
    tiers: dict[str, int] | None = None,
) -> figures.ProgramTotals:
    return figures.ProgramTotals(
        members=sum((tiers or {}).values()),
        active_members=1,
        points_by_kind=points or {},
        credits_by_kind=credits or {},
        available=available,
        held=held,
        members_by_tier=tiers or {},
    )


EVERY_KIND = totals(
    points={
        "EARN": 500,
        "BONUS": 100,
        "ADJUST": -10,  # +40 and -50
        "REFUND": -50,
        "REDEEM": -300,
        "CANCEL": 100,
        "EXPIRE": -20,
    },
    credits={"EARN": 500, "BONUS": 100, "ADJUST": 40, "CANCEL": 100},
    available=200,
    held=30,
    tiers={"Bronze": 2, "Gold": 1},
)


@pytest.mark.parametrize(
    ("sums", "point_value", "issued", "redeemed", "expired", "outstanding", "liability", "rate"),
    [
        pytest.param(totals(), "0.01", 0, 0, 0, 0, "0.00", 0.0, id="empty-program"),
        # issued 500 + 100 + 40 (adjustments up only) − 50 refunded; redeemed 300 − 100
        pytest.param(EVERY_KIND, "0.01", 590, 200, 20, 230, "2.30", 200 / 590, id="every-kind"),
        pytest.param(
            totals({"REDEEM": -30}, available=-30), "0.01", 0, 30, 0, -30, "-0.30", 0.0,
            id="nothing-issued-rate-zero",
        ),
        pytest.param(
            totals({"EARN": 50, "REFUND": -80}), "0.01", -30, 0, 0, 0, "0.00", 0.0,
            id="negative-issued-rate-zero",
        ),
        pytest.param(
            totals({"EARN": 40, "REDEEM": -40}), "0.01", 40, 40, 0, 0, "0.00", 1.0, id="all-spent"
        ),
        # liability to the cent, half to even: 0.005 → 0.00, 0.015 → 0.02, 0.025 → 0.02
        pytest.param(totals(available=1), "0.005", 0, 0, 0, 1, "0.00", 0.0, id="half-cent-down"),
        pytest.param(totals(available=3), "0.005", 0, 0, 0, 3, "0.02", 0.0, id="half-cent-up"),
        pytest.param(totals(available=5), "0.005", 0, 0, 0, 5, "0.02", 0.0, id="half-to-even"),
        pytest.param(
            totals(available=rules.MAX_BALANCE, held=rules.MAX_BALANCE), "0.01",
            0, 0, 0, 2 * rules.MAX_BALANCE, "20000000.00", 0.0, id="large-balances-exact",
        ),
    ],
)  # fmt: skip
def test_program_stats(
    sums: figures.ProgramTotals,
    point_value: str,
    issued: int,
    redeemed: int,
    expired: int,
    outstanding: int,
    liability: str,
    rate: float,
) -> None:
    stats = figures.program_stats(sums, make_program(point_value=point_value))
    assert (stats.points_issued, stats.points_redeemed, stats.points_expired) == (
        issued,
        redeemed,
        expired,
    )
    assert stats.outstanding_points == outstanding
    assert stats.liability == Decimal(liability) and str(stats.liability) == liability
    assert stats.redemption_rate == rate and isinstance(stats.redemption_rate, float)


def test_program_stats_list_every_tier_of_the_program_in_order() -> None:
    stats = figures.program_stats(totals(tiers={"Gold": 1, "Bronze": 2, "Retired": 4}), PROGRAM)
    assert (stats.members, stats.active_members_30d) == (7, 1)
    assert stats.tiers == [("Bronze", 2), ("Silver", 0), ("Gold", 1)]


# Buckets in the program's calendar.
@pytest.mark.parametrize(
    ("start", "end", "interval", "zone", "bounds"),
    [
        # New York springs forward on 8 March 2026: that day is 23 hours long.
        pytest.param(
            utc(2026, 3, 7, 12), utc(2026, 3, 10), DAY, NEW_YORK,
            [utc(2026, 3, 7, 5), utc(2026, 3, 8, 5), utc(2026, 3, 9, 4), utc(2026, 3, 10, 4)],
            id="day-of-23-hours",
        ),
        # ... and falls back on 1 November 2026: 25 hours.
        pytest.param(
            utc(2026, 11, 1, 4), utc(2026, 11, 2, 5), DAY, NEW_YORK,
            [utc(2026, 11, 1, 4), utc(2026, 11, 2, 5)],
            id="day-of-25-hours",
        ),
        # 09:00 UTC on the 2nd is still the 1st in Honolulu; a range within one day.
        pytest.param(
            utc(2026, 3, 2, 9), utc(2026, 3, 2, 9, 1), DAY, ZoneInfo("Pacific/Honolulu"),
            [utc(2026, 3, 1, 10), utc(2026, 3, 2, 10)],
            id="local-date-not-utc-date",
        ),
        # Half-hour offsets: India is UTC+05:30.
        pytest.param(
            utc(2026, 3, 2), utc(2026, 3, 3), DAY, ZoneInfo("Asia/Kolkata"),
            [utc(2026, 3, 1, 18, 30), utc(2026, 3, 2, 18, 30), utc(2026, 3, 3, 18, 30)],
            id="half-hour-offset",
        ),
        # Wednesday 4 March: its ISO week starts on Monday the 2nd.
        pytest.param(
            utc(2026, 3, 4, 12), utc(2026, 3, 16, 4), WEEK, NEW_YORK,
            [utc(2026, 3, 2, 5), utc(2026, 3, 9, 4), utc(2026, 3, 16, 4)],
            id="weeks-from-monday",
        ),
        # `to` on a boundary: that period is not asked for.
        pytest.param(
            utc(2026, 1, 15), utc(2026, 3, 1, 5), MONTH, NEW_YORK,
            [utc(2026, 1, 1, 5), utc(2026, 2, 1, 5), utc(2026, 3, 1, 5)],
            id="months-to-on-a-boundary",
        ),
        pytest.param(
            utc(2025, 12, 10), utc(2026, 1, 2), MONTH, ZoneInfo("UTC"),
            [utc(2025, 12, 1), utc(2026, 1, 1), utc(2026, 2, 1)],
            id="december-to-january",
        ),
        # Chile springs forward at midnight on 6 September 2026: that day starts at 01:00
        # local time, the instant of the change (04:00 UTC), 23 hours after the 5th began.
        pytest.param(
            utc(2026, 9, 5, 12), utc(2026, 9, 6, 12), DAY, SANTIAGO,
            [utc(2026, 9, 5, 4), utc(2026, 9, 6, 4), utc(2026, 9, 7, 3)],
            id="midnight-skipped",
        ),
    ],
)  # fmt: skip
def test_bucket_bounds(
    start: datetime, end: datetime, interval: Interval, zone: ZoneInfo, bounds: list[datetime]
) -> None:
    assert figures.bucket_bounds(start, end, interval, zone) == bounds


def test_the_skipped_midnight_is_where_the_day_begins() -> None:
    begins = figures.local_midnight(date(2026, 9, 6), SANTIAGO)
    assert (begins - timedelta(microseconds=1)).astimezone(SANTIAGO).date() == date(2026, 9, 5)
    assert begins.astimezone(SANTIAGO).replace(tzinfo=None) == datetime(2026, 9, 6, 1)


def test_bucket_bounds_take_the_offset_of_the_input_into_account() -> None:
    # 23:30 on 1 March in New York is 04:30 UTC on the 2nd: the bucket of 1 March.
    late = datetime(2026, 3, 1, 23, 30, tzinfo=NEW_YORK)
    assert figures.bucket_bounds(late, late + timedelta(minutes=1), DAY, NEW_YORK) == [
        utc(2026, 3, 1, 5),
        utc(2026, 3, 2, 5),
    ]


@pytest.mark.parametrize(
    ("start", "end", "interval", "message"),
    [
        pytest.param(utc(2026, 3, 2), utc(2026, 3, 2), DAY, "to must be after from", id="empty"),
        pytest.param(utc(2026, 3, 3), utc(2026, 3, 2), DAY, "to must be after from", id="reversed"),
        # 367 days of New York: one more than a series may hold.
        pytest.param(
            utc(2026, 1, 1, 5), utc(2027, 1, 3, 5), DAY, "at most 366 buckets", id="days-over"
        ),
        pytest.param(
            utc(1990, 1, 1, 5), utc(2020, 7, 1, 5), MONTH, "at most 366 buckets", id="months-over"
        ),
        pytest.param(
            utc(1899, 12, 31), utc(2026, 1, 1), MONTH, "from must lie between", id="too-early"
        ),
        pytest.param(
            utc(2026, 1, 1), datetime(9999, 12, 31, 23, tzinfo=UTC), MONTH,
            "to must lie between", id="too-late",
        ),
    ],
)  # fmt: skip
def test_bucket_bounds_refuse(
    start: datetime, end: datetime, interval: Interval, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        figures.bucket_bounds(start, end, interval, NEW_YORK)


def test_bucket_bounds_hold_up_to_the_limit() -> None:
    days = figures.bucket_bounds(utc(2026, 1, 1, 5), utc(2027, 1, 2, 5), DAY, NEW_YORK)
    assert len(days) == figures.MAX_BUCKETS + 1 == 367
    months = figures.bucket_bounds(utc(1990, 1, 1, 5), utc(2020, 7, 1, 4), MONTH, NEW_YORK)
    assert len(months) == 366 + 1 and months[-1] == utc(2020, 7, 1, 4)


ZONES = st.sampled_from(
    ["UTC", "America/New_York", "America/Santiago", "Asia/Kolkata", "Australia/Lord_Howe"]
)


@given(
    start=st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1)),
    length=st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=300)),
    interval=st.sampled_from(list(Interval)),
    zone_name=ZONES,
)
def test_bucket_bounds_are_the_periods_around_the_range(
    start: datetime, length: timedelta, interval: Interval, zone_name: str
) -> None:
    zone = ZoneInfo(zone_name)
    begin = start.replace(tzinfo=UTC)
    bounds = figures.bucket_bounds(begin, begin + length, interval, zone)
    # Increasing, the range inside: `start` in the first bucket, the end in the last.
    assert all(a < b for a, b in itertools.pairwise(bounds))
    assert bounds[0] <= begin < bounds[1] and bounds[-2] < begin + length <= bounds[-1]
    for bound in bounds:
        local = bound.astimezone(zone)
        day = local.date()
        # Each is where its day begins: the instant before belongs to the day before.
        assert (bound - timedelta(microseconds=1)).astimezone(zone).date() == day - timedelta(1)
        assert day == figures.period_start(day, interval)


# The series from the sums per bucket.
def test_points_series_has_every_bucket_and_zeros_where_nothing_happened() -> None:
    bounds = [utc(2026, 3, 7, 5), utc(2026, 3, 8, 5), utc(2026, 3, 9, 4), utc(2026, 3, 10, 4)]
    sums = {
        0: BucketSums(
            {"EARN": 120, "BONUS": 100, "ADJUST": -10, "REDEEM": -500, "CANCEL": 200},
            {"EARN": 120, "BONUS": 100, "ADJUST": 40, "CANCEL": 200},
        ),
        2: BucketSums({"REFUND": -20, "EXPIRE": -35}, {}),
    }
    assert figures.points_series(bounds, sums, NEW_YORK) == [
        PointsBucket(datetime(2026, 3, 7, tzinfo=NEW_YORK), 260, 300, 0),
        PointsBucket(datetime(2026, 3, 8, tzinfo=NEW_YORK), 0, 0, 0),
        PointsBucket(datetime(2026, 3, 9, tzinfo=NEW_YORK), -20, 0, 35),
    ]
    starts = [bucket.start.isoformat() for bucket in figures.points_series(bounds, {}, NEW_YORK)]
    assert starts == [
        "2026-03-07T00:00:00-05:00",
        "2026-03-08T00:00:00-05:00",
        "2026-03-09T00:00:00-04:00",
    ]
