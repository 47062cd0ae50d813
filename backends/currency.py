"""Amounts in a currency's minor units (Square's `Money.amount`), as exact Decimals.

The exponent of a currency is ISO 4217's: 2 unless listed here. Square sends amounts "in
the smallest denomination of the currency" (cents for USD, yen for JPY, fils for KWD).
"""

from __future__ import annotations

from decimal import Decimal

ZERO = ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI")
ZERO_MORE = ("VND", "VUV", "XAF", "XOF", "XPF")
THREE = ("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND")
FOUR = ("CLF", "UYW")
EXPONENTS: dict[str, int] = {
    **dict.fromkeys(ZERO + ZERO_MORE, 0),
    **dict.fromkeys(THREE, 3),
    **dict.fromkeys(FOUR, 4),
}


def exponent(currency: str) -> int:
    """The number of decimal places of `currency` (an upper-case ISO 4217 code)."""
    return EXPONENTS.get(currency, 2)


def from_minor(amount: int, currency: str) -> Decimal:
    """`amount` minor units of `currency` in major units, exactly (never through float)."""
    return Decimal(amount).scaleb(-exponent(currency))


def places_fit(value: Decimal, currency: str) -> bool:
    """Whether `value` has no more decimal places than `currency` has."""
    places = value.normalize().as_tuple().exponent
    return not isinstance(places, int) or -places <= exponent(currency)
