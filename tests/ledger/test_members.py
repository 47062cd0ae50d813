"""Enrolment, referrals, profile updates, erasure and export."""

from __future__ import annotations

from datetime import date, timedelta

from ledger.commands import EnrollMember, ForgetMember, MemberRef, UpdateMember
from ledger.db import Database
from ledger.models import Member
from ledger.service import LoyaltyService
from tests.support.ledger import (
    T0,
    Balances,
    Clock,
    enroll,
    item,
    purchase,
    run,
    state,
    table_counts,
    verify,
)


async def member(database: Database, member_id: int) -> Member:
    async with database.reading() as session:
        found = await session.get(Member, member_id)
        assert found is not None
        return found


class TestEnrollMember:
    async def test_enrolment_credits_the_signup_bonus(
        self, database: Database, service: LoyaltyService
    ) -> None:
        outcome = await run(
            database, service, EnrollMember("e1", "ada", "ada@example.com", "Ada", date(1990, 1, 2))
        )
        assert outcome.ok and outcome.member_id is not None
        assert await state(database, outcome.member_id) == Balances(100, 0, 0, 100, "Bronze")
        enrolled = await member(database, outcome.member_id)
        assert (enrolled.customer_id, enrolled.email, enrolled.enrolled_at) == (
            "ada",
            "ada@example.com",
            T0,
        )
        assert len(enrolled.referral_code) == 10
        await verify(database)

    async def test_a_customer_enrolls_once(
        self, database: Database, service: LoyaltyService
    ) -> None:
        await enroll(database, service, "ada")
        before = await table_counts(database)
        again = await run(database, service, EnrollMember("another-key", "ada"))
        assert again.problem is not None
        assert (again.problem.code, again.problem.field) == ("ALREADY_ENROLLED", ["customerId"])
        assert (await table_counts(database))["members"] == before["members"]


class TestReferrals:
    async def test_unknown_self_and_over_the_monthly_cap(
        self, database: Database, service: LoyaltyService, clock: Clock
    ) -> None:
        ada = await enroll(database, service, "ada", email="ada@example.com")
        code = (await member(database, ada)).referral_code
        unknown = await run(database, service, EnrollMember("e1", "bob", referral_code="NOPE"))
        assert unknown.problem is not None
        assert (unknown.problem.code, unknown.problem.field) == ("UNKNOWN_MEMBER", ["referralCode"])
        itself = await run(
            database,
            service,
            EnrollMember("e2", "ada-2", email="ADA@example.com", referral_code=code),
        )
        assert itself.problem is not None and itself.problem.code == "INVALID_STATE"
        for name in ("bob", "cy"):  # the test program allows 2 a month
            outcome = await run(
                database, service, EnrollMember(f"e-{name}", name, None, None, None, code)
            )
            assert outcome.ok
            assert (await member(database, outcome.member_id or 0)).referred_by_id == ada
        third = await run(database, service, EnrollMember("e3", "dee", referral_code=code))
        assert third.problem is not None
        assert (third.problem.code, third.problem.field) == ("LIMIT_REACHED", ["referralCode"])
        clock.now = T0.replace(month=4, day=1, hour=5)  # 1 April 01:00 in New York
        assert (await run(database, service, EnrollMember("e4", "dee", referral_code=code))).ok
        await verify(database)


class TestUpdateAndForget:
    async def test_update_changes_only_what_is_given(
        self, database: Database, service: LoyaltyService
    ) -> None:
        ada = await enroll(database, service, "ada", email="ada@example.com", name="Ada")
        outcome = await run(
            database, service, UpdateMember("u1", MemberRef(customer_id="ada"), name="Ada L.")
        )
        assert outcome.ok and outcome.member_id == ada
        updated = await member(database, ada)
        assert (updated.email, updated.name) == ("ada@example.com", "Ada L.")

    async def test_forget_erases_personal_data_and_keeps_the_ledger(
        self, database: Database, service: LoyaltyService, clock: Clock
    ) -> None:
        ada = await enroll(database, service, "ada", email="ada@example.com", name="Ada")
        await run(
            database,
            service,
            purchase("p", "ada", "A-1", item("10.00"), at=T0 - timedelta(days=21)),
        )
        before = await state(database, ada)
        assert (await run(database, service, ForgetMember("f1", MemberRef(id=ada)))).ok
        erased = await member(database, ada)
        assert (erased.customer_id, erased.email, erased.name, erased.birthday) == (
            f"forgotten-{ada}",
            None,
            None,
            None,
        )
        assert await state(database, ada) == before
        gone = await run(database, service, UpdateMember("u", MemberRef(id=ada), name="X"))
        assert gone.problem is not None and gone.problem.code == "UNKNOWN_MEMBER"
        again = await run(database, service, EnrollMember("re-enroll", "ada"))
        assert again.ok and again.member_id not in (None, ada)
        await verify(database)

    async def test_export_holds_everything_about_the_member(
        self, database: Database, service: LoyaltyService
    ) -> None:
        ada = await enroll(database, service, "ada", email="ada@example.com")
        await run(database, service, purchase("p", "ada", "A-1", item("10.00")))
        async with database.reading() as session:
            exported = await service.export_member(session, "test", customer_id="ada")
        assert exported["member"]["email"] == "ada@example.com"
        assert exported["points"]["available"] == 100
        assert exported["points"]["pending"] == 10
        assert [t["kind"] for t in exported["transactions"]] == ["BONUS", "EARN"]
        assert exported["orders"][0]["orderId"] == "A-1"
        assert exported["member"]["id"] == str(ada)
