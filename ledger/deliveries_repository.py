"""The SQL of webhook deliveries: the operator's pages and the dispatcher's claims.

A dispatcher claims due deliveries (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so two
replicas never take the same row; SQLite has one writer at a time) by setting a lease:
a token, and `next_attempt_at` moved to when the lease runs out. It then sends without
holding any transaction, and records the attempt only while the lease is still its own.
A process killed mid-attempt leaves the lease to run out; any replica then tries again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from sqlalchemy import (
    String,
    Table,
    and_,
    bindparam,
    column,
    delete,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.models import (
    DeliveryDirection,
    DeliveryOutcome,
    Member,
    OutboxEvent,
    WebhookDelivery,
    WebhookEndpoint,
)

_DELIVERIES = cast(Table, WebhookDelivery.__table__)

_FAILED = (
    DeliveryOutcome.DEAD,
    DeliveryOutcome.REFUSED,
    DeliveryOutcome.DISABLED,
    DeliveryOutcome.REJECTED,  # inbound: a payload that can never apply
    DeliveryOutcome.FAILED,  # inbound: a transient fault, answered 5xx
)


async def deliveries_page(
    session: AsyncSession,
    program_id: str,
    before: int | None,
    limit: int,
    *,
    direction: DeliveryDirection | None,
    failed_only: bool,
) -> list[WebhookDelivery]:
    """A program's deliveries, newest first, with ids below `before`."""
    query = select(WebhookDelivery).where(WebhookDelivery.program_id == program_id)
    if before is not None:
        query = query.where(WebhookDelivery.id < before)
    if direction is not None:
        query = query.where(WebhookDelivery.direction == direction)
    if failed_only:
        query = query.where(
            or_(
                WebhookDelivery.outcome.in_(_FAILED),
                and_(
                    WebhookDelivery.outcome == DeliveryOutcome.PENDING,
                    WebhookDelivery.attempts > 0,
                ),
            )
        )
    query = query.order_by(WebhookDelivery.id.desc()).limit(limit)
    return list((await session.scalars(query)).all())


async def delivery(
    session: AsyncSession, program_id: str, delivery_id: int, *, lock: bool = False
) -> WebhookDelivery | None:
    query = select(WebhookDelivery).where(
        WebhookDelivery.program_id == program_id, WebhookDelivery.id == delivery_id
    )
    if lock:
        query = query.with_for_update()
    return await session.scalar(query)


async def disabled_endpoints(session: AsyncSession) -> set[tuple[str, str]]:
    """(program id, url) of every endpoint a 410 disabled."""
    rows = await session.execute(
        select(WebhookEndpoint.program_id, WebhookEndpoint.url).where(
            WebhookEndpoint.disabled_at.is_not(None)
        )
    )
    return {(program_id, url) for program_id, url in rows.all()}


async def disable_endpoint(
    session: AsyncSession, program_id: str, url: str, at: datetime, reason: str
) -> None:
    """Disable the endpoint and every delivery still waiting for it."""
    found = await session.get(WebhookEndpoint, (program_id, url), with_for_update=True)
    if found is None:
        session.add(WebhookEndpoint(program_id=program_id, url=url, disabled_at=at, reason=reason))
    elif found.disabled_at is None:
        found.disabled_at, found.reason = at, reason
    await session.flush()
    await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.direction == DeliveryDirection.OUT,
            WebhookDelivery.program_id == program_id,
            WebhookDelivery.endpoint == url,
            WebhookDelivery.outcome == DeliveryOutcome.PENDING,
        )
        .values(outcome=DeliveryOutcome.DISABLED, next_attempt_at=None, lease=None, updated_at=at)
    )


async def enable_endpoint(session: AsyncSession, program_id: str, url: str) -> None:
    await session.execute(
        delete(WebhookEndpoint).where(
            WebhookEndpoint.program_id == program_id, WebhookEndpoint.url == url
        )
    )


@dataclass(frozen=True)
class DueDelivery:
    """A claimed delivery with what its payload needs: its event and the event's member."""

    id: int
    program_id: str
    topic: str
    attempts: int
    sequence: int | None
    event_id: int
    event_payload: str  # the event's payload as the outbox stores it, JSON text
    event_created_at: datetime
    member_id: int | None
    customer_id: str | None  # None without a member, or when the member was forgotten


# The claim of a batch: one statement leases the oldest due deliveries of an endpoint and
# returns what their payloads need, the event's and its member's columns by scalar
# subqueries (RETURNING names only the table written, on SQLite). In SQL text: SQLite's
# UPDATE leaves the columns of its subqueries unqualified, which then name the wrong table.
# The event's payload comes back as the text the outbox stores (asyncpg would decode it):
# the body sent is built from it.
_CLAIM = """
UPDATE webhook_deliveries SET lease = :lease, next_attempt_at = :lease_until
WHERE webhook_deliveries.id IN (
    SELECT due.id FROM webhook_deliveries AS due
    WHERE due.direction = 'OUT' AND due.outcome = 'PENDING' AND due.next_attempt_at <= :now
        AND due.program_id = :program_id AND due.endpoint = :url
        AND NOT EXISTS (
            SELECT 1 FROM webhook_endpoints AS e
            WHERE e.program_id = :program_id AND e.url = :url AND e.disabled_at IS NOT NULL
        )
    ORDER BY due.next_attempt_at, due.id
    LIMIT :limit{lock}
)
RETURNING
    webhook_deliveries.id, webhook_deliveries.program_id, webhook_deliveries.topic,
    webhook_deliveries.attempts, webhook_deliveries.sequence, webhook_deliveries.outbox_id,
    (SELECT CAST(o.payload AS TEXT) FROM outbox AS o WHERE o.id = webhook_deliveries.outbox_id),
    (SELECT o.created_at FROM outbox AS o WHERE o.id = webhook_deliveries.outbox_id),
    (SELECT o.member_id FROM outbox AS o WHERE o.id = webhook_deliveries.outbox_id),
    (SELECT CASE WHEN m.forgotten_at IS NULL THEN m.customer_id END
        FROM outbox AS o JOIN members AS m ON m.id = o.member_id
        WHERE o.id = webhook_deliveries.outbox_id)
"""


def _claim_statement(skip_locked: bool) -> Any:
    lock = " FOR UPDATE SKIP LOCKED" if skip_locked else ""
    table = _DELIVERIES
    events = cast(Table, OutboxEvent.__table__)
    return (
        text(_CLAIM.format(lock=lock))
        .bindparams(
            bindparam("lease_until", type_=table.c.next_attempt_at.type),
            bindparam("now", type_=table.c.next_attempt_at.type),
        )
        .columns(
            table.c.id,
            table.c.program_id,
            table.c.topic,
            table.c.attempts,
            table.c.sequence,
            table.c.outbox_id,
            column("payload", String()),  # the stored text: the body is built from it
            events.c.created_at,
            events.c.member_id,
            column("customer_id", String()),
        )
    )


_CLAIMS = {skip_locked: _claim_statement(skip_locked) for skip_locked in (False, True)}


async def claim_due(
    session: AsyncSession,
    program_id: str,
    url: str,
    now: datetime,
    limit: int,
    *,
    lease: str,
    lease_until: datetime,
    skip_locked: bool,
) -> list[DueDelivery]:
    """Up to `limit` deliveries to one endpoint due at `now`, the oldest due, leased to
    `lease` until `lease_until`, in the order of their ids; none while the endpoint is
    disabled. One statement (`_CLAIM`)."""
    rows = await session.execute(
        _CLAIMS[skip_locked],
        {
            "lease": lease,
            "lease_until": lease_until,
            "now": now,
            "program_id": program_id,
            "url": url,
            "limit": limit,
        },
    )
    return sorted((DueDelivery(*row) for row in rows.all()), key=lambda row: row.id)


async def due_endpoints(session: AsyncSession, now: datetime) -> list[tuple[str, str]]:
    """(program id, url) of the endpoints with a delivery due at `now`."""
    rows = await session.execute(
        select(WebhookDelivery.program_id, WebhookDelivery.endpoint)
        .where(
            WebhookDelivery.direction == DeliveryDirection.OUT,
            WebhookDelivery.outcome == DeliveryOutcome.PENDING,
            WebhookDelivery.next_attempt_at <= now,
        )
        .distinct()
    )
    return [(program_id, url) for program_id, url in rows.all()]


async def events_by_ids(session: AsyncSession, ids: Sequence[int]) -> dict[int, OutboxEvent]:
    rows = await session.scalars(select(OutboxEvent).where(OutboxEvent.id.in_(ids)))
    return {row.id: row for row in rows}


async def members_by_ids(session: AsyncSession, ids: Sequence[int]) -> dict[int, Member]:
    rows = await session.scalars(select(Member).where(Member.id.in_(ids)))
    return {row.id: row for row in rows}


def _sequences_statement() -> Any:
    """The statement of `member_sequences`, built once: per member of the batch, its
    events before its first one in the batch counted once (a materialized CTE), and the
    ones from there to its last numbered by `row_number`."""
    outbox = cast(Table, OutboxEvent.__table__)
    batch, earlier, spanned = outbox.alias("batch"), outbox.alias("earlier"), outbox.alias("e")
    types: Any = bindparam("types", expanding=True)
    span = (
        select(
            batch.c.member_id, func.min(batch.c.id).label("lo"), func.max(batch.c.id).label("hi")
        )
        .where(batch.c.id.in_(bindparam("ids", expanding=True)), batch.c.member_id.is_not(None))
        .group_by(batch.c.member_id)
        .subquery("span")
    )
    before = (
        select(func.count())
        .where(
            earlier.c.member_id == span.c.member_id,
            earlier.c.type.in_(types),
            earlier.c.id < span.c.lo,
        )
        .scalar_subquery()
    )
    members = (
        select(span.c.member_id, span.c.lo, span.c.hi, before.label("before"))
        .cte("members")
        .prefix_with("MATERIALIZED")
    )
    number = members.c.before + func.row_number().over(
        partition_by=spanned.c.member_id, order_by=spanned.c.id
    )
    return select(spanned.c.id, number).join_from(
        members,
        spanned,
        and_(
            spanned.c.member_id == members.c.member_id,
            spanned.c.id >= members.c.lo,
            spanned.c.id <= members.c.hi,
            spanned.c.type.in_(types),
        ),
    )


_SEQUENCES = _sequences_statement()


async def member_sequences(
    session: AsyncSession, events: Sequence[tuple[int | None, int]], types: Sequence[str]
) -> dict[int, int]:
    """Each event's sequence number: how many of its member's events of `types` the
    outbox holds up to it (a member's writes are serialized by its account lock, so its
    events' ids follow their commit order). `events`: (member id, event id) pairs. One
    statement for the batch, whatever the number of members (`_sequences_statement`)."""
    ids = [event_id for member_id, event_id in events if member_id is not None]
    if not ids:
        return {}
    rows = await session.execute(_SEQUENCES, {"ids": ids, "types": list(types)})
    return {event_id: int(sequence) for event_id, sequence in rows.all()}


@dataclass(frozen=True)
class AttemptRecord:
    """One attempt to record: what it gave and what follows from it."""

    delivery_id: int
    lease: str
    outcome: DeliveryOutcome
    next_attempt_at: datetime | None
    status: int | None
    sequence: int | None
    attempt: dict[str, Any]


# Recording a batch is one UPDATE joined to the batch itself, passed as one JSON array
# parameter (one row per attempt: id, lease, outcome, next attempt, status, sequence,
# attempt): the database appends each attempt to its delivery's log and trims the log,
# so no row is read first and no log is decoded or encoded here, and RETURNING names the
# deliveries whose lease was still the recorder's. SQLAlchemy's executemany cannot say
# which rows matched and spends more on per-row parameters than the database on the rows.
_RECORD_SQLITE = """
UPDATE webhook_deliveries AS d SET
    attempts = d.attempts + 1,
    attempt_log = json_insert(
        CASE WHEN json_array_length(d.attempt_log) >= :log_limit
            THEN json_remove(d.attempt_log, '$[0]') ELSE d.attempt_log END,
        '$[#]', json(json_extract(b.value, '$[6]'))),
    outcome = json_extract(b.value, '$[2]'),
    next_attempt_at = json_extract(b.value, '$[3]'),
    last_status = json_extract(b.value, '$[4]'),
    lease = NULL,
    sequence = coalesce(json_extract(b.value, '$[5]'), d.sequence),
    updated_at = :at
FROM json_each(:batch) AS b
WHERE d.id = json_extract(b.value, '$[0]') AND d.lease = json_extract(b.value, '$[1]')
RETURNING id
"""
_RECORD_POSTGRESQL = """
UPDATE webhook_deliveries AS d SET
    attempts = d.attempts + 1,
    attempt_log = CAST(
        (CASE WHEN json_array_length(d.attempt_log) >= :log_limit
            THEN CAST(d.attempt_log AS jsonb) - 0 ELSE CAST(d.attempt_log AS jsonb) END)
        || jsonb_build_array(b.value -> 6) AS json),
    outcome = b.value ->> 2,
    next_attempt_at = CAST(b.value ->> 3 AS timestamptz),
    last_status = CAST(b.value ->> 4 AS integer),
    lease = NULL,
    sequence = coalesce(CAST(b.value ->> 5 AS bigint), d.sequence),
    updated_at = :at
FROM jsonb_array_elements(CAST(:batch AS jsonb)) AS b(value)
WHERE d.id = CAST(b.value ->> 0 AS bigint) AND d.lease = b.value ->> 1
RETURNING d.id
"""


async def record_attempts(
    session: AsyncSession, records: Sequence[AttemptRecord], *, log_limit: int, at: datetime
) -> list[AttemptRecord]:
    """Record attempts of deliveries still leased to the dispatcher that made them; the
    ones recorded (a lease is lost when it ran out and another dispatcher took the
    delivery, or when an operator retried it meanwhile). One statement for the batch."""
    if not records:
        return []
    sqlite = session.get_bind().dialect.name == "sqlite"
    batch = [
        [
            record.delivery_id,
            record.lease,
            str(record.outcome),
            _stored_instant(record.next_attempt_at, sqlite),
            record.status,
            record.sequence,
            record.attempt,
        ]
        for record in sorted(records, key=lambda record: record.delivery_id)
    ]
    statement = text(_RECORD_SQLITE if sqlite else _RECORD_POSTGRESQL).bindparams(
        bindparam("at", type_=_DELIVERIES.c.updated_at.type)
    )
    result = await session.execute(
        statement,
        {"batch": _json_text(batch), "log_limit": log_limit, "at": at},
    )
    ids = set(result.scalars().all())
    return [record for record in records if record.delivery_id in ids]


def _json_text(value: Any) -> str:
    """orjson, or the standard library for what orjson refuses (a lone surrogate in an
    error message)."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":"))


def _stored_instant(value: datetime | None, sqlite: bool) -> str | None:
    """`value` as the column stores it: on SQLite the naive UTC text SQLAlchemy writes
    (due rows are found by comparing that text), on PostgreSQL ISO 8601 with its offset."""
    if value is None:
        return None
    value = value.astimezone(UTC)
    if sqlite:
        return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    return value.isoformat()


# -- inbound deliveries (a platform's webhooks to the gateway) --------------------------


async def received(
    session: AsyncSession, program_id: str, source: str, event_id: str, *, lock: bool = False
) -> WebhookDelivery | None:
    """The inbound delivery of `source` with the platform's id `event_id`, if any."""
    query = select(WebhookDelivery).where(
        WebhookDelivery.program_id == program_id,
        WebhookDelivery.direction == DeliveryDirection.IN,
        WebhookDelivery.endpoint == source,
        WebhookDelivery.event_id == event_id,
    )
    if lock:
        query = query.with_for_update()
    return await session.scalar(query)


async def add_received(session: AsyncSession, delivery: WebhookDelivery) -> None:
    """Insert an inbound delivery; an IntegrityError when another request recorded the
    same (program, source, event id) first."""
    session.add(delivery)
    await session.flush()
