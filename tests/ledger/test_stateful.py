"""The ledger against a simple model, one random history at a time (Hypothesis stateful).

Every step runs one command in its own transaction, as a request would, predicts its
outcome and the member's balances with an independent model, and then checks the
invariants of DESIGN §8 (1–5, 7) over the whole database. Where the model would have to
re-implement the ledger (which lot expires how much), it reads the EXPIRE entries the
job wrote and the invariants check that expiry only took unspent points.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select

from ledger import rules
from ledger.commands import (
    AdjustPoints,
    CancelRedemption,
    CapturePoints,
    Command,
    EnrollMember,
    HoldPoints,
    MemberRef,
    Outcome,
    RecordPurchase,
    RedeemReward,
    RefundPurchase,
    ReleasePoints,
    UseRedemption,
)
from ledger.db import Database
from ledger.jobs import IDEMPOTENCY_RETENTION
from ledger.models import Account, Entry, EntryKind, Member, Redemption
from ledger.rules import Line
from ledger.service import LoyaltyService
from tests.conftest import postgres_url, sqlite_url
from tests.support.ledger import Clock, check_invariants, make_program
from tests.support.postgres import PostgresServer

T = TypeVar("T")
PROGRAM = make_program()
ZONE = PROGRAM.zone
CUSTOMERS = ["c0", "c1", "c2", "c3"]
ORDERS = [f"O-{i}" for i in range(8)]
PRICES = [Decimal("1.00"), Decimal("9.99"), Decimal("25.50"), Decimal("120.00")]
CATEGORIES = [None, "shoes", "gift-cards", "apparel"]
# reward: (cost, stock, per-member limit, minimum tier), as in the test program
REWARDS: dict[str, tuple[int, int | None, int | None, str | None]] = {
    "five-off": (500, None, None, None),
    "tote": (300, 2, 1, None),
    "lounge": (100, None, None, "Silver"),
}
TIER_RANK = {"Bronze": 0, "Silver": 1, "Gold": 2}
COUNTS = {"examples": 0, "steps": 0}
NOT_KEPT = {"INVALID_AMOUNT", "INVALID_INPUT", "CURRENCY_MISMATCH"}


@dataclass
class ModelOrder:
    member: str
    points: int
    lines: list[tuple[Decimal, Decimal, int]]  # (unit amount, factor, quantity) per sku index
    available_at: datetime
    pending_left: int
    refunded: list[int]
    refunded_amount: Decimal = Decimal(0)
    reversed: int = 0

    @property
    def weighted(self) -> Fraction:
        return sum((Fraction(a) * Fraction(f) * q for a, f, q in self.lines), Fraction(0))

    @property
    def eligible(self) -> Fraction:
        return sum((Fraction(a) * q for a, _, q in self.lines), Fraction(0))


@dataclass
class ModelMember:
    member_id: int
    available: int = 0
    pending: int = 0
    held: int = 0
    referred_by: str | None = None
    purchased: bool = False
    redeemed: dict[str, int] = field(default_factory=dict)


@dataclass
class ModelHold:
    member: str
    points: int
    expires_at: datetime
    status: str = "HELD"


@dataclass
class ModelRedemption:
    member: str
    reward: str
    code: str
    status: str = "ISSUED"


class LedgerMachine(RuleBasedStateMachine):
    """One member base, one clock, one database per example."""

    make_url: Callable[[], str] = staticmethod(lambda: "")

    def __init__(self) -> None:
        super().__init__()
        COUNTS["examples"] += 1
        self.loop = asyncio.new_event_loop()
        self.database = Database(self.make_url())
        self.clock = Clock()
        self.service = LoyaltyService({PROGRAM.id: PROGRAM}, clock=self.clock)
        self.members: dict[str, ModelMember] = {}
        self.orders: dict[str, ModelOrder] = {}
        self.holds: dict[int, ModelHold] = {}
        self.redemptions: dict[int, ModelRedemption] = {}
        self.stock = {"tote": 2}
        self.referrals: list[tuple[str, datetime]] = []
        # (command, outcome, when its key was first used: retention counts from then)
        self.history: list[tuple[Command, Outcome, datetime]] = []
        self.first_runs: dict[str, datetime] = {}
        self.last_expire_id = 0
        self.keys = 0

    def teardown(self) -> None:
        self.await_(self.database.dispose())
        self.loop.close()

    def await_(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def key(self) -> str:
        self.keys += 1
        return f"k{self.keys}"

    def execute(self, command: Command, *, remember: bool = True) -> Outcome:
        COUNTS["steps"] += 1

        # As a request runs it: alone in its transaction, no savepoint unless refused
        # after writing.
        transaction = self.database.transaction
        outcome = self.await_(
            self.service.execute_alone(transaction, PROGRAM.id, "machine", command)
        )
        first_run = self.first_runs.setdefault(command.idempotency_key, self.clock.now)
        if remember:
            self.history.append((command, outcome, first_run))
        return outcome

    def replayable(self) -> list[tuple[Command, Outcome]]:
        """Commands whose outcome a repeat must get back: kept, and not yet purged."""
        return [
            (command, outcome)
            for command, outcome, at in self.history
            if self.clock.now - at < IDEMPOTENCY_RETENTION
            and (outcome.problem is None or outcome.problem.code not in NOT_KEPT)
        ]

    def code(self, outcome: Outcome) -> str:
        return outcome.problem.code if outcome.problem else "OK"

    async def _read(self, query: Any) -> Any:
        async with self.database.reading() as session:
            return (await session.scalars(query)).all()

    def tier(self, customer: str) -> str:
        member = self.members[customer]
        rows = self.await_(self._read(select(Account).where(Account.member_id == member.member_id)))
        return str(rows[0].tier)

    @initialize()
    def seed(self) -> None:
        self.await_(self._seed())

    async def _seed(self) -> None:
        async with self.database.transaction() as session:
            await self.service.seed_rewards(session, PROGRAM.id)

    # -- members -----------------------------------------------------------------------

    def _enrolled(self, customer: str, member_id: int, referred_by: str | None) -> None:
        self.members[customer] = ModelMember(member_id, available=100, referred_by=referred_by)

    @rule(customer=st.sampled_from(CUSTOMERS), refer=st.booleans())
    def enroll(self, customer: str, refer: bool) -> None:
        referrer = next((c for c in self.members if c != customer), None) if refer else None
        code = None
        if referrer is not None:
            member_id = self.members[referrer].member_id
            codes = self.await_(
                self._read(select(Member.referral_code).where(Member.id == member_id))
            )
            code = str(codes[0])
        outcome = self.execute(
            EnrollMember(self.key(), customer, email=f"{customer}@example.com", referral_code=code)
        )
        if customer in self.members:
            assert self.code(outcome) == "ALREADY_ENROLLED"
            return
        if referrer is not None:
            local = self.clock.now.astimezone(ZONE)
            this_month = [
                r
                for r, at in self.referrals
                if r == referrer
                and (at.astimezone(ZONE).year, at.astimezone(ZONE).month)
                == (local.year, local.month)
            ]
            if len(this_month) >= PROGRAM.bonuses.max_referrals_per_month:
                assert self.code(outcome) == "LIMIT_REACHED"
                return
            self.referrals.append((referrer, self.clock.now))
        assert self.code(outcome) == "OK", outcome
        assert outcome.member_id is not None
        self._enrolled(customer, outcome.member_id, referrer)

    # -- purchases and refunds -----------------------------------------------------------

    @rule(
        customer=st.sampled_from(CUSTOMERS),
        order=st.sampled_from(ORDERS),
        lines=st.lists(
            st.tuples(st.sampled_from(PRICES), st.integers(1, 3), st.sampled_from(CATEGORIES)),
            min_size=1,
            max_size=3,
        ),
        days_ago=st.sampled_from([0, 0, 3, 20]),
    )
    def purchase(
        self,
        customer: str,
        order: str,
        lines: list[tuple[Decimal, int, str | None]],
        days_ago: int,
    ) -> None:
        occurred = self.clock.now - timedelta(days=days_ago)
        command = RecordPurchase(
            self.key(),
            MemberRef(customer_id=customer),
            order,
            "USD",
            tuple(Line(f"S{i}", cat, qty, price) for i, (price, qty, cat) in enumerate(lines)),
            occurred_at=occurred if days_ago else None,
        )
        tier = self.tier(customer) if customer in self.members else "Bronze"
        outcome = self.execute(command)
        if order in self.orders:
            assert self.code(outcome) == "DUPLICATE_ORDER"
            return
        assert self.code(outcome) == "OK", outcome
        if customer not in self.members:
            assert outcome.member_id is not None
            self._enrolled(customer, outcome.member_id, None)
        member = self.members[customer]
        tuesday = occurred.astimezone(ZONE).weekday() == 1
        model_lines = []
        for price, qty, category in lines:
            factor = Decimal(2 if category == "shoes" else 1) * Decimal("1.5" if tuesday else 1)
            amount = Decimal(0) if category == "gift-cards" else price
            model_lines.append((amount, factor, qty))
        multiplier = Fraction(PROGRAM.tier(tier).earn_multiplier)
        weighted = sum((Fraction(a) * Fraction(f) * q for a, f, q in model_lines), Fraction(0))
        points = math.floor(weighted * multiplier)
        available_at = occurred + timedelta(days=PROGRAM.pending_days)
        pending = available_at > self.clock.now
        self.orders[order] = ModelOrder(
            customer, points, model_lines, available_at, points if pending else 0, [0] * len(lines)
        )
        if pending:
            member.pending += points
        else:
            self._credit(member, points)
        if member.referred_by is not None and not member.purchased:
            self._credit(member, PROGRAM.bonuses.referee)
            self._credit(self.members[member.referred_by], PROGRAM.bonuses.referrer)
        member.purchased = True

    def _credit(self, member: ModelMember, points: int) -> None:
        member.available += points

    @precondition(lambda self: bool(self.orders))
    @rule(data=st.data(), by_amount=st.booleans())
    def refund(self, data: st.DataObject, by_amount: bool) -> None:
        order_id = data.draw(st.sampled_from(sorted(self.orders)))
        order = self.orders[order_id]
        refunded = list(order.refunded)
        amount = order.refunded_amount
        if by_amount:
            value = data.draw(
                st.sampled_from([Decimal("1.00"), Decimal("10.00"), Decimal("60.00")])
            )
            command = RefundPurchase(self.key(), order_id, amount=value)
            amount += value
        else:
            index = data.draw(st.integers(0, len(order.lines) - 1))
            qty = data.draw(st.integers(1, 2))
            command = RefundPurchase(self.key(), order_id, lines=((f"S{index}", qty),))
            refunded[index] += qty
        outcome = self.execute(command)
        too_many = any(r > q for r, (_, _, q) in zip(refunded, order.lines, strict=True))
        refunded_eligible = Fraction(amount) + sum(
            (Fraction(a) * r for r, (a, _, _) in zip(refunded, order.lines, strict=True)),
            Fraction(0),
        )
        if too_many or refunded_eligible > order.eligible:
            assert self.code(outcome) == "INVALID_AMOUNT", outcome
            return
        assert self.code(outcome) == "OK", outcome
        weight = sum(
            (
                Fraction(a) * Fraction(f) * r
                for r, (a, f, _) in zip(refunded, order.lines, strict=True)
            ),
            Fraction(0),
        )
        if order.eligible:
            weight += Fraction(amount) * order.weighted / order.eligible
        total = (
            min(
                order.points,
                math.floor(order.points * min(weight, order.weighted) / order.weighted),
            )
            if order.weighted and order.points
            else 0
        )
        due = total - order.reversed
        order.reversed, order.refunded, order.refunded_amount = total, refunded, amount
        member = self.members[order.member]
        if order.available_at > self.clock.now:
            order.pending_left -= due
            member.pending -= due
        else:
            member.available -= min(due, max(member.available, 0))

    # -- spending ------------------------------------------------------------------------

    @precondition(lambda self: bool(self.members))
    @rule(data=st.data(), reward=st.sampled_from(sorted(REWARDS)))
    def redeem(self, data: st.DataObject, reward: str) -> None:
        customer = data.draw(st.sampled_from(sorted(self.members)))
        member = self.members[customer]
        cost, stock, limit, min_tier = REWARDS[reward]
        tier = self.tier(customer)
        outcome = self.execute(RedeemReward(self.key(), MemberRef(id=member.member_id), reward))
        if min_tier is not None and TIER_RANK[tier] < TIER_RANK[min_tier]:
            expected = "TIER_REQUIRED"
        elif limit is not None and member.redeemed.get(reward, 0) >= limit:
            expected = "LIMIT_REACHED"
        elif member.available < cost:
            expected = "INSUFFICIENT_POINTS"
        elif stock is not None and self.stock[reward] == 0:
            expected = "OUT_OF_STOCK"
        else:
            expected = "OK"
        assert self.code(outcome) == expected, (outcome, member)
        if expected != "OK":
            return
        assert outcome.redemption_id is not None
        member.available -= cost
        member.redeemed[reward] = member.redeemed.get(reward, 0) + 1
        if reward in self.stock:
            self.stock[reward] -= 1
        codes = self.await_(
            self._read(select(Redemption.code).where(Redemption.id == outcome.redemption_id))
        )
        self.redemptions[outcome.redemption_id] = ModelRedemption(customer, reward, str(codes[0]))

    @precondition(lambda self: bool(self.redemptions))
    @rule(data=st.data(), use=st.booleans())
    def resolve_redemption(self, data: st.DataObject, use: bool) -> None:
        redemption_id = data.draw(st.sampled_from(sorted(self.redemptions)))
        redemption = self.redemptions[redemption_id]
        command: Command = (
            UseRedemption(self.key(), redemption.code, "till-order")
            if use
            else CancelRedemption(self.key(), redemption_id)
        )
        outcome = self.execute(command)
        if redemption.status != "ISSUED":
            assert self.code(outcome) == "INVALID_STATE"
            return
        assert self.code(outcome) == "OK", outcome
        if use:
            redemption.status = "USED"
            return
        redemption.status = "CANCELLED"
        member = self.members[redemption.member]
        member.available += REWARDS[redemption.reward][0]
        member.redeemed[redemption.reward] -= 1
        if redemption.reward in self.stock:
            self.stock[redemption.reward] += 1

    @precondition(lambda self: bool(self.members))
    @rule(data=st.data(), points=st.sampled_from([1, 50, 120, 400]))
    def hold(self, data: st.DataObject, points: int) -> None:
        customer = data.draw(st.sampled_from(sorted(self.members)))
        member = self.members[customer]
        outcome = self.execute(
            HoldPoints(self.key(), MemberRef(id=member.member_id), points, "cart")
        )
        if member.available < points:
            assert self.code(outcome) == "INSUFFICIENT_POINTS"
            return
        assert self.code(outcome) == "OK" and outcome.hold_id is not None, outcome
        member.available -= points
        member.held += points
        expires = self.clock.now + timedelta(minutes=PROGRAM.hold_minutes)
        self.holds[outcome.hold_id] = ModelHold(customer, points, expires)

    @precondition(lambda self: bool(self.holds))
    @rule(data=st.data(), capture=st.booleans())
    def resolve_hold(self, data: st.DataObject, capture: bool) -> None:
        hold_id = data.draw(st.sampled_from(sorted(self.holds)))
        hold = self.holds[hold_id]
        command: Command = (
            CapturePoints(self.key(), hold_id) if capture else ReleasePoints(self.key(), hold_id)
        )
        outcome = self.execute(command)
        if hold.status != "HELD" or hold.expires_at <= self.clock.now:
            assert self.code(outcome) == "INVALID_STATE"
            return
        assert self.code(outcome) == "OK", outcome
        member = self.members[hold.member]
        member.held -= hold.points
        if capture:
            hold.status = "CAPTURED"
        else:
            hold.status = "RELEASED"
            member.available += hold.points

    @precondition(lambda self: bool(self.members))
    @rule(
        data=st.data(),
        # the large ones reach the balance and debt bounds in two steps
        points=st.sampled_from([-700, -150, -20, 30, 500, 600_000_000, -600_000_000]),
        allow_negative=st.booleans(),
    )
    def adjust(self, data: st.DataObject, points: int, allow_negative: bool) -> None:
        customer = data.draw(st.sampled_from(sorted(self.members)))
        member = self.members[customer]
        outcome = self.execute(
            AdjustPoints(
                self.key(), MemberRef(id=member.member_id), points, "service", allow_negative
            )
        )
        if points < 0 and member.available < -points and not allow_negative:
            assert self.code(outcome) == "INSUFFICIENT_POINTS"
            return
        after = rules.Balances(member.available + points, member.pending, member.held, 0)
        if rules.balance_problem(after):
            assert self.code(outcome) == "INVALID_AMOUNT", outcome
            return
        assert self.code(outcome) == "OK", outcome
        member.available += points

    # -- time ----------------------------------------------------------------------------

    @rule(
        step=st.sampled_from(
            [
                timedelta(minutes=1),
                timedelta(minutes=20),
                timedelta(days=1),
                timedelta(days=15),
                timedelta(days=200),
            ]
        )
    )
    def advance_and_run_jobs(self, step: timedelta) -> None:
        COUNTS["steps"] += 1
        self.clock.advance(seconds=step.total_seconds())
        self.await_(self._jobs())
        now = self.clock.now
        for order in self.orders.values():
            if order.pending_left and order.available_at <= now:
                self.members[order.member].pending -= order.pending_left
                self.members[order.member].available += order.pending_left
                order.pending_left = 0
        for hold in self.holds.values():
            if hold.status == "HELD" and hold.expires_at <= now:
                hold.status = "EXPIRED"
                member = self.members[hold.member]
                member.held -= hold.points
                member.available += hold.points
        by_member = {m.member_id: m for m in self.members.values()}
        expired = self.await_(
            self._read(
                select(Entry).where(Entry.kind == EntryKind.EXPIRE, Entry.id > self.last_expire_id)
            )
        )
        for entry in expired:
            assert entry.points < 0 and entry.occurred_at <= now
            by_member[entry.member_id].available += entry.points
            self.last_expire_id = max(self.last_expire_id, entry.id)

    async def _jobs(self) -> None:
        async with self.database.transaction() as session:
            await self.service.run_jobs(session, PROGRAM.id)

    # -- idempotency ---------------------------------------------------------------------

    @precondition(lambda self: bool(self.replayable()))
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        command, first = data.draw(st.sampled_from(self.replayable()))
        before = self.await_(self._snapshot())
        again = self.execute(command)
        assert again.replayed
        assert again.to_json() == first.to_json()
        assert self.await_(self._snapshot()) == before

    @precondition(lambda self: bool(self.replayable()) and bool(self.members))
    @rule(data=st.data())
    def replay_with_other_input(self, data: st.DataObject) -> None:
        command, _ = data.draw(st.sampled_from(self.replayable()))
        member = next(iter(self.members.values()))
        changed = AdjustPoints(command.idempotency_key, MemberRef(id=member.member_id), 7, "x")
        before = self.await_(self._snapshot())
        outcome = self.execute(changed, remember=False)
        assert self.code(outcome) == "IDEMPOTENCY_CONFLICT"
        assert self.await_(self._snapshot()) == before

    async def _snapshot(self) -> list[tuple[int, int, int, int]]:
        rows = await self._read(select(Account).order_by(Account.member_id))
        return [(a.member_id, a.available, a.pending, a.held) for a in rows]

    # -- after every step ------------------------------------------------------------------

    @invariant()
    def matches_the_model(self) -> None:
        actual = {m: (a, p, h) for m, a, p, h in self.await_(self._snapshot())}
        expected = {m.member_id: (m.available, m.pending, m.held) for m in self.members.values()}
        assert actual == expected

    @invariant()
    def holds_the_invariants(self) -> None:
        self.await_(self._check())

    async def _check(self) -> None:
        async with self.database.reading() as session:
            await check_invariants(session)


def _run(make_url: Callable[[], str], examples: int, steps: int) -> None:
    COUNTS.update(examples=0, steps=0)
    machine = type("Machine", (LedgerMachine,), {"make_url": staticmethod(make_url)})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            database=None,
            # CI replays the same histories every run so a landing never hinges on luck;
            # local runs explore new ones.
            derandomize=os.environ.get("CI") == "true",
        ),
    )
    print(f"stateful ledger: {COUNTS['examples']} examples, {COUNTS['steps']} commands")


def test_the_ledger_follows_the_model_on_sqlite(sqlite_template: Path, tmp_path: Path) -> None:
    _run(lambda: sqlite_url(sqlite_template, tmp_path), examples=50, steps=40)


@pytest.mark.slow
def test_the_ledger_follows_the_model_on_postgresql(postgres: PostgresServer) -> None:
    _run(lambda: postgres_url(postgres), examples=30, steps=40)
