"""The domain's errors.

Business outcomes (not enough points, out of stock, ...) are `LedgerError`s with a stable
`code`; the GraphQL layer turns them into `userErrors`. A `ProgramFileError` stops start-up.
Anything else is a bug and is masked at the boundary.
"""

from __future__ import annotations

from collections.abc import Sequence


class LedgerError(Exception):
    """A business outcome that refuses a command. Nothing of the command is written."""

    code = "INVALID_STATE"
    # Whether an idempotency key keeps this outcome. Input that fails validation is not
    # kept (as Stripe does), so the caller can correct it and retry with the same key.
    kept = True

    def __init__(self, message: str, field: Sequence[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = list(field) if field is not None else None


class InsufficientPoints(LedgerError):
    code = "INSUFFICIENT_POINTS"


class OutOfStock(LedgerError):
    code = "OUT_OF_STOCK"


class LimitReached(LedgerError):
    code = "LIMIT_REACHED"


class TierRequired(LedgerError):
    code = "TIER_REQUIRED"


class UnknownMember(LedgerError):
    code = "UNKNOWN_MEMBER"


class UnknownReward(LedgerError):
    code = "UNKNOWN_REWARD"


class UnknownOrder(LedgerError):
    code = "UNKNOWN_ORDER"


class UnknownAction(LedgerError):
    code = "UNKNOWN_ACTION"


class UnknownRedemption(LedgerError):
    code = "UNKNOWN_REDEMPTION"


class UnknownHold(LedgerError):
    code = "UNKNOWN_HOLD"


class DuplicateOrder(LedgerError):
    code = "DUPLICATE_ORDER"


class AlreadyEnrolled(LedgerError):
    code = "ALREADY_ENROLLED"


class InvalidAmount(LedgerError):
    code = "INVALID_AMOUNT"
    kept = False


class CurrencyMismatch(LedgerError):
    code = "CURRENCY_MISMATCH"
    kept = False


class IdempotencyConflict(LedgerError):
    code = "IDEMPOTENCY_CONFLICT"


class InvalidState(LedgerError):
    code = "INVALID_STATE"


class InvalidInput(LedgerError):
    code = "INVALID_INPUT"
    kept = False


class ProgramFileError(Exception):
    """A program file that does not validate: names the file, the key and the reason."""

    def __init__(self, path: str, key: str, reason: str) -> None:
        super().__init__(f"{path}: {key}: {reason}" if key else f"{path}: {reason}")
        self.path = path
        self.key = key
        self.reason = reason
