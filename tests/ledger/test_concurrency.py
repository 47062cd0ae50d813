"""Races on real connections: 40 requests at once, each in its own transaction.

Two replicas (two `Database` objects, two connection pools) share one database. On
PostgreSQL the racers run truly in parallel and row locks decide; SQLite queues writers
on its database lock (BEGIN IMMEDIATE + busy_timeout). Each race runs several rounds, and
the outcome must be the same on both databases.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import ColumnElement, func, select, text

from ledger.commands import (
    AdjustPoints,
    CapturePoints,
    Command,
    EnrollMember,
    ForgetMember,
    HoldPoints,
    MemberRef,
    Outcome,
    RedeemReward,
    ReleasePoints,
    UpsertReward,
)
from ledger.db import Database
from ledger.jobs import JobReport
from ledger.models import (
    Entry,
    EntryKind,
    Hold,
    HoldStatus,
    IdempotencyRecord,
    Member,
    Order,
    Redemption,
    Reward,
)
from ledger.service import LoyaltyService
from tests.conftest import postgres_url, sqlite_url
from tests.support.ledger import (
    Balances,
    Clock,
    check_invariants,
    enroll,
    item,
    make_program,
    program_data,
    purchase,
    run,
    state,
)

PARALLEL = 40
REPLICAS = 2
ROUNDS = {"postgres": 3, "sqlite": 1}  # SQLite's queue of writers is deterministic and slow
FIVE_OFF = 500
T = TypeVar("T")


@dataclass
class Ledger:
    """One database seen by two gateway replicas, each with its own pool of connections."""

    kind: str
    replicas: list[Database]
    service: LoyaltyService
    clock: Clock

    @property
    def database(self) -> Database:
        return self.replicas[0]

    @property
    def rounds(self) -> range:
        return range(ROUNDS[self.kind])


@pytest.fixture(params=["postgres"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh migrated database: PostgreSQL unless a test asks for SQLite too."""
    if request.param == "postgres":
        return postgres_url(request.getfixturevalue("postgres"))
    return sqlite_url(request.getfixturevalue("sqlite_template"), tmp_path)


@pytest.fixture
async def ledger(ledger_url: str) -> AsyncIterator[Ledger]:
    replicas = [
        Database(ledger_url, pool_size=PARALLEL + 5, max_overflow=10) for _ in range(REPLICAS)
    ]
    bonuses = {**program_data()["bonuses"], "max_referrals_per_month": 1000}
    program = make_program(bonuses=bonuses)
    clock = Clock()
    service = LoyaltyService({program.id: program}, clock=clock)
    async with replicas[0].transaction() as session:
        await service.seed_rewards(session, program.id)
    try:
        kind = "sqlite" if replicas[0].is_sqlite else "postgres"
        yield Ledger(kind, replicas, service, clock)
    finally:
        for replica in replicas:
            await replica.dispose()


both_databases = pytest.mark.parametrize("ledger_url", ["postgres", "sqlite"], indirect=True)


async def together(awaitables: Iterable[Awaitable[T]]) -> list[T]:
    """Await everything at once; any exception (a deadlock, a lock timeout) fails the test
    after every racer has finished, so no connection is left behind."""
    results = await asyncio.gather(*awaitables, return_exceptions=True)
    failures = [result for result in results if isinstance(result, BaseException)]
    assert not failures, failures[:3]
    return results  # type: ignore[return-value]


async def race(ledger: Ledger, commands: Sequence[Command]) -> list[Outcome]:
    """Each command in its own transaction, spread over the replicas, all at once."""
    return await together(
        run(ledger.replicas[i % REPLICAS], ledger.service, command)
        for i, command in enumerate(commands)
    )


@asynccontextmanager
async def watching(database: Database, member_id: int) -> AsyncIterator[list[Balances]]:
    """The member's committed balances, sampled over and over while the block runs."""
    seen: list[Balances] = []
    stop = asyncio.Event()

    async def watch() -> None:
        while not stop.is_set():
            seen.append(await state(database, member_id))
            await asyncio.sleep(0.001)

    watcher = asyncio.create_task(watch())
    try:
        yield seen
    finally:
        stop.set()
        await watcher


def never_negative(seen: list[Balances]) -> bool:
    return bool(seen) and all(b.available >= 0 and b.held >= 0 for b in seen)


def codes(outcomes: Sequence[Outcome]) -> Counter[str]:
    return Counter(o.problem.code if o.problem else "OK" for o in outcomes)


async def count(database: Database, model: Any, *where: ColumnElement[bool]) -> int:
    async with database.reading() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def invariants(ledger: Ledger) -> None:
    async with ledger.database.reading() as session:
        await check_invariants(session)


async def ok(ledger: Ledger, command: Command) -> Outcome:
    outcome = await run(ledger.database, ledger.service, command)
    assert outcome.ok, outcome
    return outcome


@both_databases
async def test_one_balance_pays_for_one_redemption(ledger: Ledger) -> None:
    for round_ in ledger.rounds:
        member = await enroll(ledger.database, ledger.service, f"ada-{round_}")  # 100 points
        await ok(ledger, AdjustPoints(f"top-{round_}", MemberRef(id=member), 650, "top up"))
        redeem = [
            RedeemReward(f"redeem-{round_}-{i}", MemberRef(id=member), "five-off")
            for i in range(PARALLEL)
        ]
        async with watching(ledger.database, member) as seen:
            outcomes = await race(ledger, redeem)

        assert codes(outcomes) == {"OK": 1, "INSUFFICIENT_POINTS": PARALLEL - 1}
        assert never_negative(seen)
        balance = await state(ledger.database, member)
        assert (balance.available, balance.held) == (750 - FIVE_OFF, 0)
        redeems = Entry.member_id == member, Entry.kind == EntryKind.REDEEM
        assert await count(ledger.database, Entry, *redeems) == 1
        assert await count(ledger.database, Redemption, Redemption.member_id == member) == 1
    await invariants(ledger)


@both_databases
async def test_one_key_runs_once(ledger: Ledger) -> None:
    member = await enroll(ledger.database, ledger.service, "ada")
    for round_ in ledger.rounds:
        same_adjust = AdjustPoints(f"adjust-{round_}", MemberRef(id=member), 10, "goodwill")
        same_purchase = purchase(f"buy-{round_}", "ada", f"A-{round_}", item("10.00"))
        for command in (same_adjust, same_purchase):
            outcomes = await race(ledger, [command] * PARALLEL)
            # Never a second execution, and no IDEMPOTENCY_CONFLICT either: a repeat waits
            # for the first run (its insert of the key blocks on the uncommitted row on
            # PostgreSQL, BEGIN IMMEDIATE queues it on SQLite), then replays its outcome.
            assert codes(outcomes) == {"OK": PARALLEL}, outcomes
            assert len({(o.member_id, o.entry_id) for o in outcomes}) == 1
            assert outcomes[0].member_id == member and outcomes[0].entry_id is not None
            assert sum(not o.replayed for o in outcomes) == 1

    n = len(ledger.rounds)
    adjusts = Entry.member_id == member, Entry.kind == EntryKind.ADJUST
    assert await count(ledger.database, Entry, *adjusts) == n
    assert await count(ledger.database, Entry, Entry.kind == EntryKind.EARN) == n
    assert await count(ledger.database, Order) == n
    assert await count(ledger.database, IdempotencyRecord) == 1 + 2 * n  # with the enrolment
    balance = await state(ledger.database, member)
    assert (balance.available, balance.pending) == (100 + 10 * n, 10 * n)
    await invariants(ledger)


async def test_the_last_unit_goes_to_one_member(ledger: Ledger) -> None:
    members = [await enroll(ledger.database, ledger.service, f"m{i}") for i in range(PARALLEL)]
    for round_ in ledger.rounds:
        reward = UpsertReward(f"last-{round_}", "The last one", cost=10, stock=1)
        async with ledger.database.transaction() as session:
            await ledger.service.upsert_reward(session, "test", reward)
        before = {m: (await state(ledger.database, m)).available for m in members}
        outcomes = await race(
            ledger,
            [RedeemReward(f"r{round_}-{m}", MemberRef(id=m), reward.id) for m in members],
        )

        assert codes(outcomes) == {"OK": 1, "OUT_OF_STOCK": PARALLEL - 1}
        winner = next(o.member_id for o in outcomes if o.ok)
        for member in members:
            spent = reward.cost if member == winner else 0
            assert (await state(ledger.database, member)).available == before[member] - spent
        async with ledger.database.reading() as session:
            stocked = await session.get(Reward, ("test", reward.id))
            assert stocked is not None and stocked.stock == 0
        assert await count(ledger.database, Redemption, Redemption.reward_id == reward.id) == 1
    await invariants(ledger)


async def put(database: Database, service: LoyaltyService, command: UpsertReward) -> Reward:
    async with database.transaction() as session:
        return await service.upsert_reward(session, "test", command)


def terms(reward: Reward | UpsertReward) -> tuple[object, ...]:
    return (reward.name, reward.cost, reward.min_tier, reward.stock, reward.per_member_limit)


@both_databases
async def test_two_first_puts_of_one_reward_settle_as_one_row(ledger: Ledger) -> None:
    for round_ in range(3 * ROUNDS[ledger.kind]):
        mug, cup = (
            UpsertReward(f"new-{round_}", "Mug", cost=80),
            UpsertReward(f"new-{round_}", "Cup", cost=90, min_tier="Silver", stock=3),
        )
        answers = await together(
            put(ledger.replicas[i], ledger.service, command) for i, command in enumerate((mug, cup))
        )

        assert [terms(answer) for answer in answers] == [terms(mug), terms(cup)]
        assert await count(ledger.database, Reward, Reward.id == mug.id) == 1
        async with ledger.database.reading() as session:
            stored = await session.get(Reward, ("test", mug.id))
        assert stored is not None and terms(stored) in {terms(mug), terms(cup)}


async def until_a_lock_is_awaited(database: Database) -> None:
    """Return once a connection to the server waits on a lock; fail after many tries
    (a bound on a hang, not a measurement)."""
    for _ in range(3000):
        async with database.reading() as session:
            waiting = await session.scalar(
                text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
            )
        if waiting:
            return
        await asyncio.sleep(0.02)
    pytest.fail("the second put never waited on the first one's insert")


async def test_a_first_put_that_collides_updates_the_committed_row(ledger: Ledger) -> None:
    """The second put reads no row, inserts, waits on the first's uncommitted insert, and
    (once that commits) updates the row instead: one row, the second put's terms."""
    mug = UpsertReward("collide", "Mug", cost=80)
    cup = UpsertReward("collide", "Cup", cost=90, stock=3, per_member_limit=1)
    async with ledger.replicas[0].transaction() as session:
        first = await ledger.service.upsert_reward(session, "test", mug)
        second = asyncio.create_task(put(ledger.replicas[1], ledger.service, cup))
        await until_a_lock_is_awaited(ledger.database)
    assert terms(first) == terms(mug)
    assert terms(await second) == terms(cup)
    assert await count(ledger.database, Reward, Reward.id == "collide") == 1
    async with ledger.database.reading() as session:
        stored = await session.get(Reward, ("test", "collide"))
    assert stored is not None and terms(stored) == terms(cup)


async def test_holds_never_overspend_and_resolve_once(ledger: Ledger) -> None:
    for round_ in ledger.rounds:
        member = await enroll(ledger.database, ledger.service, f"ada-{round_}")
        await ok(ledger, AdjustPoints(f"top-{round_}", MemberRef(id=member), 250, "top up"))
        holds = [
            HoldPoints(f"h{round_}-{i}", MemberRef(id=member), 100, f"cart-{round_}-{i}")
            for i in range(PARALLEL)
        ]
        async with watching(ledger.database, member) as seen:
            outcomes = await race(ledger, holds)

        assert codes(outcomes) == {"OK": 3, "INSUFFICIENT_POINTS": PARALLEL - 3}
        assert never_negative(seen)
        balance = await state(ledger.database, member)
        assert (balance.available, balance.held) == (50, 300)

        released = 0
        for hold_id in [o.hold_id for o in outcomes if o.hold_id is not None]:
            contenders: list[Command] = []
            for i in range(PARALLEL // 2):
                contenders.append(CapturePoints(f"c{hold_id}-{i}", hold_id))
                contenders.append(ReleasePoints(f"r{hold_id}-{i}", hold_id))
            results = await race(ledger, contenders)
            assert codes(results) == {"OK": 1, "INVALID_STATE": PARALLEL - 1}
            captured = any(r.ok for r in results[0::2])
            async with ledger.database.reading() as session:
                hold = await session.get(Hold, hold_id)
                assert hold is not None
                assert hold.status == (HoldStatus.CAPTURED if captured else HoldStatus.RELEASED)
            released += not captured

        balance = await state(ledger.database, member)
        assert (balance.available, balance.held) == (50 + 100 * released, 0)
        redeems = Entry.member_id == member, Entry.kind == EntryKind.REDEEM
        assert await count(ledger.database, Entry, *redeems) == 3 - released
    await invariants(ledger)


@both_databases
async def test_one_enrolment_per_customer_one_earn_per_order(ledger: Ledger) -> None:
    for round_ in ledger.rounds:
        customer = f"ada-{round_}"
        enrolments = await race(
            ledger, [EnrollMember(f"e{round_}-{i}", customer) for i in range(PARALLEL)]
        )
        assert codes(enrolments) == {"OK": 1, "ALREADY_ENROLLED": PARALLEL - 1}
        assert await count(ledger.database, Member, Member.customer_id == customer) == 1

        order = f"A-{round_}"
        orders = await race(
            ledger,
            [purchase(f"p{round_}-{i}", customer, order, item("25.00")) for i in range(PARALLEL)],
        )
        assert codes(orders) == {"OK": 1, "DUPLICATE_ORDER": PARALLEL - 1}
        assert await count(ledger.database, Order, Order.order_id == order) == 1
        earns = Entry.order_id == order, Entry.kind == EntryKind.EARN
        assert await count(ledger.database, Entry, *earns) == 1

        # A new customer reported by many channels at once: enrolled once, earns on each.
        walk_in = f"walk-in-{round_}"
        walk_ins = await race(
            ledger,
            [
                purchase(f"w{round_}-{i}", walk_in, f"W{round_}-{i}", item("5.00"))
                for i in range(PARALLEL)
            ],
        )
        assert codes(walk_ins) == {"OK": PARALLEL}
        (member,) = {o.member_id for o in walk_ins}
        assert member is not None
        assert await count(ledger.database, Member, Member.customer_id == walk_in) == 1
        assert (await state(ledger.database, member)).pending == PARALLEL * 5
    await invariants(ledger)


async def test_forgetting_a_member_amid_its_writes(ledger: Ledger) -> None:
    """Erasure changes the member row's unique key while other requests spend and earn
    on the same member: the two must take their locks in one order (no deadlock)."""
    for round_ in ledger.rounds:
        member = await enroll(ledger.database, ledger.service, f"ada-{round_}")
        await ok(ledger, AdjustPoints(f"top-{round_}", MemberRef(id=member), 900, "top up"))
        ref = MemberRef(id=member)
        commands: list[Command] = []
        for i in range(PARALLEL - 1):
            if i % 2:
                commands.append(AdjustPoints(f"a{round_}-{i}", ref, 5, "goodwill"))
            else:
                commands.append(HoldPoints(f"h{round_}-{i}", ref, 10, f"cart-{round_}-{i}"))
        commands.insert(PARALLEL // 4, ForgetMember(f"forget-{round_}", ref))
        outcomes = await race(ledger, commands)

        assert outcomes[PARALLEL // 4].ok
        assert set(codes(outcomes)) <= {"OK", "UNKNOWN_MEMBER"}
        async with ledger.database.reading() as session:
            forgotten = await session.get(Member, member)
            assert forgotten is not None and forgotten.customer_id == f"forgotten-{member}"
    await invariants(ledger)


async def test_jobs_and_first_purchases_of_referred_members(ledger: Ledger) -> None:
    """A referred member's first purchase locks two accounts (it pays the referrer too);
    the scheduled jobs lock many. Both must lock in one order, or they deadlock."""
    service, clock = ledger.service, ledger.clock
    for round_ in ledger.rounds:
        referrer = await enroll(ledger.database, service, f"referrer-{round_}")
        async with ledger.database.reading() as session:
            code = (await session.get(Member, referrer)).referral_code  # type: ignore[union-attr]
        referees = [
            await enroll(ledger.database, service, f"referee-{round_}-{i}", referral_code=code)
            for i in range(PARALLEL)
        ]
        # Stale holds to release: the referrer's too in even rounds; in odd rounds the
        # referrer is only reached later, when the jobs expire its signup points.
        holders = referees + [referrer] * (round_ % 2 == 0)
        for member in holders:
            await ok(ledger, HoldPoints(f"hold-{member}", MemberRef(id=member), 50, "cart"))
        clock.advance(days=366)

        async def jobs(database: Database) -> JobReport:
            async with database.transaction() as session:
                return await service.run_jobs(session, "test")

        first_purchases = [
            purchase(f"buy-{m}", f"referee-{round_}-{i}", f"R-{m}", item("10.00"))
            for i, m in enumerate(referees)
        ]
        purchases, reports = await asyncio.gather(
            race(ledger, first_purchases), together(jobs(db) for db in ledger.replicas)
        )

        assert codes(purchases) == {"OK": PARALLEL}
        assert sum(report.holds_released for report in reports) == len(holders)
        bonuses = Entry.member_id == referrer, Entry.source == "referrer"
        assert await count(ledger.database, Entry, *bonuses) == PARALLEL
        balance = await state(ledger.database, referrer)
        assert (balance.available, balance.held) == (500 * PARALLEL, 0)
    await invariants(ledger)
