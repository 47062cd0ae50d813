"""The Subscription root: a member's points and tier as they change (DESIGN §4).

Each event is built from the event alone: the balances and tier after the change were
computed in the ledger transaction and travel with it.

One event often goes to many subscriptions of the same selection (a member's open tabs,
many partners' dashboards with one query). Where the transport offers a `Lane` (the
WebSocket does, per operation), a subscription's selection is run over an event once per
(document, operation, variables, viewer), encoded once, and that text is sent to every
subscription that shares them, without running the selection or Strawberry's per-result
work again. Each subscription still gets exactly its own selection: one that differs in
any of those is run for itself. An event whose selection gives errors takes Strawberry's
ordinary path (its formatting and masking of errors).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Hashable
from contextvars import ContextVar
from datetime import datetime
from typing import Any, TypeVar, cast

import strawberry
from graphql import ExecutionResult, OperationType
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from events.bus import Event
from resolvers import subscriptions as resolve
from resolvers.context import Context
from schema.limits import OPERATION_EXTENSIONS
from schema.members import MemberRef
from schema.points import TransactionKind

T = TypeVar("T")


@strawberry.type
class PointsEvent:
    member_id: strawberry.ID
    transaction_id: strawberry.ID | None
    kind: TransactionKind
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
            kind=TransactionKind.EARN if activation else TransactionKind(data["kind"]),
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
        return _results(events, PointsEvent.of)

    @strawberry.subscription(description="member token: own; members:read: any member")
    async def tier_changed(
        self, info: strawberry.Info[Context], member: MemberRef | None = None
    ) -> AsyncGenerator[TierEvent, None]:
        ref = member.reference() if member is not None else None
        events = await resolve.events(info.context, ref, resolve.TIER_EVENTS)
        return _results(events, TierEvent.of)


# -- one rendering per event for the subscriptions that share a selection ----------------

Lane = Callable[[str], Awaitable[None]]
"""Sends one result of this operation whose `payload` (`{"data": ...}`) is already JSON."""

LANE: ContextVar[Lane | None] = ContextVar("loyalty_subscription_lane", default=None)
"""Set by the transport in the task of each operation it runs."""

_EXECUTOR: ContextVar[SharedEventExecutor | None] = ContextVar(
    "loyalty_subscription_executor", default=None
)


class SharedEventExecutor(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor; one built for a subscription makes itself known to the
    subscription's resolver (same task), which runs it over events itself when a lane
    is open."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.operation.operation == OperationType.SUBSCRIPTION:
            _EXECUTOR.set(self)

    def share_key(self) -> Hashable | None:
        """What a result over an event depends on besides the event: the document and
        operation, the variables, and whom it is for. None: nothing to share."""
        location = self.operation.loc
        context = self.context_value
        viewer = resolve.viewer(context) if isinstance(context, Context) else None
        if location is None or viewer is None:
            return None
        try:
            variables = json.dumps(self.variable_values.coerced, sort_keys=True, default=repr)
        except (TypeError, ValueError):
            return None
        name = self.operation.name.value if self.operation.name else None
        return (id(self.schema), location.source.body, name, variables, viewer)

    def run_over(self, root: object) -> ExecutionResult | Awaitable[ExecutionResult]:
        result = self.build_per_event_executor(root).execute_operation(False)
        return cast("ExecutionResult | Awaitable[ExecutionResult]", result)


def _results(events: AsyncIterator[Event], build: Callable[[Event], T]) -> AsyncGenerator[T]:
    executor, lane = _EXECUTOR.get(), LANE.get()
    key = executor.share_key() if executor is not None else None
    if executor is None or lane is None or key is None:
        return _mapped(events, build)
    _EXECUTOR.set(None)
    extensions = OPERATION_EXTENSIONS.get()
    return _shared(events, build, _Rendering(executor, build, key, extensions), lane)


async def _mapped(events: AsyncIterator[Event], build: Callable[[Event], T]) -> AsyncGenerator[T]:
    async with contextlib.aclosing(events):  # type: ignore[type-var]
        async for event in events:
            yield build(event)


async def _shared(
    events: AsyncIterator[Event], build: Callable[[Event], T], rendering: _Rendering, lane: Lane
) -> AsyncGenerator[T]:
    async with contextlib.aclosing(events):  # type: ignore[type-var]
        async for event in events:
            text = rendering.of(event)
            if isinstance(text, asyncio.Future):
                text = await asyncio.shield(text)  # one subscriber leaving cancels no other
            if text is None:
                yield build(event)  # errors: the ordinary path formats them
            else:
                await lane(text)


class _Rendering:
    """One subscription's selection run over an event and encoded, once for all the
    subscriptions with the same key; None when the result has errors."""

    def __init__(
        self,
        executor: SharedEventExecutor,
        build: Callable[[Event], object],
        key: Hashable,
        extensions: dict[str, Any] | None,
    ) -> None:
        self.executor = executor
        self.build = build
        self.key = (build, key)
        self.extensions = extensions

    def of(self, event: Event) -> str | asyncio.Future[str | None] | None:
        rendered: str | asyncio.Future[str | None] | None
        rendered = event.shared_value(self.key, functools.partial(self.render, event))
        return rendered

    def render(self, event: Event) -> str | asyncio.Future[str | None] | None:
        result = self.executor.run_over(self.build(event))
        if isinstance(result, ExecutionResult):
            return self.encode(result)
        return asyncio.ensure_future(self._render_later(result))

    async def _render_later(self, result: Awaitable[ExecutionResult]) -> str | None:
        return self.encode(await result)

    def encode(self, result: ExecutionResult) -> str | None:
        if result.errors:
            return None
        payload: dict[str, Any] = {"data": result.data}
        if self.extensions:
            payload["extensions"] = self.extensions
        return json.dumps(payload, separators=(",", ":"))  # as Strawberry encodes messages
