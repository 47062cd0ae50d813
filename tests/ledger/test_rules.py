"""The earning and refund math of DESIGN §3, with exact points worked out by hand."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import rules
from ledger.program import Channel, Program
from ledger.rules import Line, RefundLineError
from tests.support.ledger import make_program

MON = datetime(2026, 3, 2, 15, tzinfo=UTC)  # Monday 10:00 in New York
TUE = datetime(2026, 3, 3, 15, tzinfo=UTC)  # Tuesday 10:00 in New York
PROGRAM = make_program()  # shoes ×2, Tuesday ×1.5 (America/New_York), gift-cards excluded


def line(price: str, qty: int = 1, category: str | None = None, **kw: str) -> Line:
    return Line(
        sku=kw.get("sku"),
        category=category,
        quantity=qty,
        unit_price=Decimal(price),
        discount=Decimal(kw.get("discount", "0")),
    )


def points(
    lines: list[Line],
    at: datetime = MON,
    tier: str = "1",
    program: Program = PROGRAM,
    channel: Channel = Channel.ONLINE,
) -> int:
    priced = rules.price_lines(program, lines, channel, at)
    return rules.purchase_points(priced, program.earning.points_per_unit, Decimal(tier))


@pytest.mark.parametrize(
    ("lines", "at", "tier", "expected"),
    [
        pytest.param([line("10.00")], MON, "1", 10, id="plain"),
        # 3 × 19.99 − 5.00 = 54.97 → 54
        pytest.param([line("19.99", 3, discount="5.00")], MON, "1", 54, id="discount"),
        pytest.param([line("20.00", 2, discount="40.00")], MON, "1", 0, id="fully-discounted"),
        # the gift card earns nothing, the shirt earns 10
        pytest.param(
            [line("25.00", category="gift-cards"), line("10.00", category="apparel")],
            MON,
            "1",
            10,
            id="excluded-category",
        ),
        pytest.param([line("50.00", category="shoes")], MON, "1", 100, id="shoes-x2"),
        # ×2 and ×1.5 stack on one line: 50 × 3
        pytest.param([line("50.00", category="shoes")], TUE, "1", 150, id="stacked-x3"),
        # 10 × 3 + 10 × 1.5 = 45
        pytest.param(
            [line("10.00", category="shoes"), line("10.00", category="apparel")],
            TUE,
            "1",
            45,
            id="stacking-per-line",
        ),
        # 0.50 + 0.50 = 1.00 → 1; a floor per line would give 0
        pytest.param([line("0.50"), line("0.50")], MON, "1", 1, id="one-floor-at-the-end"),
        # 1.00 × 1.5 = 1.5 → 1; 3 × 1.00 × 1.5 = 4.5 → 4
        pytest.param([line("1.00")], TUE, "1", 1, id="half-floors-down"),
        pytest.param([line("1.00", 3)], TUE, "1", 4, id="four-and-a-half"),
        # 9.999 → 9, and 3 × 0.3333 = 0.9999 → 0
        pytest.param([line("9.999")], MON, "1", 9, id="point-999"),
        pytest.param([line("0.3333", 3)], MON, "1", 0, id="just-under-one"),
        # Silver 1.25: 10 × 1.25 = 12.5 → 12
        pytest.param([line("10.00")], MON, "1.25", 12, id="silver"),
        # Gold 1.5 on Tuesday shoes: 10 × 2 × 1.5 × 1.5 = 45
        pytest.param([line("10.00", category="shoes")], TUE, "1.5", 45, id="gold-tuesday-shoes"),
        # (0.50 + 0.50) × 1.25 = 1.25 → 1: the tier applies before the single floor
        pytest.param([line("0.50"), line("0.50")], MON, "1.25", 1, id="tier-before-floor"),
        # (0.40 + 0.40) × 1.25 = 1.0 → 1, while floor(0.8) × 1.25 would give 0
        pytest.param([line("0.40"), line("0.40")], MON, "1.25", 1, id="tier-inside-floor"),
    ],
)
def test_purchase_points(lines: list[Line], at: datetime, tier: str, expected: int) -> None:
    assert points(lines, at, tier) == expected


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        # Tuesday 22:30 in New York (UTC−5) although Wednesday in UTC
        pytest.param(datetime(2026, 3, 4, 3, 30, tzinfo=UTC), 15, id="tue-late-ny"),
        # Wednesday 00:30 in New York
        pytest.param(datetime(2026, 3, 4, 5, 30, tzinfo=UTC), 10, id="wed-early-ny"),
        # Monday 23:30 in New York, Tuesday in UTC
        pytest.param(datetime(2026, 3, 3, 4, 30, tzinfo=UTC), 10, id="mon-late-ny"),
        # after the switch to daylight time on 8 March (UTC−4): 04:30Z is Wednesday 00:30,
        # which in standard time would still have been Tuesday 23:30
        pytest.param(datetime(2026, 3, 11, 4, 30, tzinfo=UTC), 10, id="dst-wed"),
        pytest.param(datetime(2026, 3, 11, 3, 30, tzinfo=UTC), 15, id="dst-tue"),
    ],
)
def test_weekday_rules_read_the_program_time_zone(at: datetime, expected: int) -> None:
    assert points([line("10.00")], at) == expected


def test_sku_channel_and_date_window_multipliers() -> None:
    program = make_program(
        earning={
            "points_per_unit": "1",
            "multipliers": [
                {"name": "Hero sku", "factor": "3", "skus": ["HERO"]},
                {"name": "In store", "factor": "2", "channels": ["POS"]},
                {
                    "name": "Launch day",
                    "factor": "4",
                    "starts_at": "2026-03-01T00:00:00Z",
                    "ends_at": "2026-03-02T00:00:00Z",
                },
            ],
        }
    )
    hero = line("10.00", sku="HERO")
    other = line("10.00", sku="OTHER")
    assert points([hero, other], MON, program=program) == 40  # 30 + 10
    assert points([hero], MON, program=program, channel=Channel.POS) == 60
    launch = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert points([other], launch, program=program) == 40
    # ends_at is exclusive; starts_at inclusive
    assert points([other], datetime(2026, 3, 2, tzinfo=UTC), program=program) == 10
    assert points([other], datetime(2026, 3, 1, tzinfo=UTC), program=program) == 40


@pytest.mark.parametrize(
    ("ppu", "price", "expected"),
    [
        pytest.param("0.1", "99.99", 9, id="tenth"),  # 9.999
        pytest.param("2.5", "3.33", 8, id="two-and-a-half"),  # 8.325
        pytest.param("0", "500.00", 0, id="zero"),
    ],
)
def test_points_per_unit(ppu: str, price: str, expected: int) -> None:
    program = make_program(earning={"points_per_unit": ppu})
    assert points([line(price)], program=program) == expected


# An order of one pair of shoes (50.00, ×2) and two pairs of socks (10.00 each) on a
# Monday: W = 100 + 20 = 120, E = 70.
ORDER = rules.price_lines(
    PROGRAM,
    [line("50.00", category="shoes", sku="SHOE"), line("10.00", 2, sku="SOCK")],
    Channel.ONLINE,
    MON,
)


def reversal(order_points: int, refunded: list[int], amount: str = "0") -> int:
    weight = rules.refund_weight(ORDER, refunded, Decimal(amount))
    return rules.total_reversal(order_points, weight, rules.weighted_total(ORDER))


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
    assert rules.total_reversal(100, Fraction(500), Fraction(120)) == 100
    assert rules.total_reversal(0, Fraction(10), Fraction(120)) == 0
    assert rules.total_reversal(50, Fraction(10), Fraction(0)) == 0


def test_refund_by_amount_uses_the_order_weighting() -> None:
    # Tuesday shoes: W = 150, E = 50, P = 150; refunding 25.00 gives R = 75 → 75
    priced = rules.price_lines(PROGRAM, [line("50.00", category="shoes")], Channel.ONLINE, TUE)
    weight = rules.refund_weight(priced, [0], Decimal("25.00"))
    assert weight == 75
    assert rules.total_reversal(150, weight, rules.weighted_total(priced)) == 75


def test_line_refunds_fill_lines_of_the_same_sku_in_order() -> None:
    priced = rules.price_lines(
        PROGRAM, [line("5.00", 2, sku="A"), line("4.00", 3, sku="A")], Channel.ONLINE, MON
    )
    assert rules.allocate_line_refund(priced, [0, 0], [("A", 4)]) == [2, 2]
    assert rules.allocate_line_refund(priced, [2, 2], [("A", 1)]) == [2, 3]
    # refunded eligible: 2 × 5.00 + 2 × 4.00
    assert rules.refunded_eligible(priced, [2, 2]) == 18


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
        rules.allocate_line_refund(ORDER, [0, 0], requests)
    assert (raised.value.index, raised.value.field) == (index, field)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, "Bronze"), (999, "Bronze"), (1000, "Silver"), (4999, "Silver"), (5000, "Gold")],
)
def test_tier_for(value: int, expected: str) -> None:
    assert rules.tier_for(PROGRAM.tiers, value).name == expected


def test_next_tier() -> None:
    bronze, silver, gold = PROGRAM.tiers
    assert rules.next_tier(PROGRAM.tiers, bronze) == silver
    assert rules.next_tier(PROGRAM.tiers, gold) is None


def test_birthdays() -> None:
    leap = date(2000, 2, 29)
    assert rules.birthday_in(leap, 2027) == date(2027, 2, 28)
    assert rules.birthday_in(leap, 2028) == date(2028, 2, 29)
    assert rules.birthday_due(date(1990, 6, 1), date(2026, 6, 1))
    assert rules.birthday_due(date(1990, 6, 1), date(2026, 6, 7))
    assert not rules.birthday_due(date(1990, 6, 1), date(2026, 6, 8))
    assert not rules.birthday_due(date(1990, 6, 1), date(2026, 5, 31))


def test_hold_discount_is_exact_money() -> None:
    assert rules.hold_discount(250, Decimal("0.01")) == Decimal("2.50")
    assert rules.hold_discount(1, Decimal("0.005")) == Decimal("0.00")
    assert rules.hold_discount(3, Decimal("0.333")) == Decimal("1.00")


@pytest.mark.parametrize(
    ("bad", "field", "reason"),
    [
        pytest.param(line("10.00", 0), "quantity", "must be between 1 and 1000000", id="qty-0"),
        pytest.param(line("10.00", -2), "quantity", "must be between 1 and 1000000", id="qty-neg"),
        pytest.param(line("0"), "unitPrice", "must be positive", id="price-0"),
        pytest.param(line("-1.00"), "unitPrice", "must be positive", id="price-neg"),
        pytest.param(line("1e30"), "unitPrice", "must be at most 1000000000", id="absurd"),
        pytest.param(line("NaN"), "unitPrice", "must be a finite number", id="nan"),
        pytest.param(line("Infinity"), "unitPrice", "must be a finite number", id="inf"),
        pytest.param(
            line("10.00001"), "unitPrice", "has more than 4 decimal places", id="precision"
        ),
        pytest.param(
            line("10.00", 2, discount="20.01"), "discount", "must be at most 20.00", id="discount"
        ),
        pytest.param(
            line("10.00", discount="-1"), "discount", "must not be negative", id="neg-discount"
        ),
    ],
)
def test_line_problems(bad: Line, field: str, reason: str) -> None:
    assert rules.line_problems([line("1.00"), bad]) == [(["lines", "1", field], reason)]


def test_an_order_needs_lines() -> None:
    assert rules.line_problems([]) == [(["lines"], "an order needs at least one line")]
    too_many = [line("1.00")] * (rules.MAX_LINES + 1)
    assert rules.line_problems(too_many) == [(["lines"], "an order has at most 1000 lines")]


money = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("9999.99"), places=2)
categories = st.sampled_from([None, "shoes", "gift-cards", "apparel"])


@given(
    st.lists(st.tuples(money, st.integers(1, 20), categories), min_size=1, max_size=8),
    st.sampled_from([MON, TUE]),
    st.sampled_from(["1", "1.25", "1.5"]),
)
def test_points_are_the_floor_of_the_exact_sum(
    items: list[tuple[Decimal, int, str | None]], at: datetime, tier: str
) -> None:
    lines = [Line(None, category, qty, price) for price, qty, category in items]
    tuesday = Fraction(3, 2) if at == TUE else Fraction(1)
    exact = sum(
        (
            Fraction(price) * qty * (2 if category == "shoes" else 1) * tuesday
            for price, qty, category in items
            if category != "gift-cards"
        ),
        Fraction(0),
    )
    assert points(lines, at, tier) == math.floor(exact * Fraction(Decimal(tier)))


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


B = rules.Balances


@pytest.mark.parametrize(
    ("balances", "problem"),
    [
        (B(0, 0, 0, 0), None),
        (B(rules.MAX_BALANCE, 0, 0, rules.MAX_BALANCE), None),
        (B(rules.MAX_BALANCE + 1, 0, 0, 0), "may not exceed 1000000000 points"),
        (B(0, rules.MAX_BALANCE + 1, 0, 0), "may not exceed 1000000000 points"),
        (B(0, 0, rules.MAX_BALANCE + 1, 0), "may not exceed 1000000000 points"),
        (B(400_000_000, 400_000_000, 200_000_000, 0), None),  # the sum exactly
        (B(400_000_000, 400_000_000, 200_000_001, 0), "may not exceed 1000000000 points"),
        (B(-rules.MAX_DEBT, 0, 0, 0), None),
        (B(-rules.MAX_DEBT - 1, 0, 0, 0), "may not fall below -1000000000 points"),
        # a debt does not make room above the bound for pending or held
        (B(-5, rules.MAX_BALANCE, 5, 0), None),
        (B(-5, rules.MAX_BALANCE + 1, 0, 0), "may not exceed 1000000000 points"),
        (B(0, 0, 0, rules.MAX_LIFETIME), None),
        (B(0, 1, 0, rules.MAX_LIFETIME), "lifetime earned points may not exceed 2000000000"),
        (B(0, 0, 0, rules.MAX_LIFETIME + 1), "lifetime earned points may not exceed 2000000000"),
    ],
)
def test_balance_bounds(balances: rules.Balances, problem: str | None) -> None:
    found = rules.balance_problem(balances)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_every_bounded_balance_fits_a_graphql_int() -> None:
    # a cancel on top of a full balance included
    largest = max(rules.MAX_BALANCE + rules.MAX_POINTS, rules.MAX_LIFETIME, rules.MAX_DEBT)
    assert largest < 2**31


@pytest.mark.parametrize(
    ("start", "points", "pending", "earned", "after"),
    [
        (B(10, 0, 0, 10), 5, False, True, B(15, 0, 0, 15)),
        (B(10, 0, 0, 10), 5, True, True, B(10, 5, 0, 10)),
        (B(10, 0, 0, 10), 5, False, False, B(15, 0, 0, 10)),  # an adjustment earns nothing
        (B(-10, 0, 0, 0), 5, False, True, B(-5, 0, 0, 5)),
    ],
)
def test_credited(
    start: rules.Balances, points: int, pending: bool, earned: bool, after: rules.Balances
) -> None:
    assert rules.credited(start, points, pending=pending, earned=earned) == after


def test_debited() -> None:
    assert rules.debited(B(10, 3, 2, 10), 25) == B(-15, 3, 2, 10)


@pytest.mark.parametrize(
    ("eligible", "points", "problem"),
    [
        (Fraction(0), 0, None),
        (Fraction(2_000_000_000), rules.MAX_POINTS, None),
        (Fraction(2_000_000_001), 0, "eligible amount may not exceed 2000000000"),
        (Fraction(4_000_000_001, 2), 0, "eligible amount"),  # 2e9 + 0.5
        (Fraction(10), rules.MAX_POINTS + 1, "more than 1000000000 points"),
    ],
)
def test_order_bounds(eligible: Fraction, points: int, problem: str | None) -> None:
    found = rules.order_problem(eligible, points)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_the_largest_order_the_lines_allow_is_beyond_the_bound() -> None:
    lines = [line("1000000000", rules.MAX_QUANTITY)] * rules.MAX_LINES
    assert rules.line_problems(lines) == []
    priced = rules.price_lines(PROGRAM, lines, Channel.ONLINE, MON)
    assert rules.order_problem(rules.eligible_total(priced), 0) is not None


@pytest.mark.parametrize(
    ("days_ago", "limit", "refused"),
    [
        (0, 30, False),
        (30, 30, False),
        (30.0001, 30, True),
        (400, 30, True),
        (0, 0, False),
        (0.0001, 0, True),
        (3650, 3650, False),
    ],
)
def test_backdate_limit(days_ago: float, limit: int, refused: bool) -> None:
    occurred = MON - timedelta(days=days_ago)
    problem = rules.backdate_problem(occurred, MON, limit)
    assert (problem is not None) == refused
    if refused:
        assert problem == f"occurredAt may lie at most {limit} days in the past"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("ada", None),
        ("", None),  # emptiness is the caller's own check
        ("Zoë 🎉 日本", None),  # any valid text, astral characters included
        ("a\x00b", "must not contain NUL characters"),
        ("\x00", "must not contain NUL characters"),
        ("a\ud800", "must be valid Unicode text (no lone surrogates)"),
        ("\udfff", "must be valid Unicode text (no lone surrogates)"),
        ("\ud83c\udf89", "must be valid Unicode text (no lone surrogates)"),  # a split pair
    ],
)
def test_text_problem(text: str, problem: str | None) -> None:
    assert rules.text_problem(text) == problem
