"""Keyset pagination: opaque cursors that carry the last key seen, and page sizes."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Generic, TypeVar

from ledger import rules
from resolvers.errors import BAD_USER_INPUT, ApiError

T = TypeVar("T")
MAX_PAGE = 100
MAX_CURSOR = 200


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    has_next: bool
    cursors: list[str]


DEFAULT_PAGE = 20


def page_size(first: int | None) -> int:
    if first is None:
        return DEFAULT_PAGE
    if not 1 <= first <= MAX_PAGE:
        raise ApiError(f"first must be between 1 and {MAX_PAGE}", BAD_USER_INPUT)
    return first


def cost_page(first: object) -> int:
    """The page size the query cost counts for a coerced `first`: what `page_size`
    serves (a page it refuses is costed as asked, so it can only cost more)."""
    if first is None:
        return DEFAULT_PAGE
    return first if isinstance(first, int) and first >= 1 else 1


def ascii_int(text: str, max_digits: int = 18) -> int | None:
    """The integer of a string of ASCII digits only, else None (`str.isdigit` also takes
    other scripts' digits and superscripts, which `int` maps or refuses)."""
    if not text or len(text) > max_digits or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


def encode(kind: str, key: object) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{key}".encode()).decode().rstrip("=")


def decode(kind: str, cursor: str | None) -> str | None:
    """The key in a cursor of this kind; BAD_USER_INPUT for anything else."""
    if cursor is None:
        return None
    try:
        if len(cursor) > MAX_CURSOR:
            raise ValueError
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiError("after is not a cursor of this list", BAD_USER_INPUT) from None
    prefix, _, key = text.partition(":")
    if prefix != kind or not key or rules.text_problem(key):
        raise ApiError("after is not a cursor of this list", BAD_USER_INPUT)
    return key


def decode_int(kind: str, cursor: str | None) -> int | None:
    key = decode(kind, cursor)
    if key is None:
        return None
    number = ascii_int(key)
    if number is None:
        raise ApiError("after is not a cursor of this list", BAD_USER_INPUT)
    return number


def page(kind: str, rows: list[T], size: int, key: str = "id") -> Page[T]:
    """`rows` fetched with one extra row to tell whether another page follows."""
    items = rows[:size]
    return Page(items, len(rows) > size, [encode(kind, getattr(row, key)) for row in items])
