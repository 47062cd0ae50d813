"""Points: balances, tier standing, history, and the writes that earn or take points."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Annotated, TypeVar

import strawberry

from auth import scopes
from auth.permissions import needs
from ledger import outbox
from ledger.commands import AdjustPoints, Outcome, RecordAction, RecordPurchase, RefundPurchase
from ledger.models import Entry, EntryKind, EntryStatus
from ledger.models import Member as MemberModel
from ledger.program import Channel as LedgerChannel
from ledger.rules import Line
from resolvers import members as members_resolvers
from resolvers import points as points_resolvers
from resolvers import writes
from resolvers.context import Context
from schema.pagination import Connection
from schema.payloads import UserError, changed_member, user_errors
from schema.program import Tier

if TYPE_CHECKING:
    from schema.members import Member, MemberRef

LazyMember = Annotated["Member", strawberry.lazy("schema.members")]
LazyMemberRef = Annotated["MemberRef", strawberry.lazy("schema.members")]


@strawberry.enum(
    name="TransactionKind",
    description="A ledger entry's kind; HOLD and RELEASE appear only in PointsEvent.kind.",
)
class TransactionKind(Enum):
    """A ledger entry's kind; `HOLD` and `RELEASE` appear only in `PointsEvent`s."""

    EARN = EntryKind.EARN.value
    BONUS = EntryKind.BONUS.value
    REDEEM = EntryKind.REDEEM.value
    CANCEL = EntryKind.CANCEL.value
    REFUND = EntryKind.REFUND.value
    ADJUST = EntryKind.ADJUST.value
    EXPIRE = EntryKind.EXPIRE.value
    HOLD = strawberry.enum_value(
        outbox.HOLD,
        description="Only in events: a checkout hold moved points from available to held "
        "(no ledger entry, so no transactionId). Matches no transaction.",
    )
    RELEASE = strawberry.enum_value(
        outbox.RELEASE,
        description="Only in events: a hold's points went back to available, released or "
        "expired (no ledger entry). Matches no transaction. A capture is a REDEEM.",
    )


def entry_kinds(kinds: list[TransactionKind] | None) -> list[EntryKind] | None:
    """The entry kinds a `kinds` filter names (HOLD and RELEASE name none)."""
    if kinds is None:
        return None
    entries = {kind.value for kind in EntryKind}
    return [EntryKind(kind.value) for kind in kinds if kind.value in entries]


TransactionStatus = strawberry.enum(EntryStatus, name="TransactionStatus")
Channel = strawberry.enum(LedgerChannel, name="Channel")


@strawberry.type
class PointsExpiry:
    points: int
    expires_at: datetime


@strawberry.type
class Points:
    """A member's balances (its account row); what costs a statement of its own is
    resolved only when asked for."""

    available: int
    pending: int
    held: int
    lifetime_earned: int
    member_id: strawberry.Private[int]

    @strawberry.field(description="Unspent points expiring in the next 30 days, soonest first")
    async def expiring_soon(self, info: strawberry.Info[Context]) -> list[PointsExpiry]:
        expiring = await points_resolvers.expiring_soon(info.context, self.member_id)
        return [PointsExpiry(points=e.points, expires_at=e.expires_at) for e in expiring]


@strawberry.type
class TierStatus:
    """A member's tier (its account row) and the next one; the qualifying value, which
    sums the member's history, is read only when asked for."""

    current: Tier
    next: Tier | None
    member: strawberry.Private[MemberModel]

    @strawberry.field
    async def qualifying_value(self, info: strawberry.Info[Context]) -> int:
        standing = await points_resolvers.standing(info.context, self.member)
        return standing.qualifying_value

    @strawberry.field
    async def to_next(self, info: strawberry.Info[Context]) -> int | None:
        standing = await points_resolvers.standing(info.context, self.member)
        return standing.to_next


@strawberry.type
class Transaction:
    id: strawberry.ID
    kind: TransactionKind
    points: int
    status: TransactionStatus  # type: ignore[valid-type]
    order_id: str | None
    reason: str | None
    occurred_at: datetime
    available_at: datetime | None
    expires_at: datetime | None

    @classmethod
    def of(cls, entry: Entry) -> Transaction:
        return cls(
            id=strawberry.ID(str(entry.id)),
            kind=TransactionKind(entry.kind),
            points=entry.points,
            status=EntryStatus(entry.status),
            order_id=entry.order_id,
            reason=entry.reason,
            occurred_at=entry.occurred_at,
            available_at=entry.available_at,
            expires_at=entry.expires_at,
        )


TransactionConnection = Connection[Transaction]


@strawberry.input
class PurchaseLineInput:
    sku: str | None = None
    category: str | None = None
    quantity: int
    unit_price: Decimal
    discount: Decimal | None = Decimal("0")


@strawberry.input
class PurchaseInput:
    idempotency_key: str
    member: LazyMemberRef
    order_id: str
    currency: str
    channel: Channel | None = LedgerChannel.ONLINE  # type: ignore[valid-type]
    occurred_at: datetime | None = None
    lines: list[PurchaseLineInput]


@strawberry.input
class RefundLineInput:
    sku: str
    quantity: int


@strawberry.input
class RefundInput:
    idempotency_key: str
    order_id: str
    amount: Decimal | None = None
    lines: list[RefundLineInput] | None = None


@strawberry.input
class ActionInput:
    idempotency_key: str
    member: LazyMemberRef
    type: str
    occurred_at: datetime | None = None
    reference: str | None = None


@strawberry.input
class AdjustPointsInput:
    idempotency_key: str
    member: LazyMemberRef
    points: int
    reason: str
    allow_negative_balance: bool | None = False


@strawberry.type
class TransactionPayload:
    """What a points write changed: the entry written and the member's new standing."""

    transaction: Transaction | None

    @strawberry.field
    async def member(self, info: strawberry.Info[Context]) -> LazyMember | None:
        # Read only when asked for.
        return await changed_member(info.context, self.outcome)  # type: ignore[no-any-return]

    user_errors: list[UserError]
    outcome: strawberry.Private[Outcome]


P = TypeVar("P", bound=TransactionPayload)


@strawberry.type
class RecordPurchasePayload(TransactionPayload):
    pass


@strawberry.type
class RecordActionPayload(TransactionPayload):
    pass


@strawberry.type
class RefundPurchasePayload(TransactionPayload):
    pass


@strawberry.type
class AdjustPointsPayload(TransactionPayload):
    pass


async def _payload(ctx: Context, kind: type[P], outcome: Outcome) -> P:
    # The entry as the write returned it, else (a replay) read back.
    entry = outcome.entry
    if entry is None and outcome.entry_id:
        entry = await ctx.loaders.entry_by_id.load(outcome.entry_id)
    return kind(
        transaction=Transaction.of(entry) if entry else None,
        user_errors=user_errors(outcome),
        outcome=outcome,
    )


async def _purchase(ctx: Context, data: PurchaseInput) -> RecordPurchase:
    lines = tuple(
        Line(line.sku, line.category, line.quantity, line.unit_price, line.discount or Decimal(0))
        for line in data.lines
    )
    return RecordPurchase(
        data.idempotency_key,
        await members_resolvers.target(ctx, data.member.reference()),
        data.order_id,
        data.currency,
        lines,
        channel=LedgerChannel(data.channel or LedgerChannel.ONLINE),
        occurred_at=data.occurred_at,
    )


@strawberry.type
class PointsMutation:
    @strawberry.mutation(extensions=needs(scopes.POINTS_WRITE))
    async def record_purchase(
        self, info: strawberry.Info[Context], input: PurchaseInput
    ) -> RecordPurchasePayload:
        ctx = info.context
        outcome = await writes.execute(ctx, await _purchase(ctx, input))
        return await _payload(ctx, RecordPurchasePayload, outcome)

    @strawberry.mutation(
        extensions=needs(scopes.POINTS_WRITE),
        description="An offline till's backlog: at most 500, each with its own result.",
    )
    async def record_purchases(
        self, info: strawberry.Info[Context], inputs: list[PurchaseInput]
    ) -> list[RecordPurchasePayload]:
        ctx = info.context
        outcomes = await writes.execute_batch(ctx, [await _purchase(ctx, data) for data in inputs])
        return [await _payload(ctx, RecordPurchasePayload, outcome) for outcome in outcomes]

    @strawberry.mutation(extensions=needs(scopes.POINTS_WRITE))
    async def record_action(
        self, info: strawberry.Info[Context], input: ActionInput
    ) -> RecordActionPayload:
        ctx = info.context
        command = RecordAction(
            input.idempotency_key,
            await members_resolvers.target(ctx, input.member.reference()),
            input.type,
            occurred_at=input.occurred_at,
            reference=input.reference,
        )
        return await _payload(ctx, RecordActionPayload, await writes.execute(ctx, command))

    @strawberry.mutation(extensions=needs(scopes.POINTS_WRITE))
    async def refund_purchase(
        self, info: strawberry.Info[Context], input: RefundInput
    ) -> RefundPurchasePayload:
        ctx = info.context
        lines = (
            tuple((line.sku, line.quantity) for line in input.lines)
            if input.lines is not None
            else None
        )
        command = RefundPurchase(input.idempotency_key, input.order_id, input.amount, lines)
        return await _payload(ctx, RefundPurchasePayload, await writes.execute(ctx, command))

    @strawberry.mutation(extensions=needs(scopes.POINTS_ADJUST))
    async def adjust_points(
        self, info: strawberry.Info[Context], input: AdjustPointsInput
    ) -> AdjustPointsPayload:
        ctx = info.context
        command = AdjustPoints(
            input.idempotency_key,
            await members_resolvers.target(ctx, input.member.reference()),
            input.points,
            input.reason,
            allow_negative_balance=bool(input.allow_negative_balance),
        )
        return await _payload(ctx, AdjustPointsPayload, await writes.execute(ctx, command))
