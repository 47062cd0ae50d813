"""The ledger's front door: every write goes through `LoyaltyService.execute`.

`execute` makes a command idempotent per (program, client, key): the first run's outcome
is stored in the same transaction as its effects and replayed to every repeat; a repeat
with a different input is refused. A business error rolls back everything the command
wrote (a savepoint) and is stored like any outcome.

`execute_alone` runs one command in a transaction of its own (a request's) without the
savepoint, which a successful command never needs: a refusal before the command wrote
anything has nothing to roll back, and the rare refusal after it wrote rolls back the
whole transaction and runs the command again in a new one, with the savepoint.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from ledger import (
    figures,
    jobs,
    members,
    outbox_repository,
    points,
    read_repository,
    rewards,
    stats_repository,
    webhooks,
    write_repository,
)
from ledger.commands import (
    MAX_BATCH,
    AdjustPoints,
    AnyCommand,
    CancelRedemption,
    CapturePoints,
    EnrollMember,
    ForgetMember,
    HoldPoints,
    Outcome,
    Problem,
    RecordAction,
    RecordPurchase,
    RedeemReward,
    RefundPurchase,
    ReleasePoints,
    RetryWebhookDelivery,
    UpdateMember,
    UpsertReward,
    UseRedemption,
    fingerprint,
    unstorable_text,
)
from ledger.errors import IdempotencyConflict, InvalidInput, LedgerError, UnknownMember
from ledger.models import IdempotencyRecord, Reward, WebhookDelivery
from ledger.program import Program
from ledger.scope import LedgerScope

MAX_KEY = 255
C = TypeVar("C")
Handler = Callable[[LedgerScope, Any], Awaitable[Outcome]]

HANDLERS: dict[type[Any], Handler] = {
    EnrollMember: members.enroll,
    UpdateMember: members.update,
    ForgetMember: members.forget,
    RecordPurchase: points.record_purchase,
    RecordAction: points.record_action,
    RefundPurchase: points.refund,
    AdjustPoints: points.adjust,
    RedeemReward: rewards.redeem,
    UseRedemption: rewards.use,
    CancelRedemption: rewards.cancel,
    HoldPoints: rewards.hold,
    CapturePoints: rewards.capture,
    ReleasePoints: rewards.release,
    RetryWebhookDelivery: webhooks.retry,
}
# Commands that may run without an idempotency key (each call then runs again).
KEY_OPTIONAL = (RetryWebhookDelivery,)


# The session.info key under which a command run without its savepoint notes whether it
# wrote: False while it has not, True once a statement other than a SELECT ran or the
# session flushed changes. Absent when nothing watches.
_WROTE = "loyalty_command_wrote"


@event.listens_for(Session, "do_orm_execute")
def _statement_run(state: ORMExecuteState) -> None:
    info = state.session.info
    if info.get(_WROTE) is False and not state.is_select:
        info[_WROTE] = True


@event.listens_for(Session, "before_flush")
def _flushing(session: Session, context: UOWTransaction, instances: object) -> None:
    if session.info.get(_WROTE) is False:
        session.info[_WROTE] = True


class RefusedAfterWriting(Exception):
    """A command run without its savepoint was refused after it wrote: its transaction
    must roll back, and the command run again in a new one with the savepoint."""


def utcnow() -> datetime:
    return datetime.now(UTC)


class UnknownProgram(LookupError):
    """A program id that no loaded program file declares."""


class LoyaltyService:
    """Runs commands against the ledger for the loaded programs."""

    def __init__(
        self, programs: Mapping[str, Program], clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.programs = dict(programs)
        self.clock = clock

    def program(self, program_id: str) -> Program:
        try:
            return self.programs[program_id]
        except KeyError:
            raise UnknownProgram(program_id) from None

    def scope(self, session: AsyncSession, program_id: str) -> LedgerScope:
        return LedgerScope(session, self.program(program_id), self.clock())

    async def execute_alone(
        self,
        transaction: Callable[[], AbstractAsyncContextManager[AsyncSession]],
        program_id: str,
        client_id: str,
        command: AnyCommand,
    ) -> Outcome:
        """`execute` in a transaction of its own, which `transaction()` opens and commits,
        with no savepoint unless the command is refused after it wrote (see the module)."""
        try:
            async with transaction() as session:
                return await self.execute(session, program_id, client_id, command, savepoint=False)
        except RefusedAfterWriting:
            async with transaction() as session:
                return await self.execute(session, program_id, client_id, command)

    async def execute(
        self,
        session: AsyncSession,
        program_id: str,
        client_id: str,
        command: AnyCommand,
        *,
        savepoint: bool = True,
    ) -> Outcome:
        """Run one command exactly once per idempotency key. Flushes, never commits.

        Without `savepoint` (the command alone in its transaction), a refusal after the
        command wrote raises `RefusedAfterWriting`: the caller rolls back and runs it again."""
        scope = self.scope(session, program_id)
        unstorable = unstorable_text(command)
        if unstorable:
            field, reason = unstorable
            return _refused(InvalidInput(f"{'.'.join(field)} {reason}", field))
        key = command.idempotency_key
        if key is None and isinstance(command, KEY_OPTIONAL):
            return await self._run_unkeyed(scope, command)
        if not key or len(key) > MAX_KEY:
            return _refused(InvalidInput("idempotencyKey must have 1 to 255 characters"))
        request_hash = fingerprint(command)
        record = await self._claim(scope, client_id, key, type(command).__name__, request_hash)
        if isinstance(record, Outcome):
            return record
        try:
            if savepoint:
                async with session.begin_nested():
                    outcome = await HANDLERS[type(command)](scope, command)
            else:
                outcome = await self._run_watched(scope, command)
        except LedgerError as error:
            outcome = _refused(error)
            if not error.kept:
                await session.delete(record)
                await session.flush()
                return outcome
        await write_repository.update_row(session, record, response=outcome.to_json())
        await session.flush()
        return outcome

    async def _run_watched(self, scope: LedgerScope, command: AnyCommand) -> Outcome:
        """The handler without a savepoint: a refusal passes through when the command
        wrote nothing (no statement but SELECTs, no change pending in the session);
        after a write it is `RefusedAfterWriting`."""
        session = scope.session
        session.info[_WROTE] = False
        try:
            return await HANDLERS[type(command)](scope, command)
        except LedgerError as error:
            if session.info[_WROTE] or session.new or session.dirty or session.deleted:
                raise RefusedAfterWriting from error
            raise
        finally:
            del session.info[_WROTE]

    async def _run_unkeyed(self, scope: LedgerScope, command: AnyCommand) -> Outcome:
        try:
            async with scope.session.begin_nested():
                return await HANDLERS[type(command)](scope, command)
        except LedgerError as error:
            return _refused(error)

    async def execute_batch(
        self,
        session: AsyncSession,
        program_id: str,
        client_id: str,
        commands: Sequence[RecordPurchase],
    ) -> list[Outcome]:
        """An offline till's backlog: each purchase on its own, each with its own outcome."""
        if len(commands) > MAX_BATCH:
            raise InvalidInput(f"at most {MAX_BATCH} purchases per batch", ["inputs"])
        return [await self.execute(session, program_id, client_id, cmd) for cmd in commands]

    async def _claim(
        self, scope: LedgerScope, client_id: str, key: str, operation: str, request_hash: str
    ) -> IdempotencyRecord | Outcome:
        """Insert the key, or return the outcome stored under it.

        On PostgreSQL a concurrent first run holds the key's row uncommitted; the insert
        here waits for it, then fails, and the committed outcome is read and replayed.
        """
        record = await write_repository.insert_unless_exists(
            scope.session,
            IdempotencyRecord(
                program_id=scope.program_id,
                client_id=client_id,
                key=key,
                operation=operation,
                request_hash=request_hash,
                response={},
                created_at=scope.now,
            ),
        )
        if record is not None:
            return record
        stored = await outbox_repository.idempotency_record(
            scope.session, scope.program_id, client_id, key
        )
        if stored is None or not stored.response:
            return _refused(IdempotencyConflict("this key is in use by a request still running"))
        if stored.request_hash != request_hash or stored.operation != operation:
            return _refused(
                IdempotencyConflict("this key was used with a different input", ["idempotencyKey"])
            )
        return Outcome.from_json(stored.response)

    async def upsert_reward(
        self, session: AsyncSession, program_id: str, command: UpsertReward
    ) -> Reward:
        unstorable = unstorable_text(command)
        if unstorable:
            field, reason = unstorable
            raise InvalidInput(f"{'.'.join(field)} {reason}", field)
        return await rewards.upsert_reward(self.scope(session, program_id), command)

    async def delivery(
        self, session: AsyncSession, program_id: str, delivery_id: int
    ) -> WebhookDelivery | None:
        """One webhook delivery of the program, or None."""
        try:
            return await webhooks.delivery(session, program_id, delivery_id)
        except webhooks.UnknownDelivery:
            return None

    async def seed_rewards(self, session: AsyncSession, program_id: str) -> None:
        await rewards.seed_rewards(self.scope(session, program_id))

    async def export_member(
        self,
        session: AsyncSession,
        program_id: str,
        member_id: int | None = None,
        customer_id: str | None = None,
    ) -> dict[str, Any]:
        if customer_id is not None and unstorable_text(customer_id):
            raise UnknownMember("no such member in this program", ["member"])
        return await members.export(self.scope(session, program_id), member_id, customer_id)

    async def program_stats(
        self, session: AsyncSession, program_id: str, since: datetime
    ) -> figures.ProgramStats:
        """The program's figures (`figures.program_stats`), with members active since `since`."""
        totals = await read_repository.program_totals(session, program_id, since)
        return figures.program_stats(totals, self.program(program_id))

    async def points_series(
        self,
        session: AsyncSession,
        program_id: str,
        start: datetime,
        end: datetime,
        interval: figures.Interval,
    ) -> list[figures.PointsBucket]:
        """Points issued, redeemed and expired per day, week or month of the program's
        calendar over [start, end), every period there (`figures.bucket_bounds`);
        InvalidInput for a range that is empty, out of bounds or too long."""
        zone = self.program(program_id).zone
        bounds = figures.bucket_bounds(start, end, interval, zone)
        sums = await stats_repository.points_by_bucket(session, program_id, bounds)
        return figures.points_series(bounds, sums, zone)

    async def run_jobs(
        self, session: AsyncSession, program_id: str, now: datetime | None = None
    ) -> jobs.JobReport:
        scope = self.scope(session, program_id)
        if now is not None:
            scope.now = now
        return await jobs.run_jobs(scope)


def _refused(error: LedgerError) -> Outcome:
    return Outcome(problem=Problem.of(error))
