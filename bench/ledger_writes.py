"""What a ledger write costs, as a ratio to the cheapest durable write of the same database.

The floor is one committed single-row INSERT transaction on the same SQLite file with the
same settings (WAL, synchronous=FULL, BEGIN IMMEDIATE), measured in the same run, so the
ratio holds on a noisy shared machine where absolute times do not.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import text

from gateway.migrate import upgrade_async
from ledger.commands import AdjustPoints, EnrollMember, MemberRef, RecordPurchase, RedeemReward
from ledger.db import Database
from ledger.program import DEMO_PROGRAM, load_program
from ledger.rules import Line
from ledger.service import LoyaltyService

ROUNDS = 5
PER_ROUND = 60


async def _timed(operation: Callable[[int], Awaitable[None]], start: int) -> float:
    """Median seconds per call over ROUNDS rounds of PER_ROUND calls."""
    samples = []
    for round_ in range(ROUNDS):
        began = time.perf_counter()
        for i in range(PER_ROUND):
            await operation(start + round_ * PER_ROUND + i)
        samples.append((time.perf_counter() - began) / PER_ROUND)
    return statistics.median(samples)


async def main() -> None:
    program = load_program(DEMO_PROGRAM)
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}"
        await upgrade_async(url)
        database = Database(url)
        now = datetime(2026, 6, 1, 12, tzinfo=UTC)
        service = LoyaltyService({program.id: program}, clock=lambda: now)
        async with database.transaction() as session:
            await session.execute(text("CREATE TABLE floor (id INTEGER PRIMARY KEY, v TEXT)"))
            await service.seed_rewards(session, program.id)
            await service.execute(session, program.id, "bench", EnrollMember("e", "bench-1"))

        async def floor(i: int) -> None:
            async with database.transaction() as session:
                await session.execute(text("INSERT INTO floor (v) VALUES (:v)"), {"v": str(i)})

        async def purchase(i: int) -> None:
            command = RecordPurchase(
                f"p{i}",
                MemberRef(customer_id="bench-1"),
                f"order-{i}",
                "USD",
                (
                    Line("SHOE", "shoes", 1, Decimal("80.00")),
                    Line("SOCK", "apparel", 3, Decimal("4.99")),
                ),
                occurred_at=now - timedelta(days=20),  # past pending, within backdating
            )
            async with database.transaction() as session:
                await service.execute(session, program.id, "bench", command)

        async def adjust(i: int) -> None:
            command = AdjustPoints(f"a{i}", MemberRef(customer_id="bench-1"), -5, "bench")
            async with database.transaction() as session:
                await service.execute(session, program.id, "bench", command)

        async def redeem(i: int) -> None:
            command = RedeemReward(f"r{i}", MemberRef(customer_id="bench-1"), "five-off")
            async with database.transaction() as session:
                await service.execute(session, program.id, "bench", command)

        async def replay(i: int) -> None:
            await purchase(i % PER_ROUND)

        base = await _timed(floor, 0)
        results = {
            "recordPurchase": await _timed(purchase, 0),
            "adjustPoints (spend)": await _timed(adjust, 0),
            "redeemReward": await _timed(redeem, 0),
            "idempotent replay": await _timed(replay, 0),
        }
        await database.dispose()
    print(f"floor: one committed INSERT on SQLite = {base * 1e3:.2f} ms")
    for name, seconds in results.items():
        print(f"{name:<24} {seconds / base:6.1f} × floor   ({seconds * 1e3:.2f} ms)")
