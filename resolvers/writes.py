"""Every mutation runs one ledger command in one transaction, committed before it answers."""

from __future__ import annotations

from collections.abc import Sequence

from ledger.commands import Command, Outcome, RecordPurchase, UpsertReward
from ledger.errors import InvalidInput
from ledger.models import Reward
from resolvers.context import Context
from resolvers.errors import BAD_USER_INPUT, ApiError


async def execute(ctx: Context, command: Command) -> Outcome:
    await ctx.forget_loaded()  # give back the read connection before taking a write one
    async with ctx.database.transaction() as session:
        outcome = await ctx.service.execute(session, ctx.program_id, ctx.client_key, command)
    await ctx.forget_loaded()
    return outcome


async def execute_batch(ctx: Context, commands: Sequence[RecordPurchase]) -> list[Outcome]:
    await ctx.forget_loaded()
    try:
        async with ctx.database.transaction() as session:
            outcomes = await ctx.service.execute_batch(
                session, ctx.program_id, ctx.client_key, commands
            )
    except InvalidInput as error:
        raise ApiError(error.message, BAD_USER_INPUT) from None
    await ctx.forget_loaded()
    return outcomes


async def upsert_reward(ctx: Context, command: UpsertReward) -> Reward:
    """Create or replace a catalog entry (the ledger settles two first puts at once)."""
    await ctx.forget_loaded()
    async with ctx.database.transaction() as session:
        reward = await ctx.service.upsert_reward(session, ctx.program_id, command)
    await ctx.forget_loaded()
    return reward
