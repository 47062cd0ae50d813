"""The program: its tiers, its numbers, and a member's data export."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ledger.errors import UnknownMember
from ledger.rules import ProgramStats
from resolvers.context import Context
from resolvers.errors import UNKNOWN_MEMBER, ApiError
from resolvers.members import Reference, target

ACTIVE_WITHIN = timedelta(days=30)


async def stats(ctx: Context) -> ProgramStats:
    since = ctx.clock() - ACTIVE_WITHIN
    return await ctx.reader.run(
        lambda session: ctx.service.program_stats(session, ctx.program_id, since)
    )


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
