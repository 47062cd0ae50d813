"""forgotten customers

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 09:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import ledger.models

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "forgotten_customers",
        sa.Column("program_id", sa.String(length=63), nullable=False),
        sa.Column("customer_hash", sa.String(length=64), nullable=False),
        sa.Column("forgotten_at", ledger.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("program_id", "customer_hash", name=op.f("pk_forgotten_customers")),
    )


def downgrade() -> None:
    op.drop_table("forgotten_customers")
