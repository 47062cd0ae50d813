"""The custom scalars of DESIGN §4: DateTime with an offset, Decimal as a string."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import strawberry

MAX_DECIMAL_TEXT = 40
MAX_DIGITS = 15  # before the point: amounts up to 10^15
MAX_DECIMALS = 10


def _parse_datetime(value: Any) -> datetime:
    if not isinstance(value, str) or len(value) > 40:
        raise ValueError("DateTime is an ISO-8601 string with an offset")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("DateTime needs an offset, e.g. 2026-11-25T10:00:00Z")
    return parsed


def _serialize_datetime(value: datetime) -> str:
    return value.isoformat()


def _parse_decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError('Decimal is a string, e.g. "12.50"')
    text = str(value)
    if len(text) > MAX_DECIMAL_TEXT:
        raise ValueError("Decimal too long")
    try:
        parsed = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a decimal") from None
    exponent = parsed.as_tuple().exponent
    if not isinstance(exponent, int):  # NaN, sNaN, Infinity
        raise ValueError("Decimal must be finite")
    if parsed and (parsed.adjusted() > MAX_DIGITS or exponent < -MAX_DECIMALS):
        raise ValueError(
            f"Decimal out of range: at most {MAX_DIGITS} digits and {MAX_DECIMALS} decimals"
        )
    return parsed


def _serialize_decimal(value: Decimal) -> str:
    return format(value, "f")


DateTimeScalar = strawberry.scalar(
    name="DateTime",
    description="ISO-8601 date and time with an offset",
    serialize=_serialize_datetime,
    parse_value=_parse_datetime,
)

DecimalScalar = strawberry.scalar(
    name="Decimal",
    description='A decimal number as a string, "12.50"',
    serialize=_serialize_decimal,
    parse_value=_parse_decimal,
)

SCALARS: dict[object, Any] = {datetime: DateTimeScalar, Decimal: DecimalScalar}
