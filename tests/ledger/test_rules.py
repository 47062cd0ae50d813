"""The program's arithmetic: the earning and refund math of DESIGN §3 with exact points
worked out by hand, money and cents, tier standing, what can be redeemed."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import rules
from ledger.models import EntryKind
from ledger.program import Channel, Program, Tier
from ledger.rules import Line
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


# Money and cents: exact, rounded down, never through a float.
@pytest.mark.parametrize(
    ("amount", "cents"),
    [
        pytest.param(Decimal(0), 0, id="zero"),
        pytest.param(Decimal("0.00"), 0, id="zero-with-places"),
        pytest.param(Decimal("0.01"), 1, id="one-cent"),
        pytest.param(Decimal("0.0099"), 0, id="under-a-cent-is-not-counted"),
        pytest.param(Decimal("12.34"), 1234, id="two-places"),
        pytest.param(Decimal("12.3456"), 1234, id="four-places-round-down"),
        pytest.param(Decimal("12.3499"), 1234, id="never-rounds-up"),
        pytest.param(Decimal("12.340000"), 1234, id="trailing-zeros"),
        pytest.param(Decimal("1E+3"), 100_000, id="exponent"),
        pytest.param(7, 700, id="int"),
        pytest.param(Fraction(1, 3), 33, id="third"),
        pytest.param(Fraction(2, 3), 66, id="two-thirds-round-down"),
        pytest.param(Decimal("-12.34"), -1234, id="negative-exact"),
        pytest.param(Decimal("-0.001"), -1, id="negative-rounds-toward-minus-infinity"),
        pytest.param(Decimal(rules.MAX_LIFETIME), rules.MAX_LIFETIME * 100, id="max-lifetime"),
        pytest.param(
            Decimal("123456789012345678901234567890.12"),
            12345678901234567890123456789012,
            id="beyond-decimal-context-precision",
        ),
    ],
)
def test_to_cents(amount: Decimal | Fraction | int, cents: int) -> None:
    assert rules.to_cents(amount) == cents


@pytest.mark.parametrize(
    ("cents", "text"),
    [
        pytest.param(0, "0.00", id="zero"),
        pytest.param(1, "0.01", id="one-cent"),
        pytest.param(99, "0.99", id="under-a-unit"),
        pytest.param(100, "1.00", id="one-unit"),
        pytest.param(1234, "12.34", id="two-places"),
        pytest.param(-5, "-0.05", id="negative"),
        pytest.param(rules.MAX_LIFETIME * 100, f"{rules.MAX_LIFETIME}.00", id="max-lifetime"),
        pytest.param(10**40 + 1, "1" + "0" * 37 + "0.01", id="beyond-decimal-context-precision"),
    ],
)
def test_from_cents(cents: int, text: str) -> None:
    money = rules.from_cents(cents)
    assert money == Decimal(text) and str(money) == text


@given(st.integers(-(10**30), 10**30))
def test_cents_survive_the_round_trip(cents: int) -> None:
    assert rules.to_cents(rules.from_cents(cents)) == cents


@given(st.decimals(min_value=-(10**9), max_value=10**9, places=4))
def test_to_cents_rounds_down_by_less_than_a_cent(amount: Decimal) -> None:
    kept = rules.from_cents(rules.to_cents(amount))
    assert kept <= amount < kept + Decimal("0.01")


@pytest.mark.parametrize(
    ("cents", "value"),
    [(0, 0), (1, 0), (99, 0), (100, 1), (1999, 19), (123_456, 1234), (-1, -1), (-100, -1)],
)
def test_spend_value_is_whole_units_rounded_down(cents: int, value: int) -> None:
    assert rules.spend_value(cents) == value


TOO_MUCH_SPEND = f"a member's net spend may not exceed {rules.MAX_LIFETIME}"
MAX_CENTS = rules.MAX_LIFETIME * 100


@pytest.mark.parametrize(
    ("spent_cents", "eligible", "problem"),
    [
        pytest.param(0, Fraction(0), None, id="nothing"),
        pytest.param(0, Fraction(rules.MAX_LIFETIME), None, id="one-order-at-the-bound"),
        pytest.param(
            0, rules.MAX_LIFETIME + Fraction(1, 10_000), TOO_MUCH_SPEND, id="one-order-past"
        ),
        pytest.param(MAX_CENTS, Fraction(0), None, id="at-the-bound-already"),
        pytest.param(MAX_CENTS - 1, Fraction(1, 100), None, id="last-cent"),
        # 0.0101 is past the last cent: the exact amount counts, not its cents
        pytest.param(MAX_CENTS - 1, Fraction(101, 10_000), TOO_MUCH_SPEND, id="exact-not-cents"),
        pytest.param(MAX_CENTS, Fraction(1, 10_000), TOO_MUCH_SPEND, id="any-amount-past"),
    ],
)
def test_spend_problem(spent_cents: int, eligible: Fraction, problem: str | None) -> None:
    assert rules.spend_problem(spent_cents, eligible) == problem


# Tier standing. The test program: Bronze 0, Silver 1000, Gold 5000.
BRONZE, SILVER, GOLD = PROGRAM.tiers


@pytest.mark.parametrize(
    ("upcoming", "qualifying", "expected"),
    [
        pytest.param(None, 0, None, id="top-tier"),
        pytest.param(None, 10**9, None, id="top-tier-any-value"),
        pytest.param(SILVER, 0, 1000, id="zero"),
        pytest.param(SILVER, 1, 999, id="one"),
        pytest.param(SILVER, 999, 1, id="one-short"),
        pytest.param(SILVER, 1000, 0, id="at-the-threshold"),
        pytest.param(SILVER, 4000, 0, id="past-the-threshold-never-negative"),
        pytest.param(GOLD, 1000, 4000, id="from-silver"),
    ],
)
def test_to_next(upcoming: Tier | None, qualifying: int, expected: int | None) -> None:
    assert rules.to_next(upcoming, qualifying) == expected


@pytest.mark.parametrize(
    ("tier", "qualifying", "expected"),
    [
        pytest.param(None, 0, rules.Standing(BRONZE, SILVER, 0, 1000), id="no-account"),
        pytest.param("Bronze", 250, rules.Standing(BRONZE, SILVER, 250, 750), id="bronze"),
        # the value crossed Silver; the stored tier moves on the next write or job run
        pytest.param("Bronze", 1200, rules.Standing(BRONZE, SILVER, 1200, 0), id="not-moved-yet"),
        pytest.param("Silver", 1000, rules.Standing(SILVER, GOLD, 1000, 4000), id="silver"),
        # a downgrade waits for the jobs: the stored tier stands, the gap is counted from it
        pytest.param("Gold", 10, rules.Standing(GOLD, None, 10, None), id="gold-top"),
        pytest.param("Platinum", 10, rules.Standing(BRONZE, SILVER, 10, 990), id="unknown-tier"),
    ],
)
def test_standing(tier: str | None, qualifying: int, expected: rules.Standing) -> None:
    assert rules.standing(PROGRAM.tiers, tier, qualifying) == expected


# What a member can redeem now.
@dataclass(frozen=True)
class Offer:
    id: str = "gift"
    cost: int = 100
    min_tier: str | None = None
    stock: int | None = None
    per_member_limit: int | None = None
    active: bool = True


@pytest.mark.parametrize(
    ("tier", "min_tier", "reaches"),
    [
        ("Bronze", None, True),
        ("Bronze", "Bronze", True),
        ("Bronze", "Silver", False),
        ("Silver", "Silver", True),
        ("Gold", "Silver", True),
        ("Silver", "Gold", False),
        ("Retired", "Silver", False),  # a tier the program no longer has ranks lowest
    ],
)
def test_tier_reaches(tier: str, min_tier: str | None, reaches: bool) -> None:
    assert rules.tier_reaches(PROGRAM.tiers, tier, min_tier) is reaches


@pytest.mark.parametrize(
    ("limit", "taken", "fits"),
    [
        (None, 0, True),
        (None, 10**6, True),
        (1, 0, True),
        (1, 1, False),
        (2, 1, True),
        (2, 3, False),
    ],
)
def test_within_limit(limit: int | None, taken: int, fits: bool) -> None:
    assert rules.within_limit(limit, taken) is fits


@pytest.mark.parametrize(
    ("offer", "tier", "available", "redeemed", "redeemable"),
    [
        pytest.param(Offer(), "Bronze", 100, {}, True, id="cost-equals-balance"),
        pytest.param(Offer(), "Bronze", 99, {}, False, id="one-point-short"),
        pytest.param(Offer(), "Bronze", 0, {}, False, id="zero-balance"),
        pytest.param(Offer(), "Bronze", -50, {}, False, id="negative-balance"),
        pytest.param(Offer(active=False), "Bronze", 10**6, {}, False, id="inactive"),
        pytest.param(Offer(min_tier="Silver"), "Bronze", 500, {}, False, id="tier-too-low"),
        pytest.param(Offer(min_tier="Silver"), "Silver", 500, {}, True, id="tier-reached"),
        pytest.param(Offer(min_tier="Silver"), "Gold", 500, {}, True, id="tier-above"),
        pytest.param(Offer(stock=0), "Bronze", 500, {}, False, id="out-of-stock"),
        pytest.param(Offer(stock=1), "Bronze", 500, {}, True, id="last-unit"),
        pytest.param(Offer(per_member_limit=1), "Bronze", 500, {"gift": 1}, False, id="limit"),
        pytest.param(Offer(per_member_limit=2), "Bronze", 500, {"gift": 1}, True, id="under-limit"),
        pytest.param(
            Offer(per_member_limit=1), "Bronze", 500, {"other": 5}, True, id="other-reward"
        ),
    ],
)
def test_redeemable_now(
    offer: Offer, tier: str, available: int, redeemed: dict[str, int], redeemable: bool
) -> None:
    expected = [offer] if redeemable else []
    assert rules.redeemable_now([offer], PROGRAM.tiers, tier, available, redeemed) == expected


def test_redeemable_now_keeps_the_catalog_order() -> None:
    catalog = [
        Offer("c", 50),
        Offer("a", 500),  # too dear
        Offer("b", 10, min_tier="Silver"),
        Offer("d", 10, stock=0),
        Offer("e", 20),
    ]
    found = rules.redeemable_now(catalog, PROGRAM.tiers, "Silver", 100, {})
    assert [offer.id for offer in found] == ["c", "b", "e"]
    assert rules.redeemable_now([], PROGRAM.tiers, "Gold", 100, {}) == []


# What a list of kinds asks of a history.
@pytest.mark.parametrize(
    ("kinds", "matching"),
    [
        pytest.param(None, None, id="none-given-every-kind"),
        pytest.param([], (), id="empty-list-no-kind"),
        pytest.param([EntryKind.EARN], (EntryKind.EARN,), id="one"),
        pytest.param(
            [EntryKind.REDEEM, EntryKind.BONUS, EntryKind.REDEEM],
            (EntryKind.BONUS, EntryKind.REDEEM),
            id="each-once-sorted",
        ),
    ],
)
def test_kinds_matching(
    kinds: list[EntryKind] | None, matching: tuple[EntryKind, ...] | None
) -> None:
    assert rules.kinds_matching(kinds) == matching
