"""Refunds that arrive before their purchase (webhooks come in any order): kept, and
applied with the exact arithmetic of DESIGN §3 when the purchase is recorded; refunds by
the platform's line id; and the API's refundPurchase keeps answering UNKNOWN_ORDER."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from sqlalchemy import select, text

from ledger.commands import RefundPurchase
from ledger.db import Database
from ledger.models import Entry, EntryKind, PendingRefund
from ledger.rules import Line
from ledger.service import LoyaltyService
from tests.support.ledger import enroll, item, purchase, run, state, table_counts, verify

SIGNUP = 100  # the test program's signup bonus, available at once


async def pending(database: Database) -> list[PendingRefund]:
    async with database.reading() as session:
        return list((await session.scalars(select(PendingRefund).order_by(PendingRefund.id))).all())


async def refund_entries(database: Database) -> list[int]:
    async with database.reading() as session:
        query = select(Entry.points).where(Entry.kind == EntryKind.REFUND).order_by(Entry.id)
        return list((await session.scalars(query)).all())


async def test_refunds_before_the_purchase_apply_when_it_arrives(
    database: Database, service: LoyaltyService
) -> None:
    by_amount = RefundPurchase("r-1", "o-1", amount=Decimal("25.00"), keep_until_purchase=True)
    by_lines = RefundPurchase("r-2", "o-1", lines=(("SHOE", 1),), keep_until_purchase=True)
    for command in (by_amount, by_lines):
        kept = await run(database, service, command)
        assert kept.ok and kept.entry_id is None and kept.member_id is None
    assert [p.refund for p in await pending(database)] == [
        {"amount": "25.00"},
        {"lines": [["SHOE", 1]]},
    ]

    # W = 50 + 70 × 2 = 190, E = 120: 25.00 → floor(190 × 39.58… / 190) = 39; then the
    # shoe (140) → cumulative floor(179.58…) = 179, so 140 more.
    shoe = Line("SHOE", "shoes", 1, Decimal("80.00"), Decimal("10.00"))
    bought = await run(
        database, service, purchase("p-1", "ada", "o-1", item("25.00", 2, sku="TEE"), shoe)
    )
    assert bought.ok
    assert bought.member_id is not None
    balances = await state(database, bought.member_id)
    assert (balances.available, balances.pending) == (SIGNUP, 190 - 179)
    assert await refund_entries(database) == [-39, -140]
    applied = await pending(database)
    assert [(p.applied_at is not None, p.problem) for p in applied] == [(True, None), (True, None)]
    await verify(database)


async def test_a_kept_refund_that_cannot_apply_never_refuses_the_purchase(
    database: Database, service: LoyaltyService
) -> None:
    wrong = RefundPurchase("r-1", "o-1", lines=(("HAT", 1),), keep_until_purchase=True)
    assert (await run(database, service, wrong)).ok
    bought = await run(database, service, purchase("p-1", "ada", "o-1", item("50.00", sku="TEE")))
    assert bought.ok and bought.member_id is not None
    assert (await state(database, bought.member_id)).pending == 50
    [kept] = await pending(database)
    assert kept.problem == "INVALID_AMOUNT: sku 'HAT' is not on this order"
    assert kept.entry_id is None


async def test_a_kept_refund_is_checked_as_far_as_it_can_be_without_its_order(
    database: Database, service: LoyaltyService
) -> None:
    before = await table_counts(database)
    bad = RefundPurchase("r-1", "o-1", amount=Decimal("-1"), keep_until_purchase=True)
    outcome = await run(database, service, bad)
    assert outcome.problem is not None
    assert (outcome.problem.code, outcome.problem.message) == (
        "INVALID_AMOUNT",
        "amount must be positive",
    )
    after = await table_counts(database)
    assert after == {**before, "idempotency_keys": after["idempotency_keys"]}
    assert await pending(database) == []


async def test_refunds_by_line_id_tell_apart_two_lines_of_one_sku(
    database: Database, service: LoyaltyService
) -> None:
    await enroll(database, service, "ada")
    full = Line("TEE", None, 1, Decimal("30.00"), ref="line-1")
    discounted = Line("TEE", None, 1, Decimal("30.00"), Decimal("10.00"), ref="line-2")
    bought = await run(database, service, purchase("p-1", "ada", "o-1", full, discounted))
    assert bought.member_id is not None
    # By sku the first TEE line would go (30 points); by line id the discounted one (20).
    by_ref = RefundPurchase("r-1", "o-1", line_refs=(("line-2", 1),))
    assert (await run(database, service, by_ref)).ok
    assert await refund_entries(database) == [-20]
    unknown = await run(database, service, RefundPurchase("r-2", "o-1", line_refs=(("x", 1),)))
    assert unknown.problem is not None
    assert unknown.problem.message == "line 'x' is not on this order"


async def test_the_api_refund_of_an_unknown_order_is_still_unknown_order(
    database: Database, service: LoyaltyService
) -> None:
    outcome = await run(database, service, RefundPurchase("r-1", "o-1", amount=Decimal("1")))
    assert outcome.problem is not None and outcome.problem.code == "UNKNOWN_ORDER"
    assert await pending(database) == []


async def waiting_on_advisory_lock(database: Database, task: asyncio.Task[object]) -> bool:
    """Whether a session waits on an advisory lock (True) or `task` ended first."""
    while not task.done():
        async with database.reading() as session:
            waiting = await session.scalar(
                text("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'advisory'")
            )
        if waiting:
            return True
        await asyncio.sleep(0.01)
    return False


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@pytest.mark.parametrize("first", ["refund", "purchase"])
async def test_a_refund_and_its_purchase_in_flight_together_apply_once(
    database: Database, service: LoyaltyService, first: str
) -> None:
    """Whichever commits second sees the other: the purchase waits for a refund kept
    in flight, and a refund waits for a purchase in flight, then finds its order."""
    refund = RefundPurchase("r-1", "o-1", amount=Decimal("10.00"), keep_until_purchase=True)
    bought = purchase("p-1", "ada", "o-1", item("50.00", sku="TEE"))
    head, tail = (refund, bought) if first == "refund" else (bought, refund)
    async with database.transaction() as session:
        assert (await service.execute(session, "test", "till-1", head)).ok
        other = asyncio.ensure_future(run(database, service, tail))
        assert await waiting_on_advisory_lock(database, other)
    assert (await other).ok
    assert await refund_entries(database) == [-10]
    assert [p.applied_at is not None for p in await pending(database)] == (
        [True] if first == "refund" else []
    )
    await verify(database)
