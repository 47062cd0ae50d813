"""The catalog, what a member can redeem now, redemptions and checkout holds."""

from __future__ import annotations

from auth.principals import Shopper
from ledger import queries
from ledger.commands import Outcome, Problem, ReleasePoints
from ledger.errors import UnknownHold
from ledger.models import Hold, Member, Redemption, Reward
from ledger.rewards import redeemable_now
from resolvers import pagination, writes
from resolvers.context import Context
from resolvers.loaders import PageKey

MAX_REWARD_ID = 63


async def rewards_page(
    ctx: Context, first: int | None, after: str | None
) -> pagination.Page[Reward]:
    size = pagination.page_size(first)
    after_id = pagination.decode("reward", after)
    rows = await ctx.reader.run(
        lambda session: queries.rewards_page(session, ctx.program_id, after_id, size + 1)
    )
    return pagination.page("reward", rows, size)


async def available_rewards(ctx: Context, member: Member) -> list[Reward]:
    account = await ctx.loaders.account_by_member_id.load(member.id)
    if account is None:
        return []
    catalog = await ctx.loaders.active_rewards.load("catalog")
    redeemed = await ctx.loaders.redemption_counts.load(member.id)
    return redeemable_now(catalog, account, ctx.program.tiers, redeemed)


async def redemptions(
    ctx: Context, member: Member, first: int | None, after: str | None
) -> pagination.Page[Redemption]:
    size = pagination.page_size(first)
    before = pagination.decode_int("redemption", after)
    rows = await ctx.loaders.redemptions.load(PageKey(member.id, before, size + 1))
    return pagination.page("redemption", rows, size)


async def reward(ctx: Context, reward_id: str) -> Reward | None:
    return await ctx.loaders.reward_by_id.load(reward_id)


def numeric_id(text: str) -> int:
    """An id that names nothing (0) when the text is not one of ours."""
    return pagination.ascii_int(text) or 0


async def _owns_hold(ctx: Context, hold_id: int) -> bool:
    """A member token reaches only its own holds; partners reach the program's."""
    principal = ctx.principal
    if not isinstance(principal, Shopper):
        return True
    held: Hold | None = await ctx.loaders.hold_by_id.load(hold_id)
    if held is None:
        return True  # the ledger answers UNKNOWN_HOLD
    member = await ctx.loaders.any_member_by_id.load(held.member_id)
    return member is not None and member.customer_id == principal.customer_id


async def release(ctx: Context, command: ReleasePoints) -> Outcome:
    """Release a hold; another member's hold is not found, and nothing is written."""
    if not await _owns_hold(ctx, command.hold_id):
        return Outcome(problem=Problem.of(UnknownHold("no such hold in this program", ["holdId"])))
    return await writes.execute(ctx, command)
