"""Members: the member type that unifies points, tier, history and rewards, and the
queries and writes on members."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import TypeVar

import strawberry
from strawberry.scalars import JSON

from auth import scopes
from auth.permissions import needs
from ledger.commands import EnrollMember, ForgetMember, Outcome, UpdateMember
from ledger.models import Member as MemberModel
from resolvers import members as resolve
from resolvers import points as points_resolvers
from resolvers import program as program_resolvers
from resolvers import rewards as rewards_resolvers
from resolvers import writes
from resolvers.context import Context
from schema.pagination import Connection, connection
from schema.payloads import UserError, changed_member, user_errors
from schema.points import (
    Points,
    TierStatus,
    Transaction,
    TransactionConnection,
    TransactionKind,
    entry_kinds,
)
from schema.program import tier
from schema.rewards import Redemption, RedemptionConnection, Reward


@strawberry.input(description="Exactly one of id and customerId. Omit it with a member token: me.")
class MemberRef:
    id: strawberry.ID | None = None
    customer_id: str | None = None

    def reference(self) -> resolve.Reference:
        return resolve.Reference(
            id=str(self.id) if self.id is not None else None, customer_id=self.customer_id
        )


@strawberry.type(description="The member's contact in the program's CRM.")
class CrmProfile:
    source: str
    first_name: str | None
    last_name: str | None
    lifecycle_stage: str | None
    company: str | None


@strawberry.type(description="An order in the program's store.")
class Order:
    id: strawberry.ID
    name: str | None
    total: Decimal
    currency: str
    created_at: datetime
    status: str | None


@strawberry.type
class Member:
    model: strawberry.Private[MemberModel]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.model.id))

    @strawberry.field
    def customer_id(self) -> str:
        return self.model.customer_id

    @strawberry.field(description="members:pii, or the member itself")
    def email(self, info: strawberry.Info[Context]) -> str | None:
        return resolve.personal(info.context, self.model, self.model.email)

    @strawberry.field(description="members:pii, or the member itself")
    def name(self, info: strawberry.Info[Context]) -> str | None:
        return resolve.personal(info.context, self.model, self.model.name)

    @strawberry.field
    def enrolled_at(self) -> datetime:
        return self.model.enrolled_at

    @strawberry.field
    def referral_code(self) -> str:
        return self.model.referral_code

    @strawberry.field
    async def points(self, info: strawberry.Info[Context]) -> Points:
        balance = await points_resolvers.balance(info.context, self.model)
        return Points(
            available=balance.available,
            pending=balance.pending,
            held=balance.held,
            lifetime_earned=balance.lifetime_earned,
            member_id=self.model.id,
        )

    @strawberry.field
    async def tier(self, info: strawberry.Info[Context]) -> TierStatus:
        current, upcoming = await points_resolvers.tier(info.context, self.model)
        return TierStatus(
            current=tier(current), next=tier(upcoming) if upcoming else None, member=self.model
        )

    @strawberry.field(description="Newest first.")
    async def transactions(
        self,
        info: strawberry.Info[Context],
        first: int | None = 20,
        after: str | None = None,
        kinds: list[TransactionKind] | None = None,
    ) -> TransactionConnection:
        kinds_ = entry_kinds(kinds)
        page = await points_resolvers.transactions(info.context, self.model, first, after, kinds_)
        return connection(page, Transaction.of)  # type: ignore[no-any-return]

    @strawberry.field(description="Redeemable now: tier, stock, per-member limit, balance.")
    async def available_rewards(self, info: strawberry.Info[Context]) -> list[Reward]:
        rewards = await rewards_resolvers.available_rewards(info.context, self.model)
        return [Reward.of(reward) for reward in rewards]

    @strawberry.field(description="Newest first.")
    async def redemptions(
        self, info: strawberry.Info[Context], first: int | None = 20, after: str | None = None
    ) -> RedemptionConnection:
        page = await rewards_resolvers.redemptions(info.context, self.model, first, after)
        return connection(page, Redemption.of)  # type: ignore[no-any-return]

    @strawberry.field(
        description="From the CRM (members:pii, or the member itself); null with the error "
        "BACKEND_UNAVAILABLE when the CRM cannot answer."
    )
    async def profile(self, info: strawberry.Info[Context]) -> CrmProfile | None:
        found = await resolve.profile(info.context, self.model)
        if found is None:
            return None
        return CrmProfile(
            source=found.source,
            first_name=found.first_name,
            last_name=found.last_name,
            lifecycle_stage=found.lifecycle_stage,
            company=found.company,
        )

    @strawberry.field(
        description="Newest first, from the store; null with the error BACKEND_UNAVAILABLE "
        "when the store cannot answer."
    )
    async def orders(
        self, info: strawberry.Info[Context], first: int | None = 5
    ) -> list[Order] | None:
        found = await resolve.orders(info.context, self.model, first)
        if found is None:
            return None
        return [
            Order(
                id=strawberry.ID(order.id),
                name=order.name,
                total=order.total,
                currency=order.currency,
                created_at=order.created_at,
                status=order.status,
            )
            for order in found
        ]


MemberConnection = Connection[Member]


def member(model: MemberModel | None) -> Member | None:
    return Member(model=model) if model is not None else None


@strawberry.input
class EnrollMemberInput:
    idempotency_key: str
    customer_id: str
    email: str | None = None
    name: str | None = None
    birthday: date | None = None
    referral_code: str | None = None


@strawberry.input
class UpdateMemberInput:
    idempotency_key: str
    member: MemberRef | None = None
    email: str | None = None
    name: str | None = None
    birthday: date | None = None


@strawberry.input
class ForgetMemberInput:
    idempotency_key: str
    member: MemberRef


@strawberry.type
class MemberPayload:
    member: Member | None
    user_errors: list[UserError]


@strawberry.type
class EnrollMemberPayload(MemberPayload):
    pass


@strawberry.type
class UpdateMemberPayload(MemberPayload):
    pass


@strawberry.type
class ForgetMemberPayload(MemberPayload):
    pass


P = TypeVar("P", bound=MemberPayload)


async def _payload(ctx: Context, kind: type[P], outcome: Outcome) -> P:
    return kind(member=await changed_member(ctx, outcome), user_errors=user_errors(outcome))


@strawberry.type
class MembersQuery:
    @strawberry.field(extensions=needs(None, member=True, partner=False))
    async def me(self, info: strawberry.Info[Context]) -> Member | None:
        """The member signed in with a member token."""
        return member(await resolve.me(info.context))

    @strawberry.field(extensions=needs(scopes.MEMBERS_READ, member=True))
    async def member(self, info: strawberry.Info[Context], ref: MemberRef) -> Member | None:
        return member(await resolve.find(info.context, ref.reference()))

    @strawberry.field(extensions=needs(scopes.MEMBERS_READ))
    async def members(
        self,
        info: strawberry.Info[Context],
        first: int | None = 20,
        after: str | None = None,
        tier: str | None = None,
    ) -> MemberConnection:
        page = await resolve.members_page(info.context, first, after, tier)
        return connection(page, lambda model: Member(model=model))  # type: ignore[no-any-return]

    @strawberry.field(extensions=needs(scopes.MEMBERS_PII), description="GDPR export.")
    async def export_member(self, info: strawberry.Info[Context], ref: MemberRef) -> JSON:
        return await program_resolvers.export_member(info.context, ref.reference())  # type: ignore[return-value]


@strawberry.type
class MembersMutation:
    @strawberry.mutation(extensions=needs(scopes.MEMBERS_WRITE))
    async def enroll_member(
        self, info: strawberry.Info[Context], input: EnrollMemberInput
    ) -> EnrollMemberPayload:
        command = EnrollMember(
            input.idempotency_key,
            input.customer_id,
            email=input.email,
            name=input.name,
            birthday=input.birthday,
            referral_code=input.referral_code,
        )
        outcome = await writes.execute(info.context, command)
        return await _payload(info.context, EnrollMemberPayload, outcome)

    @strawberry.mutation(extensions=needs(scopes.MEMBERS_WRITE, member=True))
    async def update_member(
        self, info: strawberry.Info[Context], input: UpdateMemberInput
    ) -> UpdateMemberPayload:
        ctx = info.context
        ref = input.member.reference() if input.member else None
        command = UpdateMember(
            input.idempotency_key,
            await resolve.target(ctx, ref),
            email=input.email,
            name=input.name,
            birthday=input.birthday,
        )
        return await _payload(ctx, UpdateMemberPayload, await writes.execute(ctx, command))

    @strawberry.mutation(extensions=needs(scopes.MEMBERS_WRITE), description="GDPR erasure.")
    async def forget_member(
        self, info: strawberry.Info[Context], input: ForgetMemberInput
    ) -> ForgetMemberPayload:
        ctx = info.context
        command = ForgetMember(
            input.idempotency_key, await resolve.target(ctx, input.member.reference())
        )
        return await _payload(ctx, ForgetMemberPayload, await writes.execute(ctx, command))
