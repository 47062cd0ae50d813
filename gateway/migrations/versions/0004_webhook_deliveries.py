"""webhook deliveries: outgoing (and later inbound) deliveries and endpoint state

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 13:15:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import ledger.models

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", _ID, nullable=False),
        sa.Column("direction", sa.String(length=3), nullable=False),
        sa.Column("program_id", sa.String(length=63), nullable=False),
        sa.Column("endpoint", sa.String(length=2048), nullable=False),
        sa.Column("outbox_id", _ID, nullable=True),
        sa.Column("event_id", sa.String(length=255), nullable=True),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", ledger.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("lease", sa.String(length=32), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("sequence", sa.BigInteger(), nullable=True),
        sa.Column("attempt_log", sa.JSON(), nullable=False),
        sa.Column("created_at", ledger.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", ledger.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["outbox_id"], ["outbox.id"], name=op.f("fk_webhook_deliveries_outbox_id_outbox")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint(
            "outbox_id", "endpoint", name=op.f("uq_webhook_deliveries_outbox_id_endpoint")
        ),
        sa.UniqueConstraint(
            "program_id",
            "direction",
            "endpoint",
            "event_id",
            name=op.f("uq_webhook_deliveries_program_id_direction_endpoint_event_id"),
        ),
    )
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["direction", "outcome", "next_attempt_at"],
        unique=False,
    )
    op.create_index(
        "ix_webhook_deliveries_program_id_id",
        "webhook_deliveries",
        ["program_id", "id"],
        unique=False,
    )
    op.create_table(
        "webhook_endpoints",
        sa.Column("program_id", sa.String(length=63), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("disabled_at", ledger.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("program_id", "url", name=op.f("pk_webhook_endpoints")),
    )


def downgrade() -> None:
    op.drop_table("webhook_endpoints")
    op.drop_index("ix_webhook_deliveries_program_id_id", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_due", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
