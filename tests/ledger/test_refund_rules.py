"""The refund arithmetic of DESIGN §3: proportional, weighted by the line factors,
cumulative so rounding never drifts, and never more than the order earned."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import refund_rules, rules
from ledger.program import Channel
from ledger.refund_rules import RefundLineError
from tests.ledger.test_rules import MON, PROGRAM, TUE, line

# An order of one pair of shoes (50.00, ×2) and two pairs of socks (10.00 each) on a
# Monday: W = 100 + 20 = 120, E = 70.
ORDER = rules.price_lines(
    PROGRAM,
    [line("50.00", category="shoes", sku="SHOE"), line("10.00", 2, sku="SOCK")],
    Channel.ONLINE,
    MON,
)


def reversal(order_points: int, refunded: list[int], amount: str = "0") -> int:
    weight = refund_rules.refund_weight(ORDER, refunded, Decimal(amount))
    return refund_rules.total_reversal(order_points, weight, rules.weighted_total(ORDER))


@pytest.mark.parametrize(
    ("order_points", "refunded", "amount", "expected"),
    [
        pytest.param(120, [0, 1], "0", 10, id="one-sock"),
        pytest.param(120, [1, 1], "0", 110, id="sock-and-shoes"),
        pytest.param(120, [1, 2], "0", 120, id="everything"),
        # Silver earned floor(120 × 1.25) = 150: a sock reverses floor(150 × 10/120) = 12,
        # two socks floor(150 × 20/120) = 25, so the second sock takes 13 — no drift.
        pytest.param(150, [0, 1], "0", 12, id="tier-one-sock"),
        pytest.param(150, [0, 2], "0", 25, id="tier-two-socks"),
        # by amount: R = amount × W / E = 7 × 120 / 70 = 12
        pytest.param(120, [0, 0], "7.00", 12, id="amount"),
        # 10 × 120 / 70 = 17.14… → 17
        pytest.param(120, [0, 0], "10.00", 17, id="amount-floors"),
        pytest.param(120, [0, 0], "70.00", 120, id="amount-everything"),
        # one sock by lines (10) plus 35.00 by amount (60): 70 of 120
        pytest.param(120, [0, 1], "35.00", 70, id="mixed"),
    ],
)
def test_refund_reversal_is_cumulative(
    order_points: int, refunded: list[int], amount: str, expected: int
) -> None:
    assert reversal(order_points, refunded, amount) == expected


def test_reversal_never_exceeds_what_the_order_earned() -> None:
    assert refund_rules.total_reversal(100, Fraction(500), Fraction(120)) == 100
    assert refund_rules.total_reversal(0, Fraction(10), Fraction(120)) == 0
    assert refund_rules.total_reversal(50, Fraction(10), Fraction(0)) == 0


def test_refund_by_amount_uses_the_order_weighting() -> None:
    # Tuesday shoes: W = 150, E = 50, P = 150; refunding 25.00 gives R = 75 → 75
    priced = rules.price_lines(PROGRAM, [line("50.00", category="shoes")], Channel.ONLINE, TUE)
    weight = refund_rules.refund_weight(priced, [0], Decimal("25.00"))
    assert weight == 75
    assert refund_rules.total_reversal(150, weight, rules.weighted_total(priced)) == 75


def test_line_refunds_fill_lines_of_the_same_sku_in_order() -> None:
    priced = rules.price_lines(
        PROGRAM, [line("5.00", 2, sku="A"), line("4.00", 3, sku="A")], Channel.ONLINE, MON
    )
    assert refund_rules.allocate_line_refund(priced, [0, 0], [("A", 4)]) == [2, 2]
    assert refund_rules.allocate_line_refund(priced, [2, 2], [("A", 1)]) == [2, 3]
    # refunded eligible: 2 × 5.00 + 2 × 4.00
    assert refund_rules.refunded_eligible(priced, [2, 2]) == 18


@pytest.mark.parametrize(
    ("requests", "index", "field"),
    [
        pytest.param([("B", 1)], 0, "sku", id="unknown-sku"),
        pytest.param([("SOCK", 1), ("SOCK", 2)], 1, "quantity", id="too-many"),
        pytest.param([("SOCK", 0)], 0, "quantity", id="zero"),
        pytest.param([("SOCK", -1)], 0, "quantity", id="negative"),
    ],
)
def test_line_refund_errors(requests: list[tuple[str, int]], index: int, field: str) -> None:
    with pytest.raises(RefundLineError) as raised:
        refund_rules.allocate_line_refund(ORDER, [0, 0], requests)
    assert (raised.value.index, raised.value.field) == (index, field)


@given(st.lists(st.tuples(st.integers(0, 1), st.integers(1, 2)), max_size=6))
def test_partial_refunds_are_monotone_and_bounded(steps: list[tuple[int, int]]) -> None:
    refunded = [0, 0]
    previous = 0
    for index, qty in steps:
        if refunded[index] + qty > ORDER[index].quantity:
            continue
        refunded[index] += qty
        total = reversal(150, refunded)
        assert previous <= total <= 150
        previous = total
    if refunded == [1, 2]:
        assert previous == 150
