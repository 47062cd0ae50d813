"""Tables of the ledger. Entries are append-only; balances on `accounts` are derived
from them and updated in the same transaction."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an INTEGER PRIMARY KEY.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the ledger")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class DecimalText(TypeDecorator[Decimal]):
    """Exact decimals stored as text, identical on every database."""

    impl = String(48)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> str | None:
        return None if value is None else str(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime,
        Decimal: DecimalText,
        dict[str, Any]: JSON,
    }


class EntryKind(StrEnum):
    EARN = "EARN"
    BONUS = "BONUS"
    REDEEM = "REDEEM"
    CANCEL = "CANCEL"
    REFUND = "REFUND"
    ADJUST = "ADJUST"
    EXPIRE = "EXPIRE"


class EntryStatus(StrEnum):
    PENDING = "PENDING"
    AVAILABLE = "AVAILABLE"
    EXPIRED = "EXPIRED"


class LotStatus(StrEnum):
    PENDING = "PENDING"
    AVAILABLE = "AVAILABLE"
    EXPIRED = "EXPIRED"


class RedemptionStatus(StrEnum):
    ISSUED = "ISSUED"
    USED = "USED"
    CANCELLED = "CANCELLED"


class HoldStatus(StrEnum):
    HELD = "HELD"
    CAPTURED = "CAPTURED"
    RELEASED = "RELEASED"
    EXPIRED = "EXPIRED"


class Member(Base):
    __tablename__ = "members"
    __table_args__ = (UniqueConstraint("program_id", "customer_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[str] = mapped_column(String(63))
    customer_id: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(200))
    birthday: Mapped[date | None] = mapped_column(Date)
    referral_code: Mapped[str] = mapped_column(String(32), unique=True)
    referred_by_id: Mapped[int | None] = mapped_column(Id, ForeignKey("members.id"), index=True)
    enrolled_at: Mapped[datetime]
    forgotten_at: Mapped[datetime | None]
    last_birthday_year: Mapped[int | None] = mapped_column(Integer)


class Account(Base):
    """The materialized balances of one member: the sum of its entries, kept current."""

    __tablename__ = "accounts"

    member_id: Mapped[int] = mapped_column(Id, ForeignKey("members.id"), primary_key=True)
    program_id: Mapped[str] = mapped_column(String(63))
    available: Mapped[int] = mapped_column(BigInteger, default=0)
    pending: Mapped[int] = mapped_column(BigInteger, default=0)
    held: Mapped[int] = mapped_column(BigInteger, default=0)
    lifetime_earned: Mapped[int] = mapped_column(BigInteger, default=0)
    tier: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime]


class Entry(Base):
    """One append-only ledger line. `points` never changes; `status` follows its lot."""

    __tablename__ = "entries"
    __table_args__ = (
        UniqueConstraint("program_id", "dedupe_key"),
        Index("ix_entries_member_id_id", "member_id", "id"),
        Index("ix_entries_member_id_source", "member_id", "source", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[str] = mapped_column(String(63))
    member_id: Mapped[int] = mapped_column(Id, ForeignKey("members.id"))
    kind: Mapped[EntryKind] = mapped_column(String(16))
    points: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[EntryStatus] = mapped_column(String(16))
    order_id: Mapped[str | None] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(String(500))
    occurred_at: Mapped[datetime]
    available_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    # The lot this entry credits (EARN, BONUS, ADJUST) or, for a refund, the order's lot.
    lot_id: Mapped[int | None] = mapped_column(Id, index=True)
    dedupe_key: Mapped[str | None] = mapped_column(String(255))
    # What produced it: "purchase", "signup", "birthday", "action:<type>", "hold", ...
    source: Mapped[str] = mapped_column(String(80))
    details: Mapped[dict[str, Any] | None]


class Lot(Base):
    """Points credited by one entry, spent first-to-expire-first, expired if unspent."""

    __tablename__ = "lots"
    __table_args__ = (Index("ix_lots_member_id_status", "member_id", "status", "expires_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[str] = mapped_column(String(63))
    member_id: Mapped[int] = mapped_column(Id, ForeignKey("members.id"))
    entry_id: Mapped[int | None] = mapped_column(Id)
    points: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[LotStatus] = mapped_column(String(16))
    available_at: Mapped[datetime] = mapped_column(index=True)
    expires_at: Mapped[datetime | None] = mapped_column(index=True)


class Order(Base):
    """What an order earned on, so refunds can reverse exactly their share."""

    __tablename__ = "orders"
    __table_args__ = (UniqueConstraint("program_id", "order_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[str] = mapped_column(String(63))
    order_id: Mapped[str] = mapped_column(String(255))
    member_id: Mapped[int] = mapped_column(Id, ForeignKey("members.id"), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    channel: Mapped[str] = mapped_column(String(16))
    occurred_at: Mapped[datetime] = mapped_column(index=True)
    points: Mapped[int] = mapped_column(BigInteger)
    reversed: Mapped[int] = mapped_column(BigInteger, default=0)
    eligible: Mapped[Decimal]
    refunded_eligible: Mapped[Decimal]
    refunded_amount: Mapped[Decimal]
    net_spend_cents: Mapped[int] = mapped_column(BigInteger)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    refunded_quantities: Mapped[list[int]] = mapped_column(JSON)
    lot_id: Mapped[int] = mapped_column(Id)


class Reward(Base):
    __tablename__ = "rewards"

    program_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    cost: Mapped[int] = mapped_column(BigInteger)
    min_tier: Mapped[str | None] = mapped_column(String(100))
    stock: Mapped[int | None] = mapped_column(BigInteger)
    per_member_limit: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Redemption(Base):
    __tablename__ = "redemptions"
    __table_args__ = (Index("ix_redemptions_member_id_reward", "member_id", "reward_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[str] = mapped_column(String(63))
    member_id: Mapped[int] = mapped_column(Id, ForeignKey("members.id"))
    reward_id: Mapped[str] = mapped_column(String(63))
    points: Mapped[int] = mapped_column(BigInteger)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    status: Mapped[RedemptionStatus] = mapped_column(String(16))
    created_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    used_order_id: Mapped[str | None] = mapped_column(String(255))
    cancelled_at: Mapped[datetime | None]
    entry_id: Mapped[int] = mapped_column(Id)
    allocations: Mapped[list[list[int]]] = mapped_column(JSON)


class Hold(Base):
    __tablename__ = "holds"
    __table_args__ = (Index("ix_holds_status_expires_at", "status", "expires_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[str] = mapped_column(String(63))
    member_id: Mapped[int] = mapped_column(Id, ForeignKey("members.id"), index=True)
    order_id: Mapped[str] = mapped_column(String(255))
    points: Mapped[int] = mapped_column(BigInteger)
    discount: Mapped[Decimal]
    status: Mapped[HoldStatus] = mapped_column(String(16))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    entry_id: Mapped[int | None] = mapped_column(Id)
    allocations: Mapped[list[list[int]]] = mapped_column(JSON)


class IdempotencyRecord(Base):
    """The first response to an idempotency key, replayed to every repeat."""

    __tablename__ = "idempotency_keys"

    program_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    operation: Mapped[str] = mapped_column(String(64))
    request_hash: Mapped[str] = mapped_column(String(64))
    response: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(index=True)


class OutboxEvent(Base):
    """A domain event, written in the transaction of the change it reports."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[str] = mapped_column(String(63))
    type: Mapped[str] = mapped_column(String(64))
    member_id: Mapped[int | None] = mapped_column(Id, index=True)
    entry_id: Mapped[int | None] = mapped_column(Id, unique=True)
    payload: Mapped[dict[str, Any]]
    occurred_at: Mapped[datetime]
    created_at: Mapped[datetime]
    published_at: Mapped[datetime | None] = mapped_column(index=True)


class ForgottenCustomer(Base):
    """A forgotten member's customer id, kept only as a keyed hash: enough to recognize
    later events that name it (and not enroll them again on the fly), not to read it."""

    __tablename__ = "forgotten_customers"

    program_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    customer_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    forgotten_at: Mapped[datetime]


class DeliveryDirection(StrEnum):
    IN = "IN"  # a platform's webhook to the gateway
    OUT = "OUT"  # an event of the gateway to a `[[webhooks]]` endpoint


class DeliveryOutcome(StrEnum):
    PENDING = "PENDING"  # waiting for its next attempt (`next_attempt_at`)
    DELIVERED = "DELIVERED"  # the receiver answered 2xx
    DEAD = "DEAD"  # attempts exhausted: a dead letter, retried only by hand
    REFUSED = "REFUSED"  # the endpoint is a private address: nothing was sent
    DISABLED = "DISABLED"  # the endpoint answered 410 (this or an earlier delivery)
    # Inbound (IN) outcomes, one per platform delivery received:
    APPLIED = "APPLIED"  # its ledger effect is committed
    DUPLICATE = "DUPLICATE"  # its effect was already there (same order, same member)
    IGNORED = "IGNORED"  # a topic or event with nothing to do in the ledger
    REJECTED = "REJECTED"  # a payload that can never apply: answered 4xx, nothing written
    FAILED = "FAILED"  # a transient fault: answered 5xx, for the platform to retry


class WebhookDelivery(Base):
    """One event to one endpoint (OUT), or one platform webhook received (IN), with
    every attempt: time, HTTP status, latency and the first bytes of the answer."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("outbox_id", "endpoint"),
        UniqueConstraint("program_id", "direction", "endpoint", "event_id"),
        Index("ix_webhook_deliveries_due", "direction", "outcome", "next_attempt_at"),
        Index("ix_webhook_deliveries_program_id_id", "program_id", "id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    direction: Mapped[DeliveryDirection] = mapped_column(String(3))
    program_id: Mapped[str] = mapped_column(String(63))
    # OUT: the endpoint's URL; IN: the source (`shopify`, `stripe`, ...).
    endpoint: Mapped[str] = mapped_column(String(2048))
    # OUT: the outbox event delivered; IN: the platform's own event id.
    outbox_id: Mapped[int | None] = mapped_column(Id, ForeignKey("outbox.id"))
    event_id: Mapped[str | None] = mapped_column(String(255))
    topic: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[DeliveryOutcome] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    # Set while one dispatcher holds the delivery (until `next_attempt_at`, its lease).
    lease: Mapped[str | None] = mapped_column(String(32))
    last_status: Mapped[int | None] = mapped_column(Integer)
    # The member's sequence number of the event, so receivers can order them.
    sequence: Mapped[int | None] = mapped_column(BigInteger)
    # [{"at", "status", "latencyMs", "error", "body"}], oldest first, bounded.
    attempt_log: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    event: Mapped[OutboxEvent | None] = relationship(lazy="raise")


class WebhookEndpoint(Base):
    """The state of an outgoing endpoint kept across restarts: disabled by a 410."""

    __tablename__ = "webhook_endpoints"

    program_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    url: Mapped[str] = mapped_column(String(2048), primary_key=True)
    disabled_at: Mapped[datetime | None]
    reason: Mapped[str | None] = mapped_column(String(200))


class PendingRefund(Base):
    """A refund reported before its purchase (webhooks do not arrive in order): kept,
    and applied inside `record_purchase` when the order arrives, in arrival order."""

    __tablename__ = "pending_refunds"
    __table_args__ = (Index("ix_pending_refunds_order", "program_id", "order_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    program_id: Mapped[str] = mapped_column(String(63))
    order_id: Mapped[str] = mapped_column(String(255))
    # {"amount": "12.50"} | {"lines": [[sku, qty]]} | {"line_refs": [[ref, qty]]}
    refund: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime]
    # Set when the purchase arrived: the REFUND entry written, or why it could not apply.
    applied_at: Mapped[datetime | None]
    entry_id: Mapped[int | None] = mapped_column(Id)
    problem: Mapped[str | None] = mapped_column(String(500))
