"""Platform money formats, converted exactly to `Decimal` (never through float).

Stripe sends integer amounts in the currency's minor unit; WooCommerce sends decimal
strings in major units and a line's `total` after discounts. The ledger takes lines of
`quantity × unit_price − discount`.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

from ledger import rules
from ledger.rules import Line

# Stripe's zero-decimal currencies: "to charge 500 JPY, ... amount 500"
# (https://docs.stripe.com/currencies#zero-decimal).
ZERO_DECIMAL_CURRENCIES = frozenset(
    {
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "JPY",
        "KMF",
        "KRW",
        "MGA",
        "PYG",
        "RWF",
        "UGX",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    }
)
# Three-decimal currencies (https://docs.stripe.com/currencies#three-decimal).
THREE_DECIMAL_CURRENCIES = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})


def minor_unit_exponent(currency: str) -> int:
    """Decimal places of one minor unit of `currency` (ISO 4217, any case), as Stripe counts."""
    code = currency.upper()
    if code in ZERO_DECIMAL_CURRENCIES:
        return 0
    if code in THREE_DECIMAL_CURRENCIES:
        return 3
    return 2


def from_minor_units(amount: int, currency: str) -> Decimal:
    """An integer of minor units as an exact Decimal of major units: 1099 USD → 10.99,
    500 JPY → 500, 1234 KWD → 1.234."""
    return Decimal(amount).scaleb(-minor_unit_exponent(currency))


def line_of_total(
    sku: str | None, quantity: int, subtotal: Decimal, total: Decimal, category: str | None = None
) -> Line:
    """A ledger line whose amount is exactly `total` (the line after discounts), priced
    from `subtotal` (before discounts) per unit: the unit price is rounded up to the
    ledger's money places when the subtotal does not divide, and the discount takes up
    the difference, so `quantity × unit_price − discount == total` always."""
    base = max(subtotal, total)
    step = Decimal(1).scaleb(-rules.MONEY_PLACES)
    unit = (base / quantity).quantize(step, rounding=ROUND_CEILING)
    return Line(sku, category, quantity, unit, unit * quantity - total)
