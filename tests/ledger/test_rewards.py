"""Redemptions and checkout holds."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

from ledger.commands import (
    AdjustPoints,
    CancelRedemption,
    CapturePoints,
    HoldPoints,
    MemberRef,
    RedeemReward,
    ReleasePoints,
    UpsertReward,
    UseRedemption,
)
from ledger.db import Database
from ledger.models import Hold, Redemption, Reward
from ledger.service import LoyaltyService
from tests.support.ledger import (
    T0,
    Balances,
    Clock,
    enroll,
    item,
    jobs,
    purchase,
    run,
    state,
    table_counts,
    verify,
)

PAST = T0 - timedelta(days=21)


async def rich(database: Database, service: LoyaltyService, customer: str, points: int) -> int:
    """A member with `points` available (100 signup + a goodwill adjustment)."""
    member_id = await enroll(database, service, customer)
    if points != 100:
        delta = points - 100
        outcome = await run(
            database,
            service,
            AdjustPoints(f"seed-{customer}", MemberRef(id=member_id), delta, "seed", True),
        )
        assert outcome.ok
    return member_id


def redeem(key: str, member_id: int, reward: str) -> RedeemReward:
    return RedeemReward(key, MemberRef(id=member_id), reward)


async def code(database: Database, redemption_id: int | None) -> Redemption:
    async with database.reading() as session:
        found = await session.get(Redemption, redemption_id)
        assert found is not None
        return found


class TestRedeemReward:
    async def test_redeeming_deducts_the_cost_and_issues_a_code(
        self, database: Database, service: LoyaltyService
    ) -> None:
        ada = await rich(database, service, "ada", 800)
        outcome = await run(database, service, redeem("r1", ada, "five-off"))
        assert outcome.ok and outcome.redemption_id is not None
        assert (await state(database, ada)).available == 300
        issued = await code(database, outcome.redemption_id)
        assert re.fullmatch(r"([A-HJ-NP-Z2-9]{4}-){3}[A-HJ-NP-Z2-9]{4}", issued.code)
        assert (issued.status, issued.points) == ("ISSUED", 500)
        short = await run(database, service, redeem("r2", ada, "five-off"))
        assert short.problem is not None and short.problem.code == "INSUFFICIENT_POINTS"
        assert (await state(database, ada)).available == 300
        await verify(database)

    async def test_tier_stock_and_per_member_limits(
        self, database: Database, service: LoyaltyService
    ) -> None:
        ada = await rich(database, service, "ada", 2000)
        lounge = await run(database, service, redeem("l", ada, "lounge"))
        assert lounge.problem is not None and lounge.problem.code == "TIER_REQUIRED"
        assert (await run(database, service, redeem("t1", ada, "tote"))).ok
        twice = await run(database, service, redeem("t2", ada, "tote"))
        assert twice.problem is not None and twice.problem.code == "LIMIT_REACHED"
        bob = await rich(database, service, "bob", 1000)
        assert (await run(database, service, redeem("t3", bob, "tote"))).ok
        cy = await rich(database, service, "cy", 1000)
        sold_out = await run(database, service, redeem("t4", cy, "tote"))
        assert sold_out.problem is not None and sold_out.problem.code == "OUT_OF_STOCK"
        assert (await state(database, cy)).available == 1000
        unknown = await run(database, service, redeem("u", cy, "yacht"))
        assert unknown.problem is not None and unknown.problem.code == "UNKNOWN_REWARD"
        await verify(database)

    async def test_an_inactive_reward_cannot_be_redeemed(
        self, database: Database, service: LoyaltyService
    ) -> None:
        ada = await rich(database, service, "ada", 1000)
        async with database.transaction() as session:
            reward = await service.upsert_reward(
                session, "test", UpsertReward("five-off", "$5 off", 500, active=False)
            )
            assert reward.active is False
        outcome = await run(database, service, redeem("r", ada, "five-off"))
        assert outcome.problem is not None and outcome.problem.code == "UNKNOWN_REWARD"

    async def test_use_and_cancel_resolve_once(
        self, database: Database, service: LoyaltyService
    ) -> None:
        ada = await rich(database, service, "ada", 1000)
        first = await run(database, service, redeem("t1", ada, "tote"))
        used = (await code(database, first.redemption_id)).code
        assert (await run(database, service, UseRedemption("use1", used, "POS-9"))).ok
        assert (await code(database, first.redemption_id)).used_order_id == "POS-9"
        again = await run(database, service, UseRedemption("use2", used))
        assert again.problem is not None and again.problem.code == "INVALID_STATE"
        late = await run(database, service, CancelRedemption("c0", first.redemption_id or 0))
        assert late.problem is not None and late.problem.code == "INVALID_STATE"

        second = await run(database, service, redeem("f1", ada, "five-off"))
        assert (await state(database, ada)).available == 200
        assert (await run(database, service, CancelRedemption("c1", second.redemption_id or 0))).ok
        assert (await state(database, ada)).available == 700
        twice = await run(database, service, CancelRedemption("c2", second.redemption_id or 0))
        assert twice.problem is not None and twice.problem.code == "INVALID_STATE"
        assert (await state(database, ada)).available == 700
        await verify(database)

    async def test_cancelling_returns_the_stock(
        self, database: Database, service: LoyaltyService
    ) -> None:
        ada = await rich(database, service, "ada", 1000)
        outcome = await run(database, service, redeem("t1", ada, "tote"))
        await run(database, service, CancelRedemption("c1", outcome.redemption_id or 0))
        async with database.reading() as session:
            tote = await session.get(Reward, ("test", "tote"))
            assert tote is not None and tote.stock == 2


def hold(key: str, member_id: int, points: int, order: str = "cart-1") -> HoldPoints:
    return HoldPoints(key, MemberRef(id=member_id), points, order)


class TestHolds:
    async def test_a_hold_reserves_points_and_capture_spends_them(
        self, database: Database, service: LoyaltyService
    ) -> None:
        ada = await rich(database, service, "ada", 800)
        held = await run(database, service, hold("h1", ada, 350))
        assert held.ok and held.hold_id is not None
        async with database.reading() as session:
            row = await session.get(Hold, held.hold_id)
            assert row is not None
            assert (row.discount, row.expires_at) == (Decimal("3.50"), T0 + timedelta(minutes=15))
        assert await state(database, ada) == Balances(450, 0, 350, 100, "Bronze")
        blocked = await run(database, service, redeem("r", ada, "five-off"))
        assert blocked.problem is not None and blocked.problem.code == "INSUFFICIENT_POINTS"
        captured = await run(database, service, CapturePoints("c1", held.hold_id))
        assert captured.ok and captured.entry_id is not None
        assert await state(database, ada) == Balances(450, 0, 0, 100, "Bronze")
        for key, command in (
            ("c2", CapturePoints("c2", held.hold_id)),
            ("r2", ReleasePoints("r2", held.hold_id)),
        ):
            again = await run(database, service, command)
            assert again.problem is not None and again.problem.code == "INVALID_STATE", key
        assert await state(database, ada) == Balances(450, 0, 0, 100, "Bronze")
        await verify(database)

    async def test_release_gives_the_points_back(
        self, database: Database, service: LoyaltyService
    ) -> None:
        ada = await rich(database, service, "ada", 800)
        held = await run(database, service, hold("h1", ada, 800))
        assert (await run(database, service, ReleasePoints("r1", held.hold_id or 0))).ok
        assert await state(database, ada) == Balances(800, 0, 0, 100, "Bronze")
        await verify(database)

    async def test_a_stale_hold_cannot_be_captured_and_jobs_release_it(
        self, database: Database, service: LoyaltyService, clock: Clock
    ) -> None:
        ada = await rich(database, service, "ada", 800)
        held = await run(database, service, hold("h1", ada, 300))
        clock.advance(minutes=15)
        before = await table_counts(database)
        late = await run(database, service, CapturePoints("c1", held.hold_id or 0))
        assert late.problem is not None and late.problem.message == "the hold expired"
        assert (await table_counts(database))["entries"] == before["entries"]
        assert (await jobs(database, service)).holds_released == 1
        assert await state(database, ada) == Balances(800, 0, 0, 100, "Bronze")
        async with database.reading() as session:
            row = await session.get(Hold, held.hold_id)
            assert row is not None and row.status == "EXPIRED"
        await verify(database)

    async def test_insufficient_points_for_a_hold(
        self, database: Database, service: LoyaltyService
    ) -> None:
        ada = await enroll(database, service, "ada")
        await run(database, service, purchase("p", "ada", "A-1", item("500.00")))  # pending
        refused = await run(database, service, hold("h1", ada, 101))
        assert refused.problem is not None and refused.problem.code == "INSUFFICIENT_POINTS"
        assert await state(database, ada) == Balances(100, 500, 0, 100, "Bronze")
