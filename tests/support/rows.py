"""Every row of every table the gateway owns: what a refused request must leave unchanged."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ledger.db import Database
from ledger.models import Base

Rows = dict[str, list[tuple[str, ...]]]

# Written by the gateway's background work, not by a request: when the relay published
# an outbox row. A refused request that "changed" it changed nothing.
BACKGROUND_COLUMNS = frozenset({("outbox", "published_at")})


async def snapshot(database: Database) -> Rows:
    """Every row of the ledger's tables, every column, in a stable order."""
    rows: Rows = {}
    async with database.reading() as session:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.c if (table.name, c.name) not in BACKGROUND_COLUMNS]
            result = await session.execute(select(*columns))
            rows[table.name] = sorted(tuple(map(repr, row)) for row in result)
    return rows


def changed(before: Rows, after: Rows) -> dict[str, Any]:
    """The tables whose rows differ (for a readable assertion message)."""
    return {name: (before[name], after[name]) for name in before if before[name] != after[name]}
