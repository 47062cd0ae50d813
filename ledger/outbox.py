"""Domain events, written as outbox rows in the transaction of the change they report.

Each event carries the member's balances after the change, so subscribers and webhook
receivers never need to read the database back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ledger import webhooks
from ledger.models import Account, Entry, EntryKind, Hold, OutboxEvent
from ledger.program import Program

_WRITTEN = "loyalty_outbox_written"

ENTRY_EVENTS = {
    EntryKind.EARN: "points.earned",
    EntryKind.BONUS: "points.earned",
    EntryKind.REDEEM: "points.redeemed",
    EntryKind.CANCEL: "points.returned",
    EntryKind.REFUND: "points.refunded",
    EntryKind.ADJUST: "points.adjusted",
    EntryKind.EXPIRE: "points.expired",
}


# A checkout hold moves points between available and held without a ledger entry; its
# events say so with these kinds (never an entry's), and types no webhook list names
# unless it asks for them. A captured hold is the REDEEM entry it writes.
HOLD = "HOLD"
RELEASE = "RELEASE"
HOLD_EVENTS = {HOLD: "points.held", RELEASE: "points.released"}


# What an event may say about a person; erased from the member's events when forgotten.
PERSONAL_FIELDS = frozenset({"customerId", "email", "name", "birthday"})


def erased(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload without personal data: personal fields and adjustment reasons (free
    text an operator wrote about the member) become null; amounts and ids stay."""
    clean = {key: None if key in PERSONAL_FIELDS else value for key, value in payload.items()}
    if clean.get("kind") == EntryKind.ADJUST and "reason" in clean:
        clean["reason"] = None
    return clean


def balances(account: Account) -> dict[str, Any]:
    return {
        "memberId": str(account.member_id),
        "available": account.available,
        "pending": account.pending,
        "held": account.held,
        "lifetimeEarned": account.lifetime_earned,
        "tier": account.tier,
    }


def record_entry(
    session: AsyncSession,
    entry: Entry,
    account: Account,
    now: datetime,
    *,
    type_: str | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """The one event of a ledger entry (`points.earned`, `points.redeemed`, ...)."""
    payload = {
        **balances(account),
        "transactionId": str(entry.id),
        "kind": str(entry.kind),
        "delta": entry.points,
        "status": str(entry.status),
        "orderId": entry.order_id,
        "reason": entry.reason,
        "occurredAt": entry.occurred_at.isoformat(),
        **(extra or {}),
    }
    _add(
        session,
        OutboxEvent(
            program_id=entry.program_id,
            type=type_ or ENTRY_EVENTS[entry.kind],
            member_id=entry.member_id,
            entry_id=entry.id,
            payload=payload,
            occurred_at=entry.occurred_at,
            created_at=now,
        ),
    )


def record(
    session: AsyncSession,
    program_id: str,
    type_: str,
    account: Account,
    now: datetime,
    data: dict[str, Any],
    *,
    member_id: int | None = None,
) -> None:
    """An event that is not a ledger entry: enrolment, tier change, hold, activation."""
    if type_ == "tier.changed":
        _restate_tier(session, account)
    _add(
        session,
        OutboxEvent(
            program_id=program_id,
            type=type_,
            member_id=member_id if member_id is not None else account.member_id,
            payload={**balances(account), **data, "occurredAt": now.isoformat()},
            occurred_at=now,
            created_at=now,
        ),
    )


def record_hold(
    session: AsyncSession, held: Hold, account: Account, now: datetime, kind: str
) -> None:
    """The event of a hold placed (`HOLD`) or given back (`RELEASE`: released, or expired
    by the jobs): no entry, so no `transactionId`; `delta` is the change to `available`."""
    record(
        session,
        held.program_id,
        HOLD_EVENTS[kind],
        account,
        now,
        {
            "transactionId": None,
            "kind": kind,
            "delta": -held.points if kind == HOLD else held.points,
            "holdId": str(held.id),
            "holdStatus": str(held.status),  # HELD, RELEASED or EXPIRED
            "orderId": held.order_id,
            "points": held.points,
        },
    )


def _restate_tier(session: AsyncSession, account: Account) -> None:
    """The events this transaction already wrote for the member carry the tier after the
    change too: a purchase that crosses a threshold reports the tier it reached."""
    for event in _written(session):
        if event.member_id == account.member_id and event.published_at is None:
            event.payload = {**event.payload, "tier": account.tier}


def _add(session: AsyncSession, event: OutboxEvent) -> None:
    session.add(event)
    _written(session).append(event)  # the session holds flushed objects only weakly
    program: Program | None = session.info.get(webhooks.PROGRAM_KEY)
    if program is not None:
        webhooks.fan_out(session, program, event, event.created_at)


def _written(session: AsyncSession) -> list[OutboxEvent]:
    """The events this transaction wrote (one session is one transaction)."""
    written: list[OutboxEvent] = session.info.setdefault(_WRITTEN, [])
    return written
