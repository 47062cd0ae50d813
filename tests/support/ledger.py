"""What ledger tests share: a test program, a clock you can move, invariant checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.commands import Command, EnrollMember, MemberRef, Outcome, RecordPurchase
from ledger.db import Database
from ledger.jobs import JobReport
from ledger.models import (
    Account,
    Base,
    Entry,
    EntryKind,
    EntryStatus,
    Hold,
    HoldStatus,
    Lot,
    LotStatus,
    OutboxEvent,
    Redemption,
)
from ledger.program import Program, parse_program
from ledger.rules import Line
from ledger.service import LoyaltyService

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # a Monday, 10:00 in New York


def program_data(**overrides: Any) -> dict[str, Any]:
    """A program file as a dict: pending points, expiry, tiers, bonuses, rewards."""
    data: dict[str, Any] = {
        "id": "test",
        "name": "Test Rewards",
        "currency": "USD",
        "timezone": "America/New_York",
        "point_value": "0.01",
        "pending_days": 14,
        "expiry_days": 365,
        "hold_minutes": 15,
        "auto_enroll": True,
        "earning": {
            "points_per_unit": "1",
            "exclude_categories": ["gift-cards"],
            "multipliers": [
                {"name": "Double shoes", "factor": "2", "categories": ["shoes"]},
                {"name": "Tuesday", "factor": "1.5", "weekdays": ["TUE"]},
            ],
        },
        "tiering": {"basis": "points", "window_days": 365},
        "tiers": [
            {"name": "Bronze", "threshold": 0},
            {"name": "Silver", "threshold": 1000, "earn_multiplier": "1.25"},
            {"name": "Gold", "threshold": 5000, "earn_multiplier": "1.5"},
        ],
        "bonuses": {
            "signup": 100,
            "birthday": 200,
            "referrer": 500,
            "referee": 250,
            "max_referrals_per_month": 2,
        },
        "actions": [{"type": "product_review", "points": 50, "per_day": 1, "per_member": 3}],
        "rewards": [
            {"id": "five-off", "name": "$5 off", "cost": 500},
            {"id": "tote", "name": "Tote bag", "cost": 300, "stock": 2, "per_member_limit": 1},
            {"id": "lounge", "name": "Lounge", "cost": 100, "min_tier": "Silver"},
        ],
    }
    data.update(overrides)
    return data


def make_program(**overrides: Any) -> Program:
    return parse_program(program_data(**overrides), "test.toml")


@dataclass
class Clock:
    """The service's clock, moved by the test."""

    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass
class Balances:
    available: int
    pending: int
    held: int
    lifetime_earned: int
    tier: str = field(default="")


async def balances(session: AsyncSession, member_id: int) -> Balances:
    account = await session.get(Account, member_id, populate_existing=True)
    assert account is not None
    return Balances(
        account.available, account.pending, account.held, account.lifetime_earned, account.tier
    )


async def check_invariants(session: AsyncSession) -> None:
    """DESIGN §8 (1, 2, 4, 5, 7) over every account of the database."""
    accounts = (
        await session.scalars(select(Account).execution_options(populate_existing=True))
    ).all()
    for account in accounts:
        entries = (
            await session.scalars(select(Entry).where(Entry.member_id == account.member_id))
        ).all()
        held = sum(
            hold.points
            for hold in (
                await session.scalars(select(Hold).where(Hold.member_id == account.member_id))
            ).all()
            if hold.status == HoldStatus.HELD
        )
        total = sum(entry.points for entry in entries)
        pending = sum(entry.points for entry in entries if entry.status == EntryStatus.PENDING)
        lifetime = sum(
            entry.points
            for entry in entries
            if entry.kind in (EntryKind.EARN, EntryKind.BONUS, EntryKind.REFUND)
            and entry.status != EntryStatus.PENDING
        )
        where = f"member {account.member_id}"
        # 1. balances rebuild from the entries (and the open holds) alone
        assert account.pending == pending, where
        assert account.held == held, where
        # holds move points from available to held without an entry
        assert account.available + account.pending + account.held == total, where
        assert account.lifetime_earned == lifetime, where
        # 2. never negative, unless an adjustment asked for it
        forced = any(entry.kind == EntryKind.ADJUST and entry.points < 0 for entry in entries)
        assert account.held >= 0, where
        assert account.pending >= 0, where
        assert account.available >= 0 or forced, where
        # the unspent points of available lots are exactly the positive balance
        lots = (await session.scalars(select(Lot).where(Lot.member_id == account.member_id))).all()
        assert all(lot.remaining >= 0 for lot in lots), where
        assert sum(lot.remaining for lot in lots if lot.status == LotStatus.AVAILABLE) == max(
            account.available, 0
        ), where
        assert sum(lot.remaining for lot in lots if lot.status == LotStatus.PENDING) == pending
    # 4. refunds never reverse more than the order earned
    refunds: dict[str, int] = {}
    earned: dict[str, int] = {}
    for entry in (await session.scalars(select(Entry))).all():
        if entry.order_id is None:
            continue
        if entry.kind == EntryKind.EARN:
            earned[entry.order_id] = earned.get(entry.order_id, 0) + entry.points
        elif entry.kind == EntryKind.REFUND:
            refunds[entry.order_id] = refunds.get(entry.order_id, 0) - entry.points
    for order_id, reversed_points in refunds.items():
        assert 0 <= reversed_points <= earned[order_id], order_id
    # 3. one earn per order
    earns = await session.execute(
        select(Entry.program_id, Entry.order_id, func.count())
        .where(Entry.kind == EntryKind.EARN)
        .group_by(Entry.program_id, Entry.order_id)
    )
    assert all(count == 1 for _, _, count in earns)
    # 5. a redemption resolves once: cancelled ones were returned exactly once
    for redemption in (await session.scalars(select(Redemption))).all():
        cancels = await session.scalar(
            select(func.count())
            .select_from(Entry)
            .where(
                Entry.kind == EntryKind.CANCEL,
                Entry.reason == f"Cancelled redemption {redemption.id}",
            )
        )
        assert cancels == (1 if redemption.status == "CANCELLED" else 0)
    for hold in (await session.scalars(select(Hold))).all():
        captured = hold.entry_id is not None
        assert captured == (hold.status == HoldStatus.CAPTURED)
    # 7. every entry has exactly one outbox event
    entry_ids = set((await session.scalars(select(Entry.id))).all())
    event_entry_ids = [
        entry_id
        for entry_id in (await session.scalars(select(OutboxEvent.entry_id))).all()
        if entry_id is not None
    ]
    assert sorted(event_entry_ids) == sorted(entry_ids)
    # ... and every hold (no entry) one event when placed and one when given back
    hold_events: dict[tuple[str, str], int] = {}
    for type_, payload in await session.execute(
        select(OutboxEvent.type, OutboxEvent.payload).where(
            OutboxEvent.type.in_(("points.held", "points.released"))
        )
    ):
        key = (type_, str(payload["holdId"]))
        hold_events[key] = hold_events.get(key, 0) + 1
    expected: dict[tuple[str, str], int] = {}
    for hold in (await session.scalars(select(Hold))).all():
        expected[("points.held", str(hold.id))] = 1
        if hold.status in (HoldStatus.RELEASED, HoldStatus.EXPIRED):
            expected[("points.released", str(hold.id))] = 1
    assert hold_events == expected


async def run(
    database: Database,
    service: LoyaltyService,
    command: Command,
    *,
    program: str = "test",
    client: str = "till-1",
) -> Outcome:
    """One command in its own transaction, as one request runs it."""
    return await service.execute_alone(database.transaction, program, client, command)


async def enroll(database: Database, service: LoyaltyService, customer: str, **kw: Any) -> int:
    outcome = await run(database, service, EnrollMember(f"enroll-{customer}", customer, **kw))
    assert outcome.ok and outcome.member_id is not None, outcome
    return outcome.member_id


def purchase(
    key: str,
    customer: str,
    order: str,
    *lines: Line,
    at: datetime | None = None,
    currency: str = "USD",
) -> RecordPurchase:
    return RecordPurchase(
        key, MemberRef(customer_id=customer), order, currency, tuple(lines), occurred_at=at
    )


def item(price: str, qty: int = 1, category: str | None = None, sku: str | None = None) -> Line:
    return Line(sku, category, qty, Decimal(price))


async def jobs(database: Database, service: LoyaltyService) -> JobReport:
    async with database.transaction() as session:
        return await service.run_jobs(session, "test")


async def state(database: Database, member_id: int) -> Balances:
    async with database.reading() as session:
        return await balances(session, member_id)


async def verify(database: Database) -> None:
    async with database.reading() as session:
        await check_invariants(session)


async def table_counts(database: Database) -> dict[str, int]:
    """Rows per table: what a refused command must leave unchanged."""
    counts = {}
    async with database.reading() as session:
        for table in Base.metadata.sorted_tables:
            counts[table.name] = int(
                await session.scalar(select(func.count()).select_from(table)) or 0
            )
    return counts
