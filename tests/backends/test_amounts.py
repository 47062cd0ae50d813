"""Platform money converted exactly: minor units by the currency's exponent, and a
WooCommerce line priced so the ledger's `quantity × unit price − discount` is its total."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from backends.amounts import from_minor_units, line_of_total
from ledger import rules

cents = st.integers(min_value=0, max_value=10**9).map(lambda n: Decimal(n).scaleb(-2))


@given(st.integers(min_value=1, max_value=10_000), cents, cents)
def test_a_line_of_total_is_exactly_its_total(
    quantity: int, subtotal: Decimal, off: Decimal
) -> None:
    total = max(subtotal - off, Decimal(0))
    line = line_of_total("SKU", quantity, subtotal, total)
    assert line.quantity * line.unit_price - line.discount == total
    assert line.discount >= 0
    assert rules.money_problem(line.unit_price, allow_zero=True, maximum=Decimal(10**12)) is None


def test_a_line_that_divides_keeps_its_unit_price() -> None:
    line = line_of_total("Bar3", 2, Decimal("6.00"), Decimal("5.40"))
    assert (line.unit_price, line.discount) == (Decimal("3.00"), Decimal("0.60"))


def test_minor_units_never_go_through_float() -> None:
    # 0.1 + 0.2 in float is 0.30000000000000004; 30 minor units are exactly 0.30.
    assert from_minor_units(30, "eur") == Decimal("0.30")
    assert from_minor_units(2**53 + 1, "usd") == Decimal("90071992547409.93")
