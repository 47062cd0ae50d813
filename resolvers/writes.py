"""Every mutation runs one ledger command in one transaction, committed before it answers."""

from __future__ import annotations

from collections.abc import Sequence

from ledger.commands import (
    AnyCommand,
    Outcome,
    RecordPurchase,
    RetryWebhookDelivery,
    UpsertReward,
)
from ledger.errors import InvalidInput
from ledger.models import Reward, WebhookDelivery
from resolvers.context import Context
from resolvers.errors import BAD_USER_INPUT, ApiError


async def execute(ctx: Context, command: AnyCommand) -> Outcome:
    await ctx.forget_loaded()  # give back the read connection before taking a write one
    outcome = await ctx.service.execute_alone(
        ctx.database.transaction, ctx.program_id, ctx.client_key, command
    )
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


async def retry_delivery(
    ctx: Context, command: RetryWebhookDelivery
) -> tuple[Outcome, WebhookDelivery | None]:
    """The retry, and the delivery as it stands when the retry commits: read in the same
    transaction, since the dispatcher may claim it the moment it is due."""
    await ctx.forget_loaded()
    async with ctx.database.transaction() as session:
        outcome = await ctx.service.execute(session, ctx.program_id, ctx.client_key, command)
        found = None
        if outcome.ok and outcome.delivery_id is not None:
            found = await ctx.service.delivery(session, ctx.program_id, outcome.delivery_id)
    await ctx.forget_loaded()
    return outcome, found
