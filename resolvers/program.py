"""The program: its tiers, its numbers (at a glance and over time), and a member's data
export."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ledger.errors import InvalidInput, UnknownMember
from ledger.figures import Interval, PointsBucket, ProgramStats
from resolvers.context import Context
from resolvers.errors import BAD_USER_INPUT, UNKNOWN_MEMBER, ApiError
from resolvers.members import Reference, target

ACTIVE_WITHIN = timedelta(days=30)


async def stats(ctx: Context) -> ProgramStats:
    since = ctx.clock() - ACTIVE_WITHIN
    return await ctx.reader.run(
        lambda session: ctx.service.program_stats(session, ctx.program_id, since)
    )


async def points_series(
    ctx: Context, start: datetime, end: datetime, interval: Interval
) -> list[PointsBucket]:
    try:
        return await ctx.reader.run(
            lambda session: ctx.service.points_series(session, ctx.program_id, start, end, interval)
        )
    except InvalidInput as error:
        raise ApiError(error.message, BAD_USER_INPUT) from None


async def export_member(ctx: Context, ref: Reference) -> dict[str, Any]:
    named = await target(ctx, ref)
    try:
        return await ctx.reader.run(
            lambda session: ctx.service.export_member(
                session, ctx.program_id, named.id, named.customer_id
            )
        )
    except UnknownMember:
        raise ApiError("no such member in this program", UNKNOWN_MEMBER) from None
