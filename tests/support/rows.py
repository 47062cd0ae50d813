"""Every row of every table the gateway owns: what a refused request must leave unchanged."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ledger.db import Database
from ledger.models import Base

Rows = dict[str, list[tuple[str, ...]]]


async def snapshot(database: Database) -> Rows:
    """Every row of the ledger's tables, every column, in a stable order."""
    rows: Rows = {}
    async with database.reading() as session:
        for table in Base.metadata.sorted_tables:
            result = await session.execute(select(table))
            rows[table.name] = sorted(tuple(map(repr, row)) for row in result)
    return rows


def changed(before: Rows, after: Rows) -> dict[str, Any]:
    """The tables whose rows differ (for a readable assertion message)."""
    return {name: (before[name], after[name]) for name in before if before[name] != after[name]}
