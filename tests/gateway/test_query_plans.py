"""The statements of the member read (R1 of DESIGN §10) find their rows by index, never by
a full scan of members, accounts, entries or lots: a read stays as fast at 1,000,000
members as at 10,000 (R6), and a plan regression fails here rather than in production.

The statements are the ones the gateway actually runs for the read, captured from its
engine; each is explained with the parameters it ran with. PostgreSQL's planner rightly
prefers a sequential scan of a tiny table, so its plans are asked with `enable_seqscan`
off: a table it still scans has no usable index for the statement.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import event

from tests.support.gateway import Gateway, running_gateway

READ = """query Member($c: String!) { member(ref: {customerId: $c}) {
  points { available pending } tier { current { name } } } }"""
ENROLL = """mutation Enroll($c: String!) {
  enrollMember(input: {idempotencyKey: $c, customerId: $c}) { userErrors { code } } }"""
LEDGER = ("members", "accounts", "entries", "lots", "orders")


async def _read_statements(gw: Gateway) -> list[tuple[str, Any]]:
    for i in range(3):
        await gw.partner(ENROLL, {"c": f"c-{i}"})
    token = await gw.token()
    await gw.graphql(READ, {"c": "c-1"}, token)  # warm: the token's own first lookups
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        captured.append((statement, parameters))

    engine = gw.database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        answer = await gw.graphql(READ, {"c": "c-1"}, token)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert answer.data["member"]["points"] == {"available": 100, "pending": 0}
    reads = [(s, p) for s, p in captured if s.lstrip().upper().startswith("SELECT")]
    assert any(re.search(r"\bFROM members\b", s) for s, _ in reads), captured
    return reads


@pytest.mark.parametrize("basis", ["points", "spend"])
async def test_the_member_read_uses_indexes(database_url: str, basis: str) -> None:
    """With tiers on points (the entries of the window) and on spend (the orders)."""
    tiering = {"basis": basis, "window_days": 365}
    async with running_gateway(database_url, tiering=tiering) as gw:
        await _explain_reads(gw)


async def _explain_reads(gw: Gateway) -> None:
    reads = await _read_statements(gw)
    plans: dict[str, str] = {}
    async with gw.database.engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if not sqlite:
            await connection.exec_driver_sql("SET enable_seqscan = off")
        for statement, parameters in reads:
            prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
            result = await connection.exec_driver_sql(prefix + statement, parameters)
            lines = [" ".join(map(str, row)) for row in result]
            plans[statement] = "\n".join(lines)
        await connection.rollback()
    for statement, plan in plans.items():
        for table in LEDGER:
            full_scan = (
                re.search(rf"\bSCAN {table}\b(?! USING (COVERING )?INDEX)", plan)
                if sqlite
                else re.search(rf"Seq Scan on {table}\b", plan)
            )
            assert full_scan is None, f"full scan of {table}:\n{statement}\n{plan}"
