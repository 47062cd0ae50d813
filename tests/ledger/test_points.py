"""Points in and out: purchases, batches, actions, refunds, adjustments, expiry, tiers,
birthdays. Every number is worked out by hand from the test program (tests/support)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from ledger.commands import AdjustPoints, MemberRef, RecordAction, RefundPurchase
from ledger.db import Database
from ledger.errors import InvalidInput
from ledger.models import Entry, EntryKind, Member
from ledger.service import LoyaltyService
from tests.support.ledger import (
    T0,
    Balances,
    Clock,
    enroll,
    item,
    jobs,
    make_program,
    purchase,
    run,
    state,
    table_counts,
    verify,
)

PAST = T0 - timedelta(days=21)  # a Monday; its points are available at once (pending 14 d)


async def entry(database: Database, entry_id: int | None) -> Entry:
    async with database.reading() as session:
        found = await session.get(Entry, entry_id)
        assert found is not None
        return found


async def referral_code(database: Database, member_id: int) -> str:
    async with database.reading() as session:
        member = await session.get(Member, member_id)
        assert member is not None
        return member.referral_code


class TestRecordPurchase:
    async def test_points_stay_pending_for_the_return_window(
        self, database: Database, service: LoyaltyService, clock: Clock
    ) -> None:
        ada = await enroll(database, service, "ada")
        outcome = await run(database, service, purchase("p1", "ada", "A-1", item("120.00")))
        assert outcome.ok and outcome.member_id == ada
        earned = await entry(database, outcome.entry_id)
        assert (earned.kind, earned.points, earned.status) == (EntryKind.EARN, 120, "PENDING")
        assert earned.available_at == T0 + timedelta(days=14)
        assert earned.expires_at == T0 + timedelta(days=14 + 365)
        assert await state(database, ada) == Balances(100, 120, 0, 100, "Bronze")

        clock.advance(days=14, seconds=-1)
        assert (await jobs(database, service)).activated == 0
        assert await state(database, ada) == Balances(100, 120, 0, 100, "Bronze")
        clock.advance(seconds=1)
        assert (await jobs(database, service)).activated == 1
        assert await state(database, ada) == Balances(220, 0, 0, 220, "Bronze")
        assert (await entry(database, outcome.entry_id)).status == "AVAILABLE"
        await verify(database)

    async def test_an_old_purchase_is_available_at_once(
        self, database: Database, service: LoyaltyService
    ) -> None:
        ada = await enroll(database, service, "ada")
        await run(database, service, purchase("p1", "ada", "A-1", item("80.00"), at=PAST))
        assert await state(database, ada) == Balances(180, 0, 0, 180, "Bronze")

    async def test_the_tier_rises_on_the_write_that_crosses_and_earns_from_the_next(
        self, database: Database, service: LoyaltyService
    ) -> None:
        ada = await enroll(database, service, "ada")
        await run(database, service, purchase("p1", "ada", "A-1", item("900.00"), at=PAST))
        assert (await state(database, ada)).tier == "Bronze"  # signup bonus does not qualify
        second = await run(database, service, purchase("p2", "ada", "A-2", item("100.00"), at=PAST))
        assert (await entry(database, second.entry_id)).points == 100  # Bronze rate
        assert await state(database, ada) == Balances(1100, 0, 0, 1100, "Silver")
        third = await run(database, service, purchase("p3", "ada", "A-3", item("100.00"), at=PAST))
        assert (await entry(database, third.entry_id)).points == 125  # Silver ×1.25
        await verify(database)

    async def test_an_unknown_customer_is_enrolled_on_the_fly(
        self, database: Database, service: LoyaltyService
    ) -> None:
        outcome = await run(database, service, purchase("p1", "walk-in", "W-1", item("10.00")))
        assert outcome.ok and outcome.member_id is not None
        assert await state(database, outcome.member_id) == Balances(100, 10, 0, 100, "Bronze")

    async def test_without_auto_enrol_an_unknown_customer_is_refused(
        self, database: Database, clock: Clock
    ) -> None:
        program = make_program(auto_enroll=False)
        service = LoyaltyService({program.id: program}, clock=clock)
        before = await table_counts(database)
        outcome = await run(database, service, purchase("p1", "walk-in", "W-1", item("10.00")))
        assert outcome.problem is not None and outcome.problem.code == "UNKNOWN_MEMBER"
        after = await table_counts(database)
        assert after["idempotency_keys"] == before["idempotency_keys"] + 1
        assert {**after, "idempotency_keys": 0} == {**before, "idempotency_keys": 0}

    async def test_an_order_earns_once_whatever_key_reports_it(
        self, database: Database, service: LoyaltyService
    ) -> None:
        ada = await enroll(database, service, "ada")
        await run(database, service, purchase("shop-webhook", "ada", "A-1", item("50.00")))
        before = await state(database, ada)
        again = await run(database, service, purchase("till-sync", "ada", "A-1", item("50.00")))
        assert again.problem is not None
        assert (again.problem.code, again.problem.field) == ("DUPLICATE_ORDER", ["orderId"])
        assert await state(database, ada) == before
        replay = await run(database, service, purchase("shop-webhook", "ada", "A-1", item("50.00")))
        assert replay.ok and replay.replayed
        assert await state(database, ada) == before
        await verify(database)

    async def test_referral_bonuses_on_the_first_purchase_only(
        self, database: Database, service: LoyaltyService
    ) -> None:
        ada = await enroll(database, service, "ada", email="ada@example.com")
        code = await referral_code(database, ada)
        bob = await enroll(database, service, "bob", email="bob@example.com", referral_code=code)
        await run(database, service, purchase("p1", "bob", "B-1", item("10.00"), at=PAST))
        assert (await state(database, bob)).available == 100 + 10 + 250
        assert (await state(database, ada)).available == 100 + 500
        await run(database, service, purchase("p2", "bob", "B-2", item("10.00"), at=PAST))
        assert (await state(database, bob)).available == 100 + 10 + 250 + 10
        assert (await state(database, ada)).available == 100 + 500
        await verify(database)


class TestRecordPurchases:
    async def test_each_purchase_of_a_batch_has_its_own_outcome(
        self, database: Database, service: LoyaltyService
    ) -> None:
        ada = await enroll(database, service, "ada")
        batch = [
            purchase("b1", "ada", "T-1", item("10.00"), at=PAST),
            purchase("b2", "ada", "T-2", item("10.00"), at=PAST, currency="EUR"),
            purchase("b3", "ada", "T-3", item("30.00"), at=PAST),
        ]
        async with database.transaction() as session:
            outcomes = await service.execute_batch(session, "test", "till-1", batch)
        assert [o.problem.code if o.problem else "ok" for o in outcomes] == [
            "ok",
            "CURRENCY_MISMATCH",
            "ok",
        ]
        assert (await state(database, ada)).available == 140

    async def test_a_batch_has_at_most_500(
        self, database: Database, service: LoyaltyService
    ) -> None:
        batch = [purchase(f"b{i}", "ada", f"T-{i}", item("1.00")) for i in range(501)]
        async with database.transaction() as session:
            with pytest.raises(InvalidInput):
                await service.execute_batch(session, "test", "till-1", batch)


def review(key: str, customer: str = "ada", reference: str | None = None) -> RecordAction:
    return RecordAction(key, MemberRef(customer_id=customer), "product_review", None, reference)


class TestRecordAction:
    async def test_limits_per_day_in_the_program_zone_and_per_member(
        self, database: Database, service: LoyaltyService, clock: Clock
    ) -> None:
        ada = await enroll(database, service, "ada")
        assert (await run(database, service, review("r1"))).ok
        assert (await state(database, ada)).available == 150
        clock.now = T0.replace(day=3, hour=3)  # Monday 22:00 in New York
        limited = await run(database, service, review("r2"))
        assert limited.problem is not None and limited.problem.code == "LIMIT_REACHED"
        clock.now = T0.replace(day=3, hour=5, minute=30)  # Tuesday 00:30 in New York
        assert (await run(database, service, review("r3"))).ok
        clock.advance(days=1)
        assert (await run(database, service, review("r4"))).ok
        clock.advance(days=1)
        fourth = await run(database, service, review("r5"))
        assert fourth.problem is not None and fourth.problem.message == "at most 3 per member"
        assert (await state(database, ada)).available == 100 + 3 * 50
        await verify(database)

    async def test_the_same_reference_is_rewarded_once(
        self, database: Database, service: LoyaltyService, clock: Clock
    ) -> None:
        await enroll(database, service, "ada")
        assert (await run(database, service, review("r1", reference="review-9"))).ok
        clock.advance(days=2)
        again = await run(database, service, review("r2", reference="review-9"))
        assert again.problem is not None
        assert (again.problem.code, again.problem.field) == ("LIMIT_REACHED", ["reference"])

    async def test_an_unknown_action(self, database: Database, service: LoyaltyService) -> None:
        await enroll(database, service, "ada")
        action = RecordAction("x", MemberRef(customer_id="ada"), "tweet")
        outcome = await run(database, service, action)
        assert outcome.problem is not None
        assert (outcome.problem.code, outcome.problem.field) == ("UNKNOWN_ACTION", ["type"])


def refund(key: str, order: str, amount: str | None = None, **lines: int) -> RefundPurchase:
    return RefundPurchase(
        key,
        order,
        Decimal(amount) if amount is not None else None,
        tuple(lines.items()) if lines else None,
    )


class TestRefundPurchase:
    async def test_refunds_of_a_pending_order_lower_pending(
        self, database: Database, service: LoyaltyService, clock: Clock
    ) -> None:
        ada = await enroll(database, service, "ada")
        # two pairs of shoes on a Monday: 2 × 50.00 × 2 = 200 pending; W = 200, E = 100
        await run(database, service, purchase("p", "ada", "A-1", item("50.00", 2, "shoes", "S")))
        first = await run(database, service, refund("r1", "A-1", S=1))
        assert (await entry(database, first.entry_id)).points == -100
        assert await state(database, ada) == Balances(100, 100, 0, 100, "Bronze")
        # 50.00 by amount: R = 50 × 200 / 100 = 100, cumulative 200
        await run(database, service, refund("r2", "A-1", amount="50.00"))
        assert await state(database, ada) == Balances(100, 0, 0, 100, "Bronze")
        before = await table_counts(database)
        over = await run(database, service, refund("r3", "A-1", amount="0.01"))
        assert over.problem is not None and over.problem.code == "INVALID_AMOUNT"
        assert (await table_counts(database))["entries"] == before["entries"]
        clock.advance(days=15)
        await jobs(database, service)
        assert await state(database, ada) == Balances(100, 0, 0, 100, "Bronze")
        await verify(database)

    async def test_refunds_of_an_available_order_lower_available_and_lifetime(
        self, database: Database, service: LoyaltyService
    ) -> None:
        ada = await enroll(database, service, "ada")
        # shoes 50.00 (×2) and two socks 10.00: P = 120, W = 120, E = 70
        lines = (item("50.00", 1, "shoes", "SHOE"), item("10.00", 2, None, "SOCK"))
        await run(database, service, purchase("p", "ada", "A-1", *lines, at=PAST))
        assert await state(database, ada) == Balances(220, 0, 0, 220, "Bronze")
        await run(database, service, refund("r1", "A-1", SOCK=1))
        assert await state(database, ada) == Balances(210, 0, 0, 210, "Bronze")
        # 10.00 by amount: R = 10 × 120 / 70 = 17.14; cumulative floor(27.14) = 27 → 17 more
        await run(database, service, refund("r2", "A-1", amount="10.00"))
        assert await state(database, ada) == Balances(193, 0, 0, 193, "Bronze")
        await verify(database)

    async def test_what_was_spent_cannot_be_taken_back_below_zero(
        self, database: Database, service: LoyaltyService
    ) -> None:
        ada = await enroll(database, service, "ada")
        await run(database, service, purchase("p", "ada", "A-1", item("100.00", sku="X"), at=PAST))
        spend = AdjustPoints("spend", MemberRef(id=ada), -150, "Spent at the till")
        assert (await run(database, service, spend)).ok
        outcome = await run(database, service, refund("r", "A-1", X=1))
        reversal = await entry(database, outcome.entry_id)
        assert reversal.points == -50
        assert reversal.details == {"due": 100, "unrecovered": 50}
        assert (await state(database, ada)).available == 0
        await verify(database)

    async def test_unknown_order(self, database: Database, service: LoyaltyService) -> None:
        outcome = await run(database, service, refund("r", "nope", amount="1.00"))
        assert outcome.problem is not None
        assert (outcome.problem.code, outcome.problem.field) == ("UNKNOWN_ORDER", ["orderId"])


class TestAdjustPoints:
    async def test_negative_balances_only_on_request_and_credits_pay_the_debt(
        self, database: Database, service: LoyaltyService
    ) -> None:
        ada = await enroll(database, service, "ada")
        blank = await run(database, service, AdjustPoints("a0", MemberRef(id=ada), 5, "  "))
        assert blank.problem is not None and blank.problem.field == ["reason"]
        refused = await run(database, service, AdjustPoints("a1", MemberRef(id=ada), -500, "Fraud"))
        assert refused.problem is not None and refused.problem.code == "INSUFFICIENT_POINTS"
        assert (await state(database, ada)).available == 100
        forced = AdjustPoints("a2", MemberRef(id=ada), -500, "Fraud", allow_negative_balance=True)
        assert (await run(database, service, forced)).ok
        assert (await state(database, ada)).available == -400
        credit = AdjustPoints("a3", MemberRef(id=ada), 1000, "Goodwill")
        assert (await run(database, service, credit)).ok
        assert await state(database, ada) == Balances(600, 0, 0, 100, "Bronze")
        await verify(database)


class TestExpiry:
    async def test_spending_takes_the_first_to_expire_and_expiry_takes_only_what_is_left(
        self, database: Database, service: LoyaltyService, clock: Clock
    ) -> None:
        ada = await enroll(database, service, "ada")  # 100, expires T0 + 365 d
        # 200 available since PAST + 14 d = T0 − 7 d, expiring T0 + 358 d: first to expire
        await run(database, service, purchase("p", "ada", "A-1", item("200.00"), at=PAST))
        spend = AdjustPoints("spend", MemberRef(id=ada), -150, "Spent")
        await run(database, service, spend)
        clock.now = T0 + timedelta(days=360)
        report = await jobs(database, service)
        assert (report.expired, report.expired_points) == (1, 50)
        assert (await state(database, ada)).available == 100
        async with database.reading() as session:
            expiry = await session.scalar(select(Entry).where(Entry.kind == EntryKind.EXPIRE))
        assert expiry is not None
        assert (expiry.points, expiry.occurred_at) == (-50, T0 + timedelta(days=358))
        clock.now = T0 + timedelta(days=400)
        assert (await jobs(database, service)).expired_points == 100
        assert (await state(database, ada)).available == 0
        assert (await jobs(database, service)).expired == 0  # nothing twice
        await verify(database)


class TestTiers:
    async def test_the_window_moving_past_old_purchases_downgrades(
        self, database: Database, service: LoyaltyService, clock: Clock
    ) -> None:
        ada = await enroll(database, service, "ada")
        await run(database, service, purchase("p", "ada", "A-1", item("1000.00"), at=PAST))
        assert (await state(database, ada)).tier == "Silver"
        clock.now = PAST + timedelta(days=365)
        assert (await jobs(database, service)).tier_changes == 0
        clock.advance(seconds=1)
        assert (await jobs(database, service)).tier_changes == 1
        assert (await state(database, ada)).tier == "Bronze"
        await verify(database)


class TestBirthdays:
    async def test_once_a_year(
        self, database: Database, service: LoyaltyService, clock: Clock
    ) -> None:
        ada = await enroll(database, service, "ada", birthday=date(1990, 3, 5))
        clock.now = T0.replace(day=4)
        assert (await jobs(database, service)).birthdays == 0
        clock.now = T0.replace(day=5)
        assert (await jobs(database, service)).birthdays == 1
        assert (await jobs(database, service)).birthdays == 0
        assert (await state(database, ada)).available == 300
        clock.now = T0.replace(year=2027, day=6)
        assert (await jobs(database, service)).birthdays == 1
        # the signup bonus and last year's birthday bonus expired after 365 days
        assert await state(database, ada) == Balances(200, 0, 0, 500, "Bronze")
        await verify(database)
