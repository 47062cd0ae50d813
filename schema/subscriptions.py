"""The Subscription root: a member's points and tier as they change (DESIGN §4).

Each event is built from the event alone: the balances and tier after the change were
computed in the ledger transaction and travel with it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from datetime import datetime
from typing import TypeVar

import strawberry

from events.bus import Event
from ledger.models import EntryKind
from resolvers import subscriptions as resolve
from resolvers.context import Context
from schema.members import MemberRef
from schema.points import TransactionKind

T = TypeVar("T")


@strawberry.type
class PointsEvent:
    member_id: strawberry.ID
    transaction_id: strawberry.ID | None
    kind: TransactionKind  # type: ignore[valid-type]
    delta: int
    available: int
    pending: int
    held: int
    tier: str
    occurred_at: datetime

    @classmethod
    def of(cls, event: Event) -> PointsEvent:
        data = event.payload
        activation = event.type == "points.activated"  # pending points became available
        transaction = data.get("transactionId")
        return cls(
            member_id=strawberry.ID(str(data["memberId"])),
            transaction_id=strawberry.ID(str(transaction)) if transaction else None,
            kind=EntryKind.EARN if activation else EntryKind(data["kind"]),
            delta=0 if activation else int(data["delta"]),
            available=int(data["available"]),
            pending=int(data["pending"]),
            held=int(data["held"]),
            tier=str(data["tier"]),
            occurred_at=datetime.fromisoformat(data["occurredAt"]),
        )


@strawberry.type
class TierEvent:
    member_id: strawberry.ID
    from_: str | None = strawberry.field(name="from")
    to: str
    occurred_at: datetime

    @classmethod
    def of(cls, event: Event) -> TierEvent:
        data = event.payload
        return cls(
            member_id=strawberry.ID(str(data["memberId"])),
            from_=data.get("from"),
            to=str(data["to"]),
            occurred_at=datetime.fromisoformat(data["occurredAt"]),
        )


@strawberry.type
class Subscription:
    @strawberry.subscription(description="member token: own; members:read: any member")
    async def points_changed(
        self, info: strawberry.Info[Context], member: MemberRef | None = None
    ) -> AsyncGenerator[PointsEvent, None]:
        ref = member.reference() if member is not None else None
        events = await resolve.events(info.context, ref, resolve.POINTS_EVENTS)
        return _mapped(events, PointsEvent.of)

    @strawberry.subscription(description="member token: own; members:read: any member")
    async def tier_changed(
        self, info: strawberry.Info[Context], member: MemberRef | None = None
    ) -> AsyncGenerator[TierEvent, None]:
        ref = member.reference() if member is not None else None
        events = await resolve.events(info.context, ref, resolve.TIER_EVENTS)
        return _mapped(events, TierEvent.of)


async def _mapped(events: AsyncIterator[Event], build: Callable[[Event], T]) -> AsyncGenerator[T]:
    async with contextlib.aclosing(events):  # type: ignore[type-var]
        async for event in events:
            yield build(event)
