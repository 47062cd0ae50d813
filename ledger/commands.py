"""Commands: the inputs of every write, and the outcome every write returns.

A command is a frozen value; its fingerprint decides whether a repeated idempotency key
carries the same input. An `Outcome` names what the command changed (ids) or the
business error that refused it, and is what an idempotency key replays.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any

from ledger import rules
from ledger.errors import LedgerError
from ledger.program import Channel
from ledger.rules import Line

if TYPE_CHECKING:
    from ledger.models import Entry, Redemption

MAX_BATCH = 500


def member_client_key(customer_id: str) -> str:
    """Whose idempotency keys a member token's requests use."""
    return f"member:{customer_id}"


@dataclass(frozen=True)
class MemberRef:
    """Exactly one of `id` or `customer_id`."""

    id: int | None = None
    customer_id: str | None = None


@dataclass(frozen=True)
class EnrollMember:
    idempotency_key: str
    customer_id: str
    email: str | None = None
    name: str | None = None
    birthday: date | None = None
    referral_code: str | None = None


@dataclass(frozen=True)
class UpdateMember:
    idempotency_key: str
    member: MemberRef
    email: str | None = None
    name: str | None = None
    birthday: date | None = None


@dataclass(frozen=True)
class ForgetMember:
    idempotency_key: str
    member: MemberRef


@dataclass(frozen=True)
class RecordPurchase:
    idempotency_key: str
    member: MemberRef
    order_id: str
    currency: str
    lines: tuple[Line, ...]
    channel: Channel = Channel.ONLINE
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class RecordAction:
    idempotency_key: str
    member: MemberRef
    type: str
    occurred_at: datetime | None = None
    reference: str | None = None


@dataclass(frozen=True)
class RefundPurchase:
    """Exactly one of `amount`, `lines` (sku, quantity) and `line_refs` (the platform's
    line id, quantity). `keep_until_purchase`: a refund of an order not recorded yet is
    kept and applied when the purchase arrives (webhooks, whose order is not ours)."""

    idempotency_key: str
    order_id: str
    amount: Decimal | None = None
    lines: tuple[tuple[str, int], ...] | None = None
    line_refs: tuple[tuple[str, int], ...] | None = None
    keep_until_purchase: bool = False


@dataclass(frozen=True)
class AdjustPoints:
    idempotency_key: str
    member: MemberRef
    points: int
    reason: str
    allow_negative_balance: bool = False


@dataclass(frozen=True)
class RedeemReward:
    idempotency_key: str
    member: MemberRef
    reward_id: str


@dataclass(frozen=True)
class UseRedemption:
    idempotency_key: str
    code: str
    order_id: str | None = None


@dataclass(frozen=True)
class CancelRedemption:
    idempotency_key: str
    redemption_id: int


@dataclass(frozen=True)
class HoldPoints:
    idempotency_key: str
    member: MemberRef
    points: int
    order_id: str


@dataclass(frozen=True)
class CapturePoints:
    idempotency_key: str
    hold_id: int


@dataclass(frozen=True)
class ReleasePoints:
    """`owner`: the customer id of a member releasing its own hold (None for partners)."""

    idempotency_key: str
    hold_id: int
    owner: str | None = None


@dataclass(frozen=True)
class RetryWebhookDelivery:
    """Send an outbound webhook delivery again, now. The key is optional: without one,
    every call schedules the delivery again."""

    idempotency_key: str | None
    delivery_id: int


Command = (
    EnrollMember
    | UpdateMember
    | ForgetMember
    | RecordPurchase
    | RecordAction
    | RefundPurchase
    | AdjustPoints
    | RedeemReward
    | UseRedemption
    | CancelRedemption
    | HoldPoints
    | CapturePoints
    | ReleasePoints
)
# Every command `LoyaltyService.execute` runs: those above take a key, this one may not.
AnyCommand = Command | RetryWebhookDelivery


@dataclass(frozen=True)
class UpsertReward:
    id: str
    name: str
    cost: int
    min_tier: str | None = None
    stock: int | None = None
    per_member_limit: int | None = None
    active: bool = True


@dataclass(frozen=True)
class Problem:
    """A business error as the caller sees it: a stable code, a message, the input field."""

    code: str
    message: str
    field: list[str] | None = None

    @classmethod
    def of(cls, error: LedgerError) -> Problem:
        return cls(error.code, error.message, error.field)


@dataclass(frozen=True)
class Outcome:
    """What a command changed, by id, or the problem that refused it."""

    member_id: int | None = None
    entry_id: int | None = None
    redemption_id: int | None = None
    hold_id: int | None = None
    delivery_id: int | None = None
    problem: Problem | None = None
    replayed: bool = False
    # The entry written, as this transaction wrote it, for the answer that follows the
    # write; never stored (a replay reads the entry back by `entry_id`).
    entry: Entry | None = dataclasses.field(default=None, compare=False, repr=False)
    # Likewise the redemption written (a replay reads it back by `redemption_id`).
    redemption: Redemption | None = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(dataclasses.replace(self, entry=None, redemption=None))
        data.pop("replayed")
        data.pop("entry")
        data.pop("redemption")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Outcome:
        problem = data.get("problem")
        return cls(
            member_id=data.get("member_id"),
            entry_id=data.get("entry_id"),
            redemption_id=data.get("redemption_id"),
            hold_id=data.get("hold_id"),
            delivery_id=data.get("delivery_id"),
            problem=Problem(**problem) if problem else None,
            replayed=True,
        )


def unstorable_text(value: object, path: tuple[str, ...] = ()) -> tuple[list[str], str] | None:
    """The first string of a command that no database can store (NUL, lone surrogates),
    with its input path in the API's spelling (`lines.0.sku`), or None."""
    if isinstance(value, str):
        problem = rules.text_problem(value)
        return (list(path), problem) if problem else None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            found = unstorable_text(getattr(value, item.name), (*path, _camel(item.name)))
            if found:
                return found
    elif isinstance(value, tuple | list):
        for index, element in enumerate(value):
            found = unstorable_text(element, (*path, str(index)))
            if found:
                return found
    return None


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.capitalize() for part in rest)


# Fields added after keys were first stored: left out while they hold their default, so
# the fingerprints of keys stored before they existed stay the same.
_LATER_FIELDS = {"ref": None, "line_refs": None, "keep_until_purchase": False}


def fingerprint(command: AnyCommand) -> str:
    """A stable hash of the command's type and every input value."""
    payload = {
        "type": type(command).__name__,
        "input": _without_defaults(dataclasses.asdict(command)),
    }
    text = json.dumps(payload, sort_keys=True, default=_plain, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _without_defaults(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: _without_defaults(item)
            for key, item in value.items()
            if not (key in _LATER_FIELDS and item == _LATER_FIELDS[key])
        }
    if isinstance(value, list | tuple):
        return [_without_defaults(item) for item in value]
    return value


def _plain(value: object) -> str:
    if isinstance(value, Decimal):
        return str(value.normalize())  # never expanded: "9E+999999" stays short
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return str(value.value)
    raise TypeError(f"cannot fingerprint {type(value).__name__}")
