"""The ledger's own guards, on SQLite and PostgreSQL: bounds where balances grow,
unstorable strings, the backdating limit, holds named by a member, and erasure."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from ledger import rules
from ledger.commands import (
    AdjustPoints,
    CancelRedemption,
    CapturePoints,
    Command,
    EnrollMember,
    ForgetMember,
    HoldPoints,
    MemberRef,
    Outcome,
    RecordAction,
    RedeemReward,
    RefundPurchase,
    ReleasePoints,
    UpsertReward,
)
from ledger.db import Database
from ledger.errors import InvalidInput
from ledger.models import OutboxEvent
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

ADA = MemberRef(customer_id="ada")


def problem(outcome: Outcome) -> tuple[str, list[str] | None]:
    found = outcome.problem
    assert found is not None, outcome
    return found.code, found.field


class TestUnstorableText:
    async def test_nul_and_lone_surrogates_write_nothing(
        self, database: Database, service: LoyaltyService
    ) -> None:
        await enroll(database, service, "ada")
        before = await table_counts(database)
        cases: list[tuple[Command, list[str]]] = [
            (EnrollMember("k", "a\x00"), ["customerId"]),
            (EnrollMember("k", "new", name="\ud800"), ["name"]),
            (EnrollMember("k\x00", "new"), ["idempotencyKey"]),
            (purchase("k", "ada", "O\udc00", item("1.00")), ["orderId"]),
            (purchase("k", "ada", "O", item("1.00", sku="\x00")), ["lines", "0", "sku"]),
            (AdjustPoints("k", ADA, 5, "r\x00"), ["reason"]),
            (RecordAction("k", ADA, "product_review", reference="\ud800"), ["reference"]),
            (HoldPoints("k", ADA, 5, "\x00"), ["orderId"]),
        ]
        for command, field in cases:
            assert problem(await run(database, service, command)) == ("INVALID_INPUT", field)
            assert await table_counts(database) == before, command

    async def test_a_reward_with_an_unstorable_name_is_refused(
        self, database: Database, service: LoyaltyService
    ) -> None:
        async with database.transaction() as session:
            try:
                await service.upsert_reward(session, "test", UpsertReward("gift", "\x00", 5))
            except InvalidInput as error:
                assert error.field == ["name"]
            else:
                raise AssertionError("an unstorable name was accepted")


class TestBounds:
    async def test_a_cancel_past_the_bound_is_refused(
        self, database: Database, service: LoyaltyService
    ) -> None:
        await enroll(database, service, "ada")
        redeemed = await run(database, service, RedeemReward("r", ADA, "tote"))  # 300 of 100?
        assert problem(redeemed)[0] == "INSUFFICIENT_POINTS"
        await run(database, service, AdjustPoints("a1", ADA, 200, "r"))
        redeemed = await run(database, service, RedeemReward("r2", ADA, "tote"))
        assert redeemed.ok and redeemed.redemption_id is not None
        fill = rules.MAX_BALANCE - 100
        assert (await run(database, service, AdjustPoints("a2", ADA, fill, "r"))).ok
        before = await table_counts(database)
        cancel = CancelRedemption("c", redeemed.redemption_id)
        assert problem(await run(database, service, cancel)) == (
            "INVALID_AMOUNT",
            ["redemptionId"],
        )
        assert await table_counts(database) == before
        await verify(database)

    async def test_a_full_account_forgoes_its_birthday_bonus(
        self, database: Database, service: LoyaltyService, clock: Clock
    ) -> None:
        ada = await enroll(database, service, "ada", birthday=date(1990, 3, 5))
        await run(database, service, AdjustPoints("a", ADA, rules.MAX_BALANCE - 100, "r"))
        clock.now = T0.replace(day=5)
        assert (await jobs(database, service)).birthdays == 0
        assert (await state(database, ada)).available == rules.MAX_BALANCE
        await verify(database)

    async def test_spend_based_tiers_bound_a_members_spend(
        self, database: Database, clock: Clock
    ) -> None:
        program = make_program(
            tiering={"basis": "spend", "window_days": 365}, earning={"points_per_unit": "0.001"}
        )
        service = LoyaltyService({program.id: program}, clock=clock)
        await enroll(database, service, "ada")
        billion = item("100000000", 10)  # half of what a member may spend, 10^6 points
        assert (await run(database, service, purchase("p1", "ada", "O1", billion))).ok
        assert (await run(database, service, purchase("p2", "ada", "O2", billion))).ok
        before = await table_counts(database)
        beyond = await run(database, service, purchase("p3", "ada", "O3", item("1.00")))
        assert problem(beyond) == ("INVALID_AMOUNT", ["lines"])
        assert await table_counts(database) == before


class TestBackdating:
    async def test_older_than_the_limit_is_refused(
        self, database: Database, service: LoyaltyService
    ) -> None:
        await enroll(database, service, "ada")
        before = await table_counts(database)
        old = purchase("k", "ada", "O", item("1.00"), at=T0 - timedelta(days=31))
        assert problem(await run(database, service, old)) == ("INVALID_INPUT", ["occurredAt"])
        action = RecordAction("k2", ADA, "product_review", occurred_at=T0 - timedelta(days=31))
        assert problem(await run(database, service, action)) == ("INVALID_INPUT", ["occurredAt"])
        assert await table_counts(database) == before
        at_limit = purchase("k3", "ada", "O", item("1.00"), at=T0 - timedelta(days=30))
        assert (await run(database, service, at_limit)).ok


class TestForget:
    async def test_forgetting_closes_what_is_open(
        self, database: Database, service: LoyaltyService
    ) -> None:
        ada = await enroll(database, service, "ada", email="ada@example.com", name="Ada")
        bob = await enroll(database, service, "bob")
        await run(database, service, AdjustPoints("a", ADA, 900, "goodwill for Ada"))
        bought = purchase("p", "ada", "O1", item("10.00"), at=T0 - timedelta(days=20))
        assert (await run(database, service, bought)).ok
        held = await run(database, service, HoldPoints("h", ADA, 300, "C1"))
        redeemed = await run(database, service, RedeemReward("r", ADA, "five-off"))
        assert held.hold_id is not None and redeemed.redemption_id is not None
        assert (await run(database, service, ForgetMember("f", ADA))).ok
        # the hold came back and the redemption was returned: 100 + 900 + 10 × 1.5 (Tuesday)
        assert await state(database, ada) == Balances(1015, 0, 0, 115, "Bronze")
        await verify(database)
        async with database.reading() as session:
            payloads = [
                event.payload
                for event in await session.scalars(
                    select(OutboxEvent).where(OutboxEvent.member_id == ada)
                )
            ]
        assert all(payload.get("customerId") is None for payload in payloads)
        assert "Ada" not in repr(payloads) and "ada@" not in repr(payloads)
        before = await table_counts(database)
        later: list[Command] = [
            CapturePoints("c", held.hold_id),
            ReleasePoints("l", held.hold_id),
            CancelRedemption("x", redeemed.redemption_id),
            RefundPurchase("rf", "O1", amount=rules.MAX_UNIT_PRICE.scaleb(-9)),
            purchase("p2", "ada", "O2", item("1.00")),
        ]
        for command in later:
            code, _ = problem(await run(database, service, command))
            assert code == "UNKNOWN_MEMBER", command
        counts = await table_counts(database)
        assert {k: v for k, v in counts.items() if k != "idempotency_keys"} == {
            k: v for k, v in before.items() if k != "idempotency_keys"
        }
        # another member's hold named by a member is as missing as a missing one
        bob_hold = await run(database, service, HoldPoints("bh", MemberRef(id=bob), 10, "C2"))
        assert bob_hold.hold_id is not None
        as_ada = await run(database, service, ReleasePoints("m1", bob_hold.hold_id, owner="cy"))
        missing = await run(database, service, ReleasePoints("m2", 10**9, owner="cy"))
        assert as_ada.problem == missing.problem
        assert as_ada.problem is not None and as_ada.problem.code == "UNKNOWN_HOLD"
        again = await run(database, service, EnrollMember("e2", "ada"))
        assert again.ok and again.member_id != ada
        assert (await run(database, service, purchase("p3", "ada", "O3", item("1.00")))).ok
        await verify(database)
