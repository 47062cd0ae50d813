"""`events`: generic Standard Webhooks from a POS or a custom system (DESIGN §7).

Signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`,
five minutes' tolerance) with the program's `[webhook_secrets] events` secret (or any
of a list of them, during a rotation). The body is `{"type", "timestamp", "data"}`:

| type | data |
|---|---|
| `purchase.completed` | a `PurchaseInput` as JSON |
| `purchase.refunded` | a `RefundInput` as JSON |
| `member.enrolled` | an `EnrollMemberInput` as JSON |

A refund of an order not recorded yet is kept by the ledger and applied when the
purchase arrives. `data` is read with the GraphQL input's rules: camelCase names, no unknown field,
Decimal as strings, Int within 32 bits, DateTime with an offset. A missing
`idempotencyKey` is the `webhook-id`. Other types are ignored (200).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from backends.inbound import (
    BadSignature,
    Delivery,
    Identity,
    Ignored,
    Parsed,
    Unprocessable,
    WebhookSource,
    integer,
    json_object,
    money,
    required_header,
)
from ledger.commands import (
    Command,
    EnrollMember,
    MemberRef,
    RecordPurchase,
    RefundPurchase,
)
from ledger.program import Channel
from ledger.rules import Line

HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
MAX_TEXT = 40  # of a DateTime or Date


class Events(WebhookSource):
    name = "events"

    async def verify(self, delivery: Delivery, secrets: tuple[str, ...]) -> None:
        headers = {name: delivery.header(name) or "" for name in HEADERS}
        missing = [name for name, value in headers.items() if not value]
        if missing:
            raise BadSignature(f"missing {', '.join(missing)}")
        reason = "no signature matches"
        for secret in secrets:
            try:
                Webhook(secret).verify(delivery.body, headers, json_parse=False)
                return
            except WebhookVerificationError as exc:
                reason = str(exc)
            except ValueError:  # a malformed signature list, a body that is not UTF-8
                reason = "malformed webhook-signature or body"
        raise BadSignature(reason)

    def identify(self, delivery: Delivery) -> Identity:
        event_id = required_header(delivery, "webhook-id")
        try:
            kind = json_object(delivery).get("type")
        except Unprocessable:
            kind = None
        return Identity(event_id, kind if isinstance(kind, str) else "")

    async def parse(self, delivery: Delivery, identity: Identity) -> Parsed:
        body = json_object(delivery)
        kind = body.get("type")
        if not isinstance(kind, str):
            raise Unprocessable("type must be a string")
        reader = READERS.get(kind)
        if reader is None:
            return Ignored(f"type {kind!r} is not one this source acts on")
        data = body.get("data")
        if not isinstance(data, dict):
            raise Unprocessable("data must be an object")
        return [reader(_Input(data, "data"), identity.event_id)]


class _Input:
    """One GraphQL input object read from JSON, with the path of each field."""

    def __init__(self, data: dict[str, Any], path: str) -> None:
        self.data = data
        self.path = path

    def allow(self, *names: str) -> None:
        for name in self.data:
            if name not in names:
                raise Unprocessable(f"{self.path}.{name} is not a field of this input")

    def where(self, name: str) -> str:
        return f"{self.path}.{name}"

    def present(self, name: str) -> bool:
        return self.data.get(name) is not None

    def string(self, name: str, *, required: bool = False) -> str | None:
        value = self.data.get(name)
        if value is None:
            if required:
                raise Unprocessable(f"{self.where(name)} is required")
            return None
        if not isinstance(value, str):
            raise Unprocessable(f"{self.where(name)} must be a string")
        return value

    def required(self, name: str) -> str:
        value = self.string(name, required=True)
        assert value is not None
        return value

    def int(self, name: str) -> int:
        if self.data.get(name) is None:
            raise Unprocessable(f"{self.where(name)} is required")
        return integer(self.data[name], self.where(name))

    def datetime(self, name: str) -> datetime | None:
        value = self.string(name)
        if value is None:
            return None
        try:
            parsed = datetime.fromisoformat(value) if len(value) <= MAX_TEXT else None
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            raise Unprocessable(f"{self.where(name)} must be ISO-8601 with an offset")
        return parsed

    def date(self, name: str) -> date | None:
        value = self.string(name)
        if value is None:
            return None
        try:
            parsed = date.fromisoformat(value) if len(value) <= MAX_TEXT else None
        except ValueError:
            parsed = None
        if parsed is None:
            raise Unprocessable(f"{self.where(name)} must be an ISO-8601 date")
        return parsed

    def objects(self, name: str) -> list[_Input]:
        value = self.data.get(name)
        if not isinstance(value, list):
            raise Unprocessable(f"{self.where(name)} must be a list")
        items = []
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                raise Unprocessable(f"{self.where(name)}.{index} must be an object")
            items.append(_Input(item, f"{self.where(name)}.{index}"))
        return items

    def object(self, name: str) -> _Input:
        value = self.data.get(name)
        if not isinstance(value, dict):
            raise Unprocessable(f"{self.where(name)} must be an object")
        return _Input(value, self.where(name))


def _key(data: _Input, webhook_id: str) -> str:
    return data.string("idempotencyKey") or webhook_id


def _member(ref: _Input) -> MemberRef:
    ref.allow("id", "customerId")
    member_id, customer_id = ref.string("id"), ref.string("customerId")
    if (member_id is None) == (customer_id is None):
        raise Unprocessable(f"{ref.path}: give exactly one of id and customerId")
    if member_id is not None:
        if not (member_id.isascii() and member_id.isdigit() and len(member_id) <= 18):
            raise Unprocessable(f"{ref.where('id')} is not a member id")
        return MemberRef(id=int(member_id))
    return MemberRef(customer_id=customer_id)


def purchase(data: _Input, webhook_id: str) -> RecordPurchase:
    """A `PurchaseInput`."""
    data.allow("idempotencyKey", "member", "orderId", "currency", "channel", "occurredAt", "lines")
    lines = []
    for line in data.objects("lines"):
        line.allow("sku", "category", "quantity", "unitPrice", "discount")
        if not line.present("unitPrice"):
            raise Unprocessable(f"{line.where('unitPrice')} is required")
        discount = line.data.get("discount")
        lines.append(
            Line(
                line.string("sku"),
                line.string("category"),
                line.int("quantity"),
                money(line.data["unitPrice"], line.where("unitPrice")),
                money("0" if discount is None else discount, line.where("discount")),
            )
        )
    channel = data.string("channel") or Channel.ONLINE.value
    if channel not in Channel.__members__:
        raise Unprocessable(f"{data.where('channel')} is one of {', '.join(Channel.__members__)}")
    return RecordPurchase(
        _key(data, webhook_id),
        _member(data.object("member")),
        data.required("orderId"),
        data.required("currency"),
        tuple(lines),
        channel=Channel(channel),
        occurred_at=data.datetime("occurredAt"),
    )


def refund(data: _Input, webhook_id: str) -> RefundPurchase:
    """A `RefundInput`: exactly one of amount and lines (the ledger checks which)."""
    data.allow("idempotencyKey", "orderId", "amount", "lines")
    amount = data.data.get("amount")
    lines = None
    if data.present("lines"):
        lines = []
        for line in data.objects("lines"):
            line.allow("sku", "quantity")
            lines.append((line.required("sku"), line.int("quantity")))
    return RefundPurchase(
        _key(data, webhook_id),
        data.required("orderId"),
        None if amount is None else money(amount, data.where("amount")),
        None if lines is None else tuple(lines),
        keep_until_purchase=True,  # webhooks arrive in any order
    )


def enroll(data: _Input, webhook_id: str) -> EnrollMember:
    """An `EnrollMemberInput`."""
    data.allow("idempotencyKey", "customerId", "email", "name", "birthday", "referralCode")
    return EnrollMember(
        _key(data, webhook_id),
        data.required("customerId"),
        email=data.string("email"),
        name=data.string("name"),
        birthday=data.date("birthday"),
        referral_code=data.string("referralCode"),
    )


READERS: dict[str, Callable[[_Input, str], Command]] = {
    "purchase.completed": purchase,
    "purchase.refunded": refund,
    "member.enrolled": enroll,
}

SOURCE = Events()
