"""`loyalty-gateway demo`: the embedded default on a throwaway SQLite ledger.

Seeds the bundled demo program with a few members and some history, then shows what the
ledger made of it.
"""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from gateway.migrate import upgrade_async
from gateway.settings import Settings
from ledger import repository
from ledger.commands import (
    AdjustPoints,
    Command,
    EnrollMember,
    HoldPoints,
    MemberRef,
    RecordAction,
    RecordPurchase,
    RedeemReward,
)
from ledger.db import Database
from ledger.program import DEMO_PROGRAM, load_program
from ledger.rules import Line
from ledger.service import LoyaltyService

DEMO_CLIENT = "demo"


async def seed(service: LoyaltyService, database: Database, program_id: str) -> list[int]:
    """Three members with purchases, a review, a redemption and an open checkout hold."""
    now = service.clock()
    months_ago = now - timedelta(days=60)
    commands: list[Command] = [
        EnrollMember("seed-ada", "cust-ada", email="ada@example.com", name="Ada Lovelace"),
        EnrollMember("seed-grace", "cust-grace", email="grace@example.com", name="Grace Hopper"),
        RecordPurchase(
            "seed-order-1001",
            MemberRef(customer_id="cust-ada"),
            "1001",
            "USD",
            (
                Line("SHOE-RED-42", "shoes", 1, Decimal("120.00"), Decimal("20.00")),
                Line("SOCKS-3PK", "apparel", 2, Decimal("12.50")),
                Line("GIFT-25", "gift-cards", 1, Decimal("25.00")),
            ),
            occurred_at=months_ago,
        ),
        RecordPurchase(
            "seed-order-1002",
            MemberRef(customer_id="cust-grace"),
            "1002",
            "USD",
            (Line("COAT-WOOL", "outerwear", 1, Decimal("1180.00")),),
            occurred_at=months_ago,
        ),
        RecordPurchase(
            "seed-order-1003",
            MemberRef(customer_id="cust-ada"),
            "1003",
            "USD",
            (Line("HAT-FELT", "accessories", 1, Decimal("45.00")),),
        ),
        RecordAction("seed-review-1", MemberRef(customer_id="cust-ada"), "product_review"),
        RedeemReward("seed-redeem-1", MemberRef(customer_id="cust-grace"), "free-shipping"),
        HoldPoints("seed-hold-1", MemberRef(customer_id="cust-ada"), 100, "1004"),
        AdjustPoints("seed-adjust-1", MemberRef(customer_id="cust-grace"), 50, "Late delivery"),
        RecordPurchase(
            "seed-order-2001",
            MemberRef(customer_id="cust-linus"),
            "2001",
            "USD",
            (Line("MUG", "home", 2, Decimal("9.99")),),
        ),
    ]
    async with database.transaction() as session:
        await service.seed_rewards(session, program_id)
    members = []
    for command in commands:
        async with database.transaction() as session:
            outcome = await service.execute(session, program_id, DEMO_CLIENT, command)
        if outcome.problem:
            raise RuntimeError(f"demo seed {command.idempotency_key}: {outcome.problem}")
        if outcome.member_id is not None and outcome.member_id not in members:
            members.append(outcome.member_id)
    return members


async def show(database: Database, program_id: str, member_ids: list[int]) -> None:
    print(f"{'member':<12}{'available':>10}{'pending':>9}{'held':>6}{'lifetime':>10}  tier")
    async with database.reading() as session:
        for member_id in member_ids:
            member = await repository.member_by_id(session, program_id, member_id)
            account = await repository.account(session, member_id)
            assert member is not None and account is not None
            print(
                f"{member.customer_id:<12}{account.available:>10}{account.pending:>9}"
                f"{account.held:>6}{account.lifetime_earned:>10}  {account.tier}"
            )


async def demo(directory: Path) -> None:
    url = f"sqlite+aiosqlite:///{directory / 'demo.db'}"
    await upgrade_async(url)
    program = load_program(DEMO_PROGRAM)
    service = LoyaltyService({program.id: program})
    database = Database(url)
    try:
        members = await seed(service, database, program.id)
        async with database.transaction() as session:
            await service.run_jobs(session, program.id, datetime.now(UTC))
        print(f"Demo program {program.name!r} ({program.id}) on {url}\n")
        await show(database, program.id, members)
    finally:
        await database.dispose()


def run_demo(settings: Settings) -> int:
    del settings  # the demo always runs the bundled program on a throwaway database
    with tempfile.TemporaryDirectory(prefix="loyalty-demo-") as directory:
        asyncio.run(demo(Path(directory)))
    return 0
