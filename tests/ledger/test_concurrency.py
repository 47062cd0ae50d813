"""Races on real connections: 40 requests at once, each in its own transaction.

PostgreSQL runs them truly in parallel (row locks decide); SQLite queues writers on its
database lock (BEGIN IMMEDIATE). The outcome must be the same on both.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from ledger.commands import (
    AdjustPoints,
    CapturePoints,
    Command,
    EnrollMember,
    HoldPoints,
    MemberRef,
    Outcome,
    RedeemReward,
    ReleasePoints,
)
from ledger.db import Database
from ledger.models import Entry, EntryKind, Member, Order, Reward
from ledger.service import LoyaltyService
from tests.support.ledger import (
    T0,
    Clock,
    check_invariants,
    enroll,
    item,
    make_program,
    purchase,
    run,
    state,
)

PARALLEL = 40


def rounds(database: Database) -> int:
    """Repeat PostgreSQL races; SQLite's queue of writers is deterministic and slow."""
    return 1 if database.is_sqlite else 3


@pytest.fixture
async def racing(database_url: str) -> AsyncIterator[tuple[Database, LoyaltyService]]:
    """A ledger with a connection pool wide enough for every racer."""
    database = Database(database_url, pool_size=PARALLEL + 5, max_overflow=0)
    program = make_program(
        rewards=[
            {"id": "five-off", "name": "$5 off", "cost": 500},
            {"id": "last-one", "name": "Last one", "cost": 100, "stock": 1},
        ]
    )
    service = LoyaltyService({program.id: program}, clock=Clock())
    async with database.transaction() as session:
        await service.seed_rewards(session, program.id)
    yield database, service
    await database.dispose()


async def race(
    database: Database, service: LoyaltyService, commands: list[Command]
) -> list[Outcome]:
    return await asyncio.gather(*(run(database, service, command) for command in commands))


def codes(outcomes: list[Outcome]) -> Counter[str]:
    return Counter(o.problem.code if o.problem else "OK" for o in outcomes)


async def count(database: Database, query: object) -> int:
    async with database.reading() as session:
        return int(await session.scalar(query) or 0)  # type: ignore[call-overload]


async def invariants(database: Database) -> None:
    async with database.reading() as session:
        await check_invariants(session)


async def test_one_balance_one_redemption(racing: tuple[Database, LoyaltyService]) -> None:
    database, service = racing
    for round_ in range(rounds(database)):
        member = await enroll(database, service, f"ada-{round_}")  # 100 signup points
        top_up = AdjustPoints(f"top-{round_}", MemberRef(id=member), 400, "top up")
        assert (await run(database, service, top_up)).ok  # exactly one reward's worth
        outcomes = await race(
            database,
            service,
            [
                RedeemReward(f"r{round_}-{i}", MemberRef(id=member), "five-off")
                for i in range(PARALLEL)
            ],
        )
        assert codes(outcomes) == {"OK": 1, "INSUFFICIENT_POINTS": PARALLEL - 1}
        balance = await state(database, member)
        assert (balance.available, balance.held) == (0, 0)
        redeems = (
            select(func.count())
            .select_from(Entry)
            .where(Entry.member_id == member, Entry.kind == EntryKind.REDEEM)
        )
        assert await count(database, redeems) == 1
    await invariants(database)


async def test_one_key_one_effect(racing: tuple[Database, LoyaltyService]) -> None:
    database, service = racing
    member = await enroll(database, service, "ada")
    for round_ in range(rounds(database)):
        same = AdjustPoints(f"same-{round_}", MemberRef(id=member), 10, "goodwill")
        outcomes = await race(database, service, [same] * PARALLEL)
        assert all(o.ok for o in outcomes), codes(outcomes)
        assert len({o.entry_id for o in outcomes}) == 1
        assert sum(not o.replayed for o in outcomes) == 1
        order = purchase(f"buy-{round_}", "ada", f"A-{round_}", item("10.00"))
        outcomes = await race(database, service, [order] * PARALLEL)
        assert all(o.ok for o in outcomes) and len({o.entry_id for o in outcomes}) == 1
    n = rounds(database)
    assert (await state(database, member)).available == 100 + n * 10
    assert (await state(database, member)).pending == n * 10
    assert await count(database, select(func.count()).select_from(Order)) == n
    await invariants(database)


async def test_the_last_unit_goes_to_one_member(racing: tuple[Database, LoyaltyService]) -> None:
    database, service = racing
    members = [await enroll(database, service, f"m{i}") for i in range(PARALLEL)]
    outcomes = await race(
        database,
        service,
        [RedeemReward(f"r{m}", MemberRef(id=m), "last-one") for m in members],
    )
    assert codes(outcomes) == {"OK": 1, "OUT_OF_STOCK": PARALLEL - 1}
    winner = next(o.member_id for o in outcomes if o.ok)
    for member in members:
        assert (await state(database, member)).available == (0 if member == winner else 100)
    async with database.reading() as session:
        reward = await session.get(Reward, ("test", "last-one"))
        assert reward is not None and reward.stock == 0
    await invariants(database)


async def test_holds_never_overspend_and_resolve_once(
    racing: tuple[Database, LoyaltyService],
) -> None:
    database, service = racing
    member = await enroll(database, service, "ada")
    await run(database, service, AdjustPoints("top", MemberRef(id=member), 200, "top up"))
    outcomes = await race(
        database,
        service,
        [HoldPoints(f"h{i}", MemberRef(id=member), 100, f"cart-{i}") for i in range(PARALLEL)],
    )
    assert codes(outcomes) == {"OK": 3, "INSUFFICIENT_POINTS": PARALLEL - 3}
    balance = await state(database, member)
    assert (balance.available, balance.held) == (0, 300)
    held = [o.hold_id for o in outcomes if o.ok and o.hold_id is not None]
    for index, hold_id in enumerate(held):
        contenders: list[Command] = []
        for i in range(PARALLEL // 2):
            contenders.append(CapturePoints(f"c{index}-{i}", hold_id))
            contenders.append(ReleasePoints(f"r{index}-{i}", hold_id))
        results = await race(database, service, contenders)
        assert codes(results) == {"OK": 1, "INVALID_STATE": PARALLEL - 1}
    balance = await state(database, member)
    assert balance.held == 0 and balance.available in (0, 100, 200, 300)
    await invariants(database)


async def test_one_enrolment_and_one_earn_per_order(
    racing: tuple[Database, LoyaltyService],
) -> None:
    database, service = racing
    enrolments = await race(
        database, service, [EnrollMember(f"e{i}", "ada") for i in range(PARALLEL)]
    )
    assert codes(enrolments) == {"OK": 1, "ALREADY_ENROLLED": PARALLEL - 1}
    assert await count(database, select(func.count()).select_from(Member)) == 1
    orders = await race(
        database,
        service,
        [purchase(f"p{i}", "ada", "A-1", item("25.00")) for i in range(PARALLEL)],
    )
    assert codes(orders) == {"OK": 1, "DUPLICATE_ORDER": PARALLEL - 1}
    # a new customer reported by many channels at once: enrolled once, earns once
    walk_ins = await race(
        database,
        service,
        [purchase(f"w{i}", "walk-in", f"W-{i}", item("5.00")) for i in range(PARALLEL)],
    )
    assert codes(walk_ins) == {"OK": PARALLEL}
    assert len({o.member_id for o in walk_ins}) == 1
    walk_in = walk_ins[0].member_id
    assert walk_in is not None
    assert (await state(database, walk_in)).pending == PARALLEL * 5
    await invariants(database)


async def test_jobs_on_two_replicas_at_once_do_the_work_once(
    racing: tuple[Database, LoyaltyService],
) -> None:
    database, service = racing
    member = await enroll(database, service, "ada")
    for i in range(5):
        await run(database, service, purchase(f"p{i}", "ada", f"A-{i}", item("10.00")))
    later = T0 + timedelta(days=15)

    async def jobs() -> int:
        async with database.transaction() as session:
            return (await service.run_jobs(session, "test", later)).activated

    activated = await asyncio.gather(*(jobs() for _ in range(4)))
    assert sum(activated) == 5
    balance = await state(database, member)
    assert (balance.available, balance.pending) == (150, 0)
    await invariants(database)
