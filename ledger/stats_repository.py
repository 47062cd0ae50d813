"""The SQL of the program's figures over time: entry sums per bucket of the calendar.

The buckets are the program's days, weeks or months, whose boundaries `figures` works
out in its time zone (daylight saving time makes a day 23 or 25 hours long, a month has
28 to 31 days): the same statement on SQLite, which knows no time zones, and PostgreSQL.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.figures import BucketSums
from ledger.models import Entry, EntryKind, EntryStatus, Lot


def bucket_of(at: ColumnElement[Any], bounds: Sequence[datetime]) -> ColumnElement[int]:
    """The index i of the bucket with bounds[i] <= at < bounds[i + 1], for `at` within
    [bounds[0], bounds[-1]): a binary search written as nested CASEs, so each row costs
    log2(buckets) comparisons and no join. (A portable SQL bucketing by time zone: SQLite
    has no time zones, and a join on a table of ranges compares each row with every
    bucket.)"""

    def search(low: int, high: int) -> ColumnElement[int]:  # the answer lies in [low, high)
        if high - low == 1:
            return literal_column(str(low))  # our own integer, not input
        middle = (low + high) // 2
        return case((at < bounds[middle], search(low, middle)), else_=search(middle, high))

    return search(0, len(bounds) - 1)


async def points_by_bucket(
    session: AsyncSession, program_id: str, bounds: Sequence[datetime]
) -> dict[int, BucketSums]:
    """Σ points and Σ positive points per entry kind, per bucket between `bounds` (UTC
    instants), of the program's entries that are no longer pending; buckets without any
    are absent.

    An entry counts when its points took effect: a credit when it became available
    (`available_at`; earned points turn available after the pending days), a refund of
    points still pending when their lot became available (before, it only lowered what
    was pending), anything else when it occurred (an expiry at the lot's expiry).
    Every instant is at or after the entry's `occurred_at`, which bounds the scan."""
    refunded_pending = and_(Entry.kind == EntryKind.REFUND, Lot.available_at > Entry.occurred_at)
    took_effect = case(
        (refunded_pending, Lot.available_at),
        else_=func.coalesce(Entry.available_at, Entry.occurred_at),
    )
    effective = (
        select(Entry.kind.label("kind"), Entry.points.label("points"), took_effect.label("at"))
        .outerjoin(Lot, and_(Lot.id == Entry.lot_id, Entry.kind == EntryKind.REFUND))
        .where(
            Entry.program_id == program_id,
            Entry.status != EntryStatus.PENDING,
            Entry.occurred_at < bounds[-1],
        )
        .subquery()
    )
    bucketed = (
        select(
            effective.c.kind,
            effective.c.points,
            bucket_of(effective.c.at, bounds).label("bucket"),
        )
        .where(effective.c.at >= bounds[0], effective.c.at < bounds[-1])
        .subquery()
    )
    rows = await session.execute(
        select(
            bucketed.c.bucket,
            bucketed.c.kind,
            func.sum(bucketed.c.points),
            func.sum(case((bucketed.c.points > 0, bucketed.c.points), else_=0)),
        ).group_by(bucketed.c.bucket, bucketed.c.kind)
    )
    points: dict[int, dict[str, int]] = defaultdict(dict)
    credits: dict[int, dict[str, int]] = defaultdict(dict)
    for bucket, kind, total, positive in rows:
        points[int(bucket)][EntryKind(kind)] = int(total or 0)
        credits[int(bucket)][EntryKind(kind)] = int(positive or 0)
    return {bucket: BucketSums(points[bucket], credits[bucket]) for bucket in points}
