"""Inbound webhooks, the ledger's side: one platform delivery, its ledger commands and
its delivery record, in one transaction.

The HTTP side (signatures, payload mapping, answers) is `backends/inbound.py`. Here the
ledger decides what a delivery's commands did: applied, already there (a repeated
delivery id, an order that already earned, a customer already enrolled), not for this
program (a purchase of a customer who is no member: ignored), or refused for good (a
payload that can never apply, whose effects are rolled back by the caller).

A delivery is recorded once per (program, source, platform event id); a repeat of a
delivery that was applied, ignored or a duplicate adds an attempt and changes nothing;
a repeat of one refused or failed runs again (the program file may have been fixed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from ledger import deliveries_repository
from ledger.commands import (
    Command,
    EnrollMember,
    ForgetMember,
    Outcome,
    Problem,
    RecordPurchase,
    RefundPurchase,
)
from ledger.models import DeliveryDirection, DeliveryOutcome, WebhookDelivery

if TYPE_CHECKING:
    from ledger.service import LoyaltyService

# Business codes meaning "this effect is already in the ledger", per command: the
# delivery is a duplicate of something applied before (another delivery id, another
# source), or, for an erasure, there is nothing (left) to erase.
ALREADY_APPLIED: dict[type[Any], frozenset[str]] = {
    RecordPurchase: frozenset({"DUPLICATE_ORDER"}),
    EnrollMember: frozenset({"ALREADY_ENROLLED"}),
    ForgetMember: frozenset({"UNKNOWN_MEMBER"}),
}
# Business codes meaning "not for this program": a purchase or refund of a customer who
# is no member (the program does not enrol on the fly, or the customer was forgotten).
# Recorded as IGNORED and answered 200: the platform has nothing to fix or retry.
NOT_OURS: dict[type[Any], frozenset[str]] = {
    RecordPurchase: frozenset({"UNKNOWN_MEMBER"}),
    RefundPurchase: frozenset({"UNKNOWN_MEMBER"}),
}
# Outcomes after which a repeat of the same delivery id changes nothing.
SETTLED = frozenset({DeliveryOutcome.APPLIED, DeliveryOutcome.DUPLICATE, DeliveryOutcome.IGNORED})
ATTEMPT_LOG_LIMIT = 20
MAX_TOPIC = 64
MAX_EVENT_ID = 255
MAX_REASON = 500


def client_key(source: str) -> str:
    """Whose idempotency keys a source's commands use: one scope per source."""
    return f"webhook:{source}"


class Rejected(Exception):
    """A delivery whose commands can never apply; the caller rolls back their effects
    and records the delivery as REJECTED."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


@dataclass(frozen=True)
class Receipt:
    """What one delivery did: its record's id, its outcome, and the commands' outcomes
    (empty for a repeat)."""

    delivery_id: int
    outcome: DeliveryOutcome
    outcomes: tuple[Outcome, ...] = ()
    repeat: bool = False


async def apply(
    service: LoyaltyService,
    session: AsyncSession,
    program_id: str,
    source: str,
    event_id: str,
    topic: str,
    commands: Sequence[Command],
    *,
    status: int = 200,
) -> Receipt:
    """Run a delivery's commands and record it, in the caller's transaction. A repeat
    of a settled delivery runs nothing. Raises `Rejected` when a command is refused
    for good (the caller rolls back)."""
    now = service.clock()
    row = await deliveries_repository.received(session, program_id, source, event_id, lock=True)
    if row is not None and row.outcome in SETTLED:
        _attempt(row, now, status, DeliveryOutcome.DUPLICATE, "a repeat of this delivery")
        await session.flush()
        return Receipt(row.id, DeliveryOutcome(row.outcome), repeat=True)
    outcomes = []
    results = []
    for command in commands:
        outcome = await service.execute(session, program_id, client_key(source), command)
        results.append(_result(command, outcome))
        outcomes.append(outcome)
    result = next((kind for kind in _PRECEDENCE if kind in results), DeliveryOutcome.APPLIED)
    reason = None if result == DeliveryOutcome.APPLIED else _reason(outcomes)
    row = await _record(session, row, program_id, source, event_id, topic, now)
    _attempt(row, now, status, result, reason)
    await session.flush()
    return Receipt(row.id, result, tuple(outcomes))


async def record(
    session: AsyncSession,
    program_id: str,
    source: str,
    event_id: str,
    topic: str,
    outcome: DeliveryOutcome,
    *,
    status: int,
    reason: str | None,
    now: datetime,
) -> Receipt:
    """Record a delivery that changes nothing in the ledger: ignored, refused or failed.
    A repeat of a settled delivery stays as it was (one more attempt)."""
    row = await deliveries_repository.received(session, program_id, source, event_id, lock=True)
    if row is not None and row.outcome in SETTLED:
        _attempt(row, now, status, DeliveryOutcome.DUPLICATE, "a repeat of this delivery")
        await session.flush()
        return Receipt(row.id, DeliveryOutcome(row.outcome), repeat=True)
    row = await _record(session, row, program_id, source, event_id, topic, now)
    _attempt(row, now, status, outcome, reason)
    await session.flush()
    return Receipt(row.id, outcome)


async def settled(
    session: AsyncSession, program_id: str, source: str, event_id: str
) -> WebhookDelivery | None:
    """The settled record of this delivery id, if one exists (a read, no lock)."""
    row = await deliveries_repository.received(session, program_id, source, event_id)
    return row if row is not None and row.outcome in SETTLED else None


async def _record(
    session: AsyncSession,
    row: WebhookDelivery | None,
    program_id: str,
    source: str,
    event_id: str,
    topic: str,
    now: datetime,
) -> WebhookDelivery:
    if row is not None:
        return row
    row = WebhookDelivery(
        direction=DeliveryDirection.IN,
        program_id=program_id,
        endpoint=source,
        event_id=event_id[:MAX_EVENT_ID],
        topic=topic[:MAX_TOPIC],
        outcome=DeliveryOutcome.PENDING,
        attempts=0,
        next_attempt_at=None,
        attempt_log=[],
        created_at=now,
        updated_at=now,
    )
    await deliveries_repository.add_received(session, row)
    return row


def _attempt(
    row: WebhookDelivery,
    now: datetime,
    status: int,
    outcome: DeliveryOutcome,
    reason: str | None,
) -> None:
    """Count one attempt; a repeat of a settled delivery keeps its outcome and logs the
    attempt as DUPLICATE."""
    attempt: dict[str, object] = {
        "at": now.astimezone(UTC).isoformat(),
        "status": status,
        "outcome": outcome.value,
    }
    if reason:
        attempt["reason"] = reason[:MAX_REASON]
    row.attempts += 1
    row.attempt_log = [*row.attempt_log, attempt][-ATTEMPT_LOG_LIMIT:]
    row.last_status = status
    if row.outcome not in SETTLED:
        row.outcome = outcome
    row.updated_at = now


_PRECEDENCE = (DeliveryOutcome.APPLIED, DeliveryOutcome.DUPLICATE, DeliveryOutcome.IGNORED)


def _result(command: Command, outcome: Outcome) -> DeliveryOutcome:
    """What one command's outcome makes of the delivery; raises `Rejected` for good."""
    if outcome.problem is None:
        return DeliveryOutcome.DUPLICATE if outcome.replayed else DeliveryOutcome.APPLIED
    code = outcome.problem.code
    if code in ALREADY_APPLIED.get(type(command), frozenset()):
        return DeliveryOutcome.DUPLICATE
    if code in NOT_OURS.get(type(command), frozenset()):
        return DeliveryOutcome.IGNORED
    raise Rejected(outcome.problem)


def _reason(outcomes: Sequence[Outcome]) -> str:
    for outcome in outcomes:
        if outcome.problem is not None:
            return f"{outcome.problem.code}: {outcome.problem.message}"
    return "already applied (the same idempotency key)"
