"""Subscriptions: which member a subscription watches, then that member's events.

The context lives as long as the WebSocket connection: the member is looked up in a
context of its own (its own loaders and read transaction, closed at once), so nothing
cached or held open at subscription time lives on into the events.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Collection, Hashable

from auth import scopes
from auth.permissions import Needs
from auth.principals import Partner, Shopper
from events.bus import Event, Hub, SlowConsumer
from ledger.models import Member
from resolvers import members
from resolvers.context import Context
from resolvers.errors import UNKNOWN_MEMBER, ApiError

POINTS_EVENTS = frozenset(
    {
        "points.earned",
        "points.redeemed",
        "points.returned",
        "points.refunded",
        "points.adjusted",
        "points.expired",
        "points.activated",
        "points.held",  # a checkout hold, and its release or expiry (no entry)
        "points.released",
        "reward.redeemed",
    }
)
TIER_EVENTS = frozenset({"tier.changed"})
CLOSE_SLOW_CONSUMER = 4413  # the WebSocket close code of a subscriber that fell behind

_WATCH = Needs(scopes.MEMBERS_READ, member=True)


async def watched(ctx: Context, ref: members.Reference | None) -> Member:
    """The member a subscription may watch: a member token itself, `members:read` any
    member of its program; another program's member is not found."""
    _WATCH.has_permission(None, _Info(ctx))
    lookup = dataclasses.replace(ctx, _loaders=None, _reader=None)
    try:
        member = await members.find(lookup, ref)
    finally:
        await lookup.close()
    if member is None:
        raise ApiError("no such member", UNKNOWN_MEMBER)
    return member


async def events(
    ctx: Context, ref: members.Reference | None, types: Collection[str]
) -> AsyncIterator[Event]:
    """The member's events of `types`, as they are published, until the client stops."""
    member = await watched(ctx, ref)
    return _follow(ctx, _hub(ctx), member, types)


async def _follow(
    ctx: Context, hub: Hub, member: Member, types: Collection[str]
) -> AsyncIterator[Event]:
    with hub.subscribe(member.program_id, member.id, types) as subscription:
        try:
            async for event in subscription:
                yield event
        except SlowConsumer as exc:
            if ctx.hang_up is not None:
                await ctx.hang_up(CLOSE_SLOW_CONSUMER, f"subscriber too slow: {exc}")


def viewer(ctx: Context) -> Hashable | None:
    """Whom a subscription's events are rendered for: subscriptions of one member's events
    with the same document and variables and the same viewer see each event alike, so it
    is rendered once for all of them. A member token is its own viewer; a partner token
    sees what its scopes let it see. None: render for this subscription alone."""
    principal = ctx.principal
    if isinstance(principal, Shopper):
        return ("member", principal.program_id, principal.customer_id)
    if isinstance(principal, Partner):
        return ("partner", principal.program_id, principal.scopes)
    return None


def _hub(ctx: Context) -> Hub:
    if ctx.hub is None:
        raise ApiError("subscriptions are served over the WebSocket only", "BAD_REQUEST")
    return ctx.hub


@dataclasses.dataclass(frozen=True)
class _Info:
    """What a permission class reads of `info`."""

    context: Context
