"""pending refunds: refunds reported before their purchase, applied when it arrives

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 14:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import ledger.models

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "pending_refunds",
        sa.Column("id", _ID, nullable=False),
        sa.Column("program_id", sa.String(length=63), nullable=False),
        sa.Column("order_id", sa.String(length=255), nullable=False),
        sa.Column("refund", sa.JSON(), nullable=False),
        sa.Column("received_at", ledger.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("applied_at", ledger.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("entry_id", _ID, nullable=True),
        sa.Column("problem", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_refunds")),
    )
    op.create_index("ix_pending_refunds_order", "pending_refunds", ["program_id", "order_id"])


def downgrade() -> None:
    op.drop_index("ix_pending_refunds_order", table_name="pending_refunds")
    op.drop_table("pending_refunds")
