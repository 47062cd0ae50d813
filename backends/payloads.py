"""Reading platform payloads: JSON whose numbers are money, quantities, timestamps.

Floats are read as `Decimal`, never through binary floats.
Adobe Commerce and QuickBooks Online send amounts as JSON numbers (`12.75`) and
Lightspeed as numbers or strings; `json.loads(..., parse_float=Decimal)` keeps each
digit as sent. `NaN` and `Infinity` are refused, and nesting is bounded.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from backends.inbound import MAX_JSON_DEPTH, Unprocessable, money


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def loads(data: str | bytes, what: str = "the body") -> Any:
    """`data` as JSON with Decimal floats, or `Unprocessable` naming `what`."""
    try:
        value = json.loads(data, parse_float=Decimal, parse_constant=_no_constants)
    except RecursionError:
        raise Unprocessable(f"{what}: the JSON is nested too deeply") from None
    except ValueError:
        raise Unprocessable(f"{what} is not JSON") from None
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise Unprocessable(f"{what}: the JSON is nested more than {MAX_JSON_DEPTH} deep")
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        pending.extend((child, depth + 1) for child in children)
    return value


def amount(value: object, field: str) -> Decimal:
    """A money amount sent as a JSON number (read as Decimal or int) or a decimal string."""
    if isinstance(value, Decimal):
        value = str(value)
    return money(value, field)


def whole(value: object, field: str) -> int:
    """A quantity sent as a JSON number that must be whole (`2`, `2.0`, `"2.0000"`)."""
    number = amount(value, field)
    if number != number.to_integral_value() or abs(number) > 2**31 - 1:
        raise Unprocessable(f"{field} must be a whole number of units")
    return int(number)


def mapping(value: object, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Unprocessable(f"{field} must be an object")
    return value


def items(value: object, field: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise Unprocessable(f"{field} must be a list")
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise Unprocessable(f"{field}.{index} must be an object")
    return value


def timestamp(value: object, field: str) -> datetime | None:
    """A platform's time: ISO-8601 with an offset, or `YYYY-MM-DD HH:MM:SS` as the
    platforms store it in UTC (Lightspeed API 1.0, Magento); None when absent."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise Unprocessable(f"{field} must be a date and time")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Unprocessable(f"{field} must be a date and time") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
