"""The catalog, what a member can redeem now, redemptions and checkout holds."""

from __future__ import annotations

from auth.principals import Shopper
from ledger import read_repository
from ledger.models import Member, Redemption, Reward
from ledger.rewards import redeemable_now
from resolvers import pagination
from resolvers.context import Context
from resolvers.loaders import PageKey

MAX_REWARD_ID = 63


async def rewards_page(
    ctx: Context, first: int | None, after: str | None
) -> pagination.Page[Reward]:
    size = pagination.page_size(first)
    after_id = pagination.decode("reward", after)
    rows = await ctx.reader.run(
        lambda session: read_repository.rewards_page(session, ctx.program_id, after_id, size + 1)
    )
    return pagination.page("reward", rows, size)


async def available_rewards(ctx: Context, member: Member) -> list[Reward]:
    account = await ctx.loaders.account_by_member_id.load(member.id)
    catalog = await ctx.loaders.active_rewards.load("catalog")
    redeemed = await ctx.loaders.redemption_counts.load(member.id)
    return redeemable_now(ctx.program, catalog, account, redeemed)


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


def owner(ctx: Context) -> str | None:
    """Whose holds a request may resolve: a member token its own (the ledger decides, and
    answers another member's hold exactly as one that does not exist); a partner any."""
    principal = ctx.principal
    return principal.customer_id if isinstance(principal, Shopper) else None
