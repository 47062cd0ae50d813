"""Bad input gets a clear error code and field, and writes nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from ledger.commands import (
    AdjustPoints,
    CancelRedemption,
    CapturePoints,
    Command,
    EnrollMember,
    HoldPoints,
    MemberRef,
    RecordAction,
    RecordPurchase,
    RedeemReward,
    RefundPurchase,
    ReleasePoints,
    UseRedemption,
)
from ledger.db import Database
from ledger.rules import Line
from ledger.service import LoyaltyService
from tests.support.ledger import T0, Clock, enroll, item, make_program, purchase, run, table_counts

ADA = MemberRef(customer_id="ada")
NO_VALIDATION_KEPT = {"INVALID_AMOUNT", "INVALID_INPUT", "CURRENCY_MISMATCH"}


def buy(*lines: Line, **kw: object) -> RecordPurchase:
    fields: dict[str, object] = {"currency": "USD", "order_id": "B-1", "occurred_at": None}
    fields.update(kw)
    return RecordPurchase(
        "bad",
        ADA,
        str(fields["order_id"]),
        str(fields["currency"]),
        tuple(lines),
        occurred_at=fields["occurred_at"],  # type: ignore[arg-type]
    )


def line(price: str, qty: int = 1, discount: str = "0") -> Line:
    return Line("SKU", None, qty, Decimal(price), Decimal(discount))


CASES: list[tuple[str, Callable[[], Command], str, list[str] | None]] = [
    (
        "unknown-member",
        lambda: AdjustPoints("bad", MemberRef(id=999), 5, "x"),
        "UNKNOWN_MEMBER",
        ["member"],
    ),
    (
        "unknown-customer",
        lambda: RedeemReward("bad", MemberRef(customer_id="zed"), "five-off"),
        "UNKNOWN_MEMBER",
        ["member"],
    ),
    (
        "both-refs",
        lambda: AdjustPoints("bad", MemberRef(1, "ada"), 5, "x"),
        "INVALID_INPUT",
        ["member"],
    ),
    ("no-ref", lambda: AdjustPoints("bad", MemberRef(), 5, "x"), "INVALID_INPUT", ["member"]),
    ("unknown-reward", lambda: RedeemReward("bad", ADA, "yacht"), "UNKNOWN_REWARD", ["rewardId"]),
    (
        "unknown-order",
        lambda: RefundPurchase("bad", "Z-9", Decimal("1")),
        "UNKNOWN_ORDER",
        ["orderId"],
    ),
    ("unknown-hold", lambda: CapturePoints("bad", 999), "UNKNOWN_HOLD", ["holdId"]),
    ("unknown-hold-release", lambda: ReleasePoints("bad", 999), "UNKNOWN_HOLD", ["holdId"]),
    (
        "unknown-redemption",
        lambda: CancelRedemption("bad", 999),
        "UNKNOWN_REDEMPTION",
        ["redemptionId"],
    ),
    (
        "unknown-code",
        lambda: UseRedemption("bad", "AAAA-BBBB-CCCC-DDDD"),
        "UNKNOWN_REDEMPTION",
        ["code"],
    ),
    ("zero-quantity", lambda: buy(line("10", 0)), "INVALID_AMOUNT", ["lines", "0", "quantity"]),
    (
        "negative-quantity",
        lambda: buy(line("10", -1)),
        "INVALID_AMOUNT",
        ["lines", "0", "quantity"],
    ),
    ("zero-price", lambda: buy(line("0")), "INVALID_AMOUNT", ["lines", "0", "unitPrice"]),
    ("negative-price", lambda: buy(line("-5")), "INVALID_AMOUNT", ["lines", "0", "unitPrice"]),
    ("absurd-price", lambda: buy(line("1e30")), "INVALID_AMOUNT", ["lines", "0", "unitPrice"]),
    ("nan-price", lambda: buy(line("NaN")), "INVALID_AMOUNT", ["lines", "0", "unitPrice"]),
    (
        "infinite-price",
        lambda: buy(line("Infinity")),
        "INVALID_AMOUNT",
        ["lines", "0", "unitPrice"],
    ),
    ("fifth-decimal", lambda: buy(line("1.00001")), "INVALID_AMOUNT", ["lines", "0", "unitPrice"]),
    (
        "discount-above-line",
        lambda: buy(line("10", 1, "10.01")),
        "INVALID_AMOUNT",
        ["lines", "0", "discount"],
    ),
    (
        "absurd-quantity",
        lambda: buy(line("1", 10**12)),
        "INVALID_AMOUNT",
        ["lines", "0", "quantity"],
    ),
    ("empty-order", lambda: buy(), "INVALID_AMOUNT", ["lines"]),
    ("wrong-currency", lambda: buy(line("10"), currency="EUR"), "CURRENCY_MISMATCH", ["currency"]),
    ("empty-order-id", lambda: buy(line("10"), order_id=" "), "INVALID_INPUT", ["orderId"]),
    (
        "future",
        lambda: buy(line("10"), occurred_at=T0 + timedelta(hours=1)),
        "INVALID_INPUT",
        ["occurredAt"],
    ),
    (
        "naive-time",
        lambda: buy(line("10"), occurred_at=datetime(2026, 3, 1)),
        "INVALID_INPUT",
        ["occurredAt"],
    ),
    (
        "refund-both",
        lambda: RefundPurchase("bad", "A-1", Decimal("1"), (("SKU", 1),)),
        "INVALID_INPUT",
        ["amount"],
    ),
    ("refund-neither", lambda: RefundPurchase("bad", "A-1"), "INVALID_INPUT", ["amount"]),
    (
        "refund-negative",
        lambda: RefundPurchase("bad", "A-1", Decimal("-1")),
        "INVALID_AMOUNT",
        ["amount"],
    ),
    (
        "refund-absurd",
        lambda: RefundPurchase("bad", "A-1", Decimal("1e30")),
        "INVALID_AMOUNT",
        ["amount"],
    ),
    (
        "refund-too-much",
        lambda: RefundPurchase("bad", "A-1", Decimal("50.01")),
        "INVALID_AMOUNT",
        ["amount"],
    ),
    (
        "refund-unknown-sku",
        lambda: RefundPurchase("bad", "A-1", None, (("NOPE", 1),)),
        "INVALID_AMOUNT",
        ["lines", "0", "sku"],
    ),
    (
        "refund-no-lines",
        lambda: RefundPurchase("bad", "A-1", None, ()),
        "INVALID_AMOUNT",
        ["lines"],
    ),
    ("adjust-zero", lambda: AdjustPoints("bad", ADA, 0, "x"), "INVALID_AMOUNT", ["points"]),
    ("adjust-absurd", lambda: AdjustPoints("bad", ADA, 10**15, "x"), "INVALID_AMOUNT", ["points"]),
    ("hold-negative", lambda: HoldPoints("bad", ADA, -5, "cart"), "INVALID_AMOUNT", ["points"]),
    ("hold-zero", lambda: HoldPoints("bad", ADA, 0, "cart"), "INVALID_AMOUNT", ["points"]),
    ("enroll-long-id", lambda: EnrollMember("bad", "x" * 256), "INVALID_INPUT", ["customerId"]),
    (
        "enroll-bad-email",
        lambda: EnrollMember("bad", "new", email="nobody"),
        "INVALID_INPUT",
        ["email"],
    ),
    (
        "action-long-reference",
        lambda: RecordAction("bad", ADA, "product_review", None, "r" * 300),
        "INVALID_INPUT",
        ["reference"],
    ),
    ("empty-key", lambda: AdjustPoints("", ADA, 5, "x"), "INVALID_INPUT", None),
    ("long-key", lambda: AdjustPoints("k" * 256, ADA, 5, "x"), "INVALID_INPUT", None),
]


@pytest.mark.parametrize(
    ("make", "code", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
async def test_bad_input_is_refused_and_writes_nothing(
    database: Database,
    service: LoyaltyService,
    make: Callable[[], Command],
    code: str,
    field: list[str] | None,
) -> None:
    await enroll(database, service, "ada")
    await run(database, service, purchase("p", "ada", "A-1", item("50.00", sku="SKU")))
    before = await table_counts(database)
    outcome = await run(database, service, make())
    assert outcome.problem is not None
    assert (outcome.problem.code, outcome.problem.field) == (code, field)
    assert outcome.problem.message
    after = await table_counts(database)
    if code in NO_VALIDATION_KEPT:
        assert after == before  # not even the key: it can be retried with corrected input
    else:
        assert after == {**before, "idempotency_keys": before["idempotency_keys"] + 1}


async def test_a_corrected_input_can_reuse_the_key(
    database: Database, service: LoyaltyService
) -> None:
    await enroll(database, service, "ada")
    wrong = await run(database, service, buy(line("10"), currency="EUR"))
    assert wrong.problem is not None and wrong.problem.code == "CURRENCY_MISMATCH"
    right = await run(database, service, buy(line("10")))
    assert right.ok and not right.replayed


async def test_another_programs_ids_resolve_as_not_found(database: Database, clock: Clock) -> None:
    test, other = make_program(), make_program(id="other", rewards=[])
    service = LoyaltyService({test.id: test, other.id: other}, clock=clock)
    async with database.transaction() as session:
        await service.seed_rewards(session, "test")
    theirs = await run(database, service, EnrollMember("e", "ada"), program="other")
    assert theirs.member_id is not None
    await run(database, service, purchase("p", "ada", "O-1", item("10.00")), program="other")
    before = await table_counts(database)
    refused: list[tuple[Command, str]] = [
        (AdjustPoints("a", MemberRef(id=theirs.member_id), 5, "x"), "UNKNOWN_MEMBER"),
        (AdjustPoints("b", MemberRef(customer_id="ada"), 5, "x"), "UNKNOWN_MEMBER"),
        (RefundPurchase("c", "O-1", Decimal("1")), "UNKNOWN_ORDER"),
    ]
    for command, code in refused:
        outcome = await run(database, service, command, program="test")
        assert outcome.problem is not None and outcome.problem.code == code
    after = await table_counts(database)
    assert after == {**before, "idempotency_keys": before["idempotency_keys"] + 3}
    # and the reward catalog of one program is not the other's
    redeem = RedeemReward("d", MemberRef(id=theirs.member_id), "five-off")
    outcome = await run(database, service, redeem, program="other")
    assert outcome.problem is not None and outcome.problem.code == "UNKNOWN_REWARD"
