"""A process that writes a stream of ledger commands and acknowledges each after commit.

    python -m tests.support.crash_writer DATABASE_URL [PROGRAM_FILE] [--count N]

Without PROGRAM_FILE it runs the test program (`make_program()`). Each command runs in its
own transaction, as fast as the database allows; only once that transaction has committed
does the writer print, and flush,

    ACK <idempotency key> <entry id, else member id, else -> <outcome as JSON>

the way a server answers a request, then `DONE` at the end. `BEGIN <key>` before each
transaction tells the crash test when to kill it so that a write is in flight. Every run
writes the same commands with the same keys, so a second run over the same database
replays what the first one stored and runs the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from ledger.commands import (
    AdjustPoints,
    CapturePoints,
    Command,
    EnrollMember,
    HoldPoints,
    MemberRef,
    Outcome,
    RecordPurchase,
    RedeemReward,
    ReleasePoints,
)
from ledger.db import Database
from ledger.program import Program, load_program
from ledger.rules import Line
from ledger.service import LoyaltyService
from tests.support.ledger import T0, Clock, make_program

MEMBERS = 8
CLIENT = "till-7"
PAST = T0 - timedelta(days=30)  # beyond the pending days: purchase points are available


def stream(count: int) -> Iterator[Command]:
    """The commands of every run: enrolments, then purchases, spending and holds."""
    for m in range(MEMBERS):
        yield EnrollMember(f"enroll-{m}", f"cust-{m}")
    for i in range(count):
        member = MemberRef(customer_id=f"cust-{i % MEMBERS}")
        match i % 6:
            case 0 | 1:
                category = "shoes" if i % 3 == 0 else None
                line = Line(f"SKU-{i}", category, 1 + i % 3, Decimal("37.50"))
                yield RecordPurchase(
                    f"buy-{i}", member, f"ORD-{i}", "USD", (line,), occurred_at=PAST
                )
            case 2:
                points = 15 if i % 4 else -(i % 40) - 1
                yield AdjustPoints(f"adjust-{i}", member, points, "till correction")
            case 3:
                yield RedeemReward(f"redeem-{i}", member, "tote" if i % 4 == 1 else "five-off")
            case _:
                yield HoldPoints(f"hold-{i}", member, 25, f"cart-{i}")


def resolution(hold: HoldPoints, outcome: Outcome) -> Command | None:
    """Every held checkout is then captured or released, alternately."""
    if outcome.hold_id is None:
        return None
    if int(hold.order_id.removeprefix("cart-")) % 4 < 2:
        return CapturePoints(f"capture-{hold.idempotency_key}", outcome.hold_id)
    return ReleasePoints(f"release-{hold.idempotency_key}", outcome.hold_id)


def acknowledge(key: str, outcome: Outcome) -> None:
    effect = outcome.entry_id or outcome.member_id or "-"
    data = {**outcome.to_json(), "replayed": outcome.replayed}
    print(f"ACK {key} {effect} {json.dumps(data, sort_keys=True)}", flush=True)


async def write(url: str, program: Program, count: int) -> None:
    service = LoyaltyService({program.id: program}, clock=Clock())
    database = Database(url)

    async def execute(command: Command) -> Outcome:
        print(f"BEGIN {command.idempotency_key}", flush=True)
        async with database.transaction() as session:
            outcome = await service.execute(session, program.id, CLIENT, command)
        acknowledge(command.idempotency_key, outcome)  # committed: now it may be told
        return outcome

    try:
        async with database.transaction() as session:
            await service.seed_rewards(session, program.id)
        for command in stream(count):
            outcome = await execute(command)
            if isinstance(command, HoldPoints):
                follow_up = resolution(command, outcome)
                if follow_up is not None:
                    await execute(follow_up)
    finally:
        await database.dispose()
    print("DONE", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.support.crash_writer")
    parser.add_argument("url", help="database URL of a migrated ledger")
    parser.add_argument("program", nargs="?", type=Path, help="program file (default: test)")
    parser.add_argument("--count", type=int, default=150, help="commands after enrolments")
    args = parser.parse_args()
    program = load_program(args.program) if args.program else make_program()
    asyncio.run(write(args.url, program, args.count))


if __name__ == "__main__":
    main()
