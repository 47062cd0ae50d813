"""A process that writes a stream of ledger commands and acknowledges each after commit.

    python -m tests.support.crash_writer DATABASE_URL COUNT

Prints `ACK <key> <outcome as JSON>` once the command's transaction has committed, the
way a server answers a request. The crash test kills it with SIGKILL mid-stream.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from decimal import Decimal

from ledger.commands import (
    AdjustPoints,
    CapturePoints,
    Command,
    EnrollMember,
    HoldPoints,
    MemberRef,
    RecordPurchase,
    RedeemReward,
)
from ledger.db import Database
from ledger.rules import Line
from ledger.service import LoyaltyService
from tests.support.ledger import make_program

MEMBERS = 8
PAST = datetime(2026, 1, 5, 12, tzinfo=UTC)  # a Monday; purchases then are available now


def commands(count: int) -> list[Command]:
    """The same stream every run: enrolments, then purchases, spending and holds."""
    stream: list[Command] = [EnrollMember(f"enroll-{m}", f"cust-{m}") for m in range(MEMBERS)]
    for i in range(count):
        member = MemberRef(customer_id=f"cust-{i % MEMBERS}")
        match i % 5:
            case 0 | 1:
                line = Line(
                    f"SKU-{i}", "shoes" if i % 3 == 0 else None, 1 + i % 3, Decimal("37.50")
                )
                stream.append(
                    RecordPurchase(f"buy-{i}", member, f"ORD-{i}", "USD", (line,), occurred_at=PAST)
                )
            case 2:
                stream.append(AdjustPoints(f"adjust-{i}", member, -(i % 40) - 1, "till spend"))
            case 3:
                stream.append(RedeemReward(f"redeem-{i}", member, "tote"))
            case _:
                stream.append(HoldPoints(f"hold-{i}", member, 25, f"cart-{i}"))
    return stream


async def write(url: str, count: int) -> None:
    program = make_program()
    service = LoyaltyService({program.id: program})
    database = Database(url)
    try:
        async with database.transaction() as session:
            await service.seed_rewards(session, program.id)
        holds: list[int] = []
        for command in commands(count):
            async with database.transaction() as session:
                outcome = await service.execute(session, program.id, "till-7", command)
            print(f"ACK {command.idempotency_key} {json.dumps(outcome.to_json())}", flush=True)
            if outcome.hold_id is not None and len(holds) % 2 == 0:
                holds.append(outcome.hold_id)
                capture = CapturePoints(f"capture-{outcome.hold_id}", outcome.hold_id)
                async with database.transaction() as session:
                    captured = await service.execute(session, program.id, "till-7", capture)
                print(f"ACK {capture.idempotency_key} {json.dumps(captured.to_json())}", flush=True)
            elif outcome.hold_id is not None:
                holds.append(outcome.hold_id)
    finally:
        await database.dispose()
    print("DONE", flush=True)


if __name__ == "__main__":
    asyncio.run(write(sys.argv[1], int(sys.argv[2])))
