"""The dispatcher's database side: a batch of due deliveries claimed under a lease, and
a batch of attempts recorded, in one transaction (a claim records the attempts made
since the last record in its own transaction; the recorder writes what no claim took).

A claim leases up to a batch of an endpoint's due deliveries (`FOR UPDATE SKIP LOCKED`
on PostgreSQL) and builds the body each is sent with; the attempts are sent with no
transaction open. Recording an attempt applies the schedule:

- 2xx: DELIVERED.
- 410: the endpoint is disabled (no more attempts to it until an operator retries one).
- 5xx, 408, 429, timeouts, refused or reset connections: again after 5 s, 5 min,
  30 min, 2 h, 5 h, 10 h, then DEAD (seven attempts).
- another 4xx, or a redirect (never followed): the same schedule, but DEAD after three.
- an address the guard refuses: REFUSED at once, nothing sent, not retried.

An attempt is recorded only while its lease is still the dispatcher's; a delivery whose
lease ran out meanwhile is another dispatcher's to try (at least once).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from events.webhook_transport import Attempt
from ledger import deliveries_repository, rules, webhooks
from ledger.db import Database
from ledger.models import DeliveryOutcome
from ledger.program import OutgoingWebhook

SEQUENCED_TYPES = tuple(webhooks.TOPIC_OF)  # the outbox types a member's sequence counts


class DeliveryObserver(Protocol):
    """What the dispatcher reports to the metrics."""

    def attempted(self, outcome: str, seconds: float | None) -> None: ...

    def endpoint_disabled(self) -> None: ...


@dataclass
class Claimed:
    """A delivery leased to this process, with the body it is sent with."""

    delivery_id: int
    program_id: str
    endpoint: OutgoingWebhook
    message_id: str
    body: str
    sequence: int
    attempts: int
    lease: str
    claimed_at: float  # time.monotonic() of the claim


@dataclass
class DispatchReport:
    """Attempts of one `run_due`, by outcome, per program."""

    outcomes: dict[str, dict[str, int]] = field(default_factory=dict)

    def count(self, program_id: str, outcome: str) -> None:
        per_program = self.outcomes.setdefault(program_id, {})
        per_program[outcome] = per_program.get(outcome, 0) + 1


async def claim(
    database: Database,
    program_id: str,
    hook: OutgoingWebhook,
    now: datetime,
    limit: int,
    lease_for: timedelta,
    *,
    results: Sequence[tuple[Claimed, Attempt]] = (),
    report: DispatchReport | None = None,
    observer: DeliveryObserver | None = None,
) -> list[Claimed]:
    """Up to `limit` of the endpoint's deliveries due at `now`, leased to this process
    for `lease_for`, oldest first, each with its body. `results`, attempts made so far
    (to any endpoint), are recorded in the same transaction, as `record` does: one
    commit for both, where a claim and a record apart would cost two."""
    lease = secrets.token_hex(16)
    claimed_at = time.monotonic()
    written = None
    async with database.transaction() as session:
        if results:
            written = await _write(session, results, now)
        rows = await deliveries_repository.claim_due(
            session,
            program_id,
            hook.url,
            now,
            limit,
            lease=lease,
            lease_until=now + lease_for,
            skip_locked=not database.is_sqlite,
        )
        sequences = (
            await deliveries_repository.member_sequences(
                session,
                [(row.member_id, row.event_id) for row in rows if row.sequence is None],
                SEQUENCED_TYPES,
            )
            if rows
            else {}
        )
    if written is not None:
        written.count(report, observer)
    claimed = []
    for row in rows:
        sequence = row.sequence or sequences.get(row.event_id) or 0
        claimed.append(
            Claimed(
                row.id,
                program_id,
                hook,
                webhooks.message_id(row),
                webhooks.claimed_body(row, sequence),
                sequence,
                row.attempts,
                lease,
                claimed_at,
            )
        )
    return claimed


def outcome_of(
    attempt: Attempt, attempts: int, now: datetime
) -> tuple[DeliveryOutcome, datetime | None]:
    """What follows from an attempt, the delivery's `attempts`-th: its outcome, and
    when it is due again (None: not again)."""
    if attempt.refused:
        return DeliveryOutcome.REFUSED, None
    if attempt.status is not None and 200 <= attempt.status < 300:
        return DeliveryOutcome.DELIVERED, None
    if attempt.status == 410:
        return DeliveryOutcome.DISABLED, None
    next_at = rules.webhook_retry_at(attempts, attempt.status, now)
    return (DeliveryOutcome.PENDING if next_at is not None else DeliveryOutcome.DEAD), next_at


async def record(
    database: Database,
    results: Sequence[tuple[Claimed, Attempt]],
    now: datetime,
    *,
    report: DispatchReport | None,
    observer: DeliveryObserver | None,
) -> None:
    """Record the attempts in one transaction, disable the endpoints that answered 410,
    and count the outcomes of the attempts recorded."""
    async with database.transaction() as session:
        written = await _write(session, results, now)
    written.count(report, observer)


@dataclass
class _Written:
    """Attempts recorded in a transaction, counted once it commits."""

    recorded: list[deliveries_repository.AttemptRecord]
    gone: set[tuple[str, str]]  # (program id, url) of the endpoints a 410 disabled
    claimed: dict[int, Claimed]  # by delivery id
    latency: dict[int, int | None]  # milliseconds, by delivery id

    def count(self, report: DispatchReport | None, observer: DeliveryObserver | None) -> None:
        for done in self.recorded:
            label = "RETRYING" if done.outcome == DeliveryOutcome.PENDING else str(done.outcome)
            if report is not None:
                report.count(self.claimed[done.delivery_id].program_id, label)
            if observer is not None:
                milliseconds = self.latency[done.delivery_id]
                observer.attempted(label, None if milliseconds is None else milliseconds / 1000)
        if observer is not None:
            for _ in self.gone:
                observer.endpoint_disabled()


async def _write(
    session: AsyncSession, results: Sequence[tuple[Claimed, Attempt]], now: datetime
) -> _Written:
    """The attempts' records, in the session's transaction (one statement), and the
    endpoints that answered 410 disabled."""
    records = []
    at = now.isoformat()
    for claimed, attempt in results:
        outcome, next_at = outcome_of(attempt, claimed.attempts + 1, now)
        entry = {
            "at": at,
            "status": attempt.status,
            "latencyMs": attempt.latency_ms,
            "error": attempt.error,
            "body": attempt.body,
        }
        records.append(
            deliveries_repository.AttemptRecord(
                claimed.delivery_id,
                claimed.lease,
                outcome,
                next_at,
                attempt.status,
                claimed.sequence,
                entry,
            )
        )
    latency = {claimed.delivery_id: attempt.latency_ms for claimed, attempt in results}
    claimed_by_id = {claimed.delivery_id: claimed for claimed, _ in results}
    recorded = await deliveries_repository.record_attempts(
        session, records, log_limit=webhooks.ATTEMPT_LOG_LIMIT, at=now
    )
    gone = {
        (claimed_by_id[r.delivery_id].program_id, claimed_by_id[r.delivery_id].endpoint.url)
        for r in recorded
        if r.outcome == DeliveryOutcome.DISABLED
    }
    for program_id, url in sorted(gone):
        await deliveries_repository.disable_endpoint(session, program_id, url, now, "410 Gone")
    return _Written(recorded, gone, claimed_by_id, latency)
