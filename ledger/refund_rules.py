"""Refund arithmetic as pure functions (DESIGN §3, "Earning math"): what a refund by lines
or by amount takes back of what an order earned. No I/O, no clock, no database.

Refunds reverse points in proportion to what they refund, weighted by the factors the
refunded lines earned with; the order's reversal is cumulative, so rounding never drifts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction

from ledger.rules import MAX_QUANTITY, PricedLine, eligible_total, weighted_total


def allocate_line_refund(
    priced: Sequence[PricedLine],
    refunded: Sequence[int],
    requests: Sequence[tuple[str, int]],
    *,
    by_ref: bool = False,
) -> list[int]:
    """Refunded quantity per line after a refund by (sku, quantity), or by (ref, quantity)
    when `by_ref` (the platform's line id, which tells apart lines of one sku).

    A sku that appears on several lines is refunded from the first line with quantity left.
    Raises ValueError (with the request index) when a sku is not on the order or more is
    refunded than was bought.
    """
    result = list(refunded)
    for index, (sku, quantity) in enumerate(requests):
        if not 0 < quantity <= MAX_QUANTITY:
            raise RefundLineError(index, "quantity", f"must be between 1 and {MAX_QUANTITY}")
        matching = [i for i, line in enumerate(priced) if (line.ref if by_ref else line.sku) == sku]
        if not matching:
            what = "line" if by_ref else "sku"
            raise RefundLineError(index, what, f"{what} {sku!r} is not on this order")
        left = quantity
        for i in matching:
            take = min(left, priced[i].quantity - result[i])
            result[i] += take
            left -= take
        if left:
            raise RefundLineError(index, "quantity", "more than remains refundable on the order")
    return result


class RefundLineError(ValueError):
    def __init__(self, index: int, field: str, reason: str) -> None:
        super().__init__(reason)
        self.index = index
        self.field = field
        self.reason = reason


def refunded_eligible(priced: Sequence[PricedLine], refunded: Sequence[int]) -> Fraction:
    """The eligible amount refunded by lines: Σ refunded quantity × unit amount."""
    return sum(
        (
            Fraction(line.amount) * n / line.quantity
            for line, n in zip(priced, refunded, strict=True)
        ),
        Fraction(0),
    )


def refund_weight(
    priced: Sequence[PricedLine], refunded: Sequence[int], refunded_amount: Decimal
) -> Fraction:
    """R: Σ refunded quantity × unit amount × factor, plus refunded amount × W / E."""
    by_lines = sum(
        (
            Fraction(line.weighted) * n / line.quantity
            for line, n in zip(priced, refunded, strict=True)
        ),
        Fraction(0),
    )
    eligible = eligible_total(priced)
    by_amount = (
        Fraction(refunded_amount) * weighted_total(priced) / eligible if eligible else Fraction(0)
    )
    return by_lines + by_amount


def total_reversal(points: int, refund_weight_sum: Fraction, weighted: Fraction) -> int:
    """floor(P × ΣR / W), never more than P: the order's cumulative reversal."""
    if weighted <= 0 or points <= 0:
        return 0
    return min(points, math.floor(points * min(refund_weight_sum, weighted) / weighted))
