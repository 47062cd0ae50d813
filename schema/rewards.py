"""Rewards: the catalog, redemptions, checkout holds, and the writes on them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, TypeVar

import strawberry

from auth import scopes
from auth.permissions import needs
from ledger.commands import (
    CancelRedemption,
    CapturePoints,
    HoldPoints,
    Outcome,
    RedeemReward,
    ReleasePoints,
    UpsertReward,
    UseRedemption,
)
from ledger.errors import LedgerError
from ledger.models import Hold
from ledger.models import HoldStatus as LedgerHoldStatus
from ledger.models import Redemption as RedemptionModel
from ledger.models import RedemptionStatus as LedgerRedemptionStatus
from ledger.models import Reward as RewardModel
from resolvers import members as members_resolvers
from resolvers import rewards as resolve
from resolvers import writes
from resolvers.context import Context
from schema.pagination import Connection, connection
from schema.payloads import UserError, changed_member, user_errors

if TYPE_CHECKING:
    from schema.members import Member, MemberRef

LazyMember = Annotated["Member", strawberry.lazy("schema.members")]
LazyMemberRef = Annotated["MemberRef", strawberry.lazy("schema.members")]

RedemptionStatus = strawberry.enum(LedgerRedemptionStatus, name="RedemptionStatus")
HoldStatus = strawberry.enum(LedgerHoldStatus, name="HoldStatus")


@strawberry.type
class Reward:
    id: strawberry.ID
    name: str
    cost: int
    min_tier: str | None
    stock: int | None
    per_member_limit: int | None

    @classmethod
    def of(cls, model: RewardModel) -> Reward:
        return cls(
            id=strawberry.ID(model.id),
            name=model.name,
            cost=model.cost,
            min_tier=model.min_tier,
            stock=model.stock,
            per_member_limit=model.per_member_limit,
        )


RewardConnection = Connection[Reward]


@strawberry.type
class Redemption:
    id: strawberry.ID
    points: int
    code: str
    status: RedemptionStatus  # type: ignore[valid-type]
    created_at: datetime
    reward_id: strawberry.Private[str]

    @strawberry.field
    async def reward(self, info: strawberry.Info[Context]) -> Reward:
        model = await resolve.reward(info.context, self.reward_id)
        assert model is not None  # rewards are deactivated, never deleted
        return Reward.of(model)

    @classmethod
    def of(cls, model: RedemptionModel) -> Redemption:
        return cls(
            id=strawberry.ID(str(model.id)),
            points=model.points,
            code=model.code,
            status=LedgerRedemptionStatus(model.status),
            created_at=model.created_at,
            reward_id=model.reward_id,
        )


RedemptionConnection = Connection[Redemption]


@strawberry.type
class PointsHold:
    id: strawberry.ID
    points: int
    discount: Decimal
    status: HoldStatus  # type: ignore[valid-type]
    expires_at: datetime

    @classmethod
    def of(cls, model: Hold) -> PointsHold:
        return cls(
            id=strawberry.ID(str(model.id)),
            points=model.points,
            discount=model.discount,
            status=LedgerHoldStatus(model.status),
            expires_at=model.expires_at,
        )


@strawberry.input
class RedeemRewardInput:
    idempotency_key: str
    member: LazyMemberRef | None = None
    reward_id: strawberry.ID


@strawberry.input
class UseRedemptionInput:
    idempotency_key: str
    code: str
    order_id: str | None = None


@strawberry.input
class CancelRedemptionInput:
    idempotency_key: str
    redemption_id: strawberry.ID


@strawberry.input
class HoldPointsInput:
    idempotency_key: str
    member: LazyMemberRef | None = None
    points: int
    order_id: str


@strawberry.input
class CapturePointsInput:
    idempotency_key: str
    hold_id: strawberry.ID


@strawberry.input
class ReleasePointsInput:
    idempotency_key: str
    hold_id: strawberry.ID


@strawberry.input
class RewardInput:
    id: strawberry.ID
    name: str
    cost: int
    min_tier: str | None = None
    stock: int | None = None
    per_member_limit: int | None = None
    active: bool | None = True


@strawberry.type
class RedemptionPayload:
    redemption: Redemption | None
    member: LazyMember | None
    user_errors: list[UserError]


@strawberry.type
class RedeemRewardPayload(RedemptionPayload):
    pass


@strawberry.type
class UseRedemptionPayload(RedemptionPayload):
    pass


@strawberry.type
class CancelRedemptionPayload(RedemptionPayload):
    pass


@strawberry.type
class HoldPayload:
    hold: PointsHold | None
    member: LazyMember | None
    user_errors: list[UserError]


@strawberry.type
class HoldPointsPayload(HoldPayload):
    pass


@strawberry.type
class CapturePointsPayload(HoldPayload):
    pass


@strawberry.type
class ReleasePointsPayload(HoldPayload):
    pass


R = TypeVar("R", bound=RedemptionPayload)
H = TypeVar("H", bound=HoldPayload)


@strawberry.type
class UpsertRewardPayload:
    reward: Reward | None
    user_errors: list[UserError]


async def _redemption(ctx: Context, kind: type[R], outcome: Outcome) -> R:
    # The redemption as the write made it: no read after the commit, which could wait
    # for a pooled connection and fail an answer whose write stands. A replay reads it.
    found = outcome.redemption
    if found is None and outcome.redemption_id is not None:
        found = await ctx.loaders.redemption_by_id.load(outcome.redemption_id)
    return kind(
        redemption=Redemption.of(found) if found else None,
        member=await changed_member(ctx, outcome),
        user_errors=user_errors(outcome),
    )


async def _hold(ctx: Context, kind: type[H], outcome: Outcome) -> H:
    found = await ctx.loaders.hold_by_id.load(outcome.hold_id) if outcome.hold_id else None
    return kind(
        hold=PointsHold.of(found) if found else None,
        member=await changed_member(ctx, outcome),
        user_errors=user_errors(outcome),
    )


@strawberry.type
class RewardsQuery:
    @strawberry.field(extensions=needs(scopes.REWARDS_READ, member=True))
    async def rewards(
        self, info: strawberry.Info[Context], first: int | None = 20, after: str | None = None
    ) -> RewardConnection:
        page = await resolve.rewards_page(info.context, first, after)
        return connection(page, Reward.of)  # type: ignore[no-any-return]


@strawberry.type
class RewardsMutation:
    @strawberry.mutation(extensions=needs(scopes.REWARDS_REDEEM, member=True))
    async def redeem_reward(
        self, info: strawberry.Info[Context], input: RedeemRewardInput
    ) -> RedeemRewardPayload:
        ctx = info.context
        ref = input.member.reference() if input.member else None
        command = RedeemReward(
            input.idempotency_key, await members_resolvers.target(ctx, ref), str(input.reward_id)
        )
        return await _redemption(ctx, RedeemRewardPayload, await writes.execute(ctx, command))

    @strawberry.mutation(extensions=needs(scopes.REWARDS_REDEEM))
    async def use_redemption(
        self, info: strawberry.Info[Context], input: UseRedemptionInput
    ) -> UseRedemptionPayload:
        ctx = info.context
        command = UseRedemption(input.idempotency_key, input.code, input.order_id)
        return await _redemption(ctx, UseRedemptionPayload, await writes.execute(ctx, command))

    @strawberry.mutation(extensions=needs(scopes.REWARDS_REDEEM))
    async def cancel_redemption(
        self, info: strawberry.Info[Context], input: CancelRedemptionInput
    ) -> CancelRedemptionPayload:
        ctx = info.context
        command = CancelRedemption(input.idempotency_key, resolve.numeric_id(input.redemption_id))
        return await _redemption(ctx, CancelRedemptionPayload, await writes.execute(ctx, command))

    @strawberry.mutation(extensions=needs(scopes.REWARDS_REDEEM, member=True))
    async def hold_points(
        self, info: strawberry.Info[Context], input: HoldPointsInput
    ) -> HoldPointsPayload:
        ctx = info.context
        ref = input.member.reference() if input.member else None
        command = HoldPoints(
            input.idempotency_key,
            await members_resolvers.target(ctx, ref),
            input.points,
            input.order_id,
        )
        return await _hold(ctx, HoldPointsPayload, await writes.execute(ctx, command))

    @strawberry.mutation(extensions=needs(scopes.REWARDS_REDEEM))
    async def capture_points(
        self, info: strawberry.Info[Context], input: CapturePointsInput
    ) -> CapturePointsPayload:
        ctx = info.context
        command = CapturePoints(input.idempotency_key, resolve.numeric_id(input.hold_id))
        return await _hold(ctx, CapturePointsPayload, await writes.execute(ctx, command))

    @strawberry.mutation(extensions=needs(scopes.REWARDS_REDEEM, member=True))
    async def release_points(
        self, info: strawberry.Info[Context], input: ReleasePointsInput
    ) -> ReleasePointsPayload:
        ctx = info.context
        command = ReleasePoints(
            input.idempotency_key, resolve.numeric_id(input.hold_id), owner=resolve.owner(ctx)
        )
        return await _hold(ctx, ReleasePointsPayload, await writes.execute(ctx, command))

    @strawberry.mutation(extensions=needs(scopes.REWARDS_MANAGE))
    async def upsert_reward(
        self, info: strawberry.Info[Context], input: RewardInput
    ) -> UpsertRewardPayload:
        ctx = info.context
        command = UpsertReward(
            str(input.id),
            input.name,
            input.cost,
            min_tier=input.min_tier,
            stock=input.stock,
            per_member_limit=input.per_member_limit,
            active=input.active is not False,
        )
        try:
            model = await writes.upsert_reward(ctx, command)
        except LedgerError as error:
            problem = UserError(code=error.code, message=error.message, field=error.field)
            return UpsertRewardPayload(reward=None, user_errors=[problem])
        return UpsertRewardPayload(reward=Reward.of(model), user_errors=[])
