"""The planned member read on both databases (one statement outside any transaction, no
BEGIN sent on PostgreSQL): what has been committed since the last read, exactly as the
normal path answers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import event

from tests.support.gateway import Gateway
from tests.support.operations import buy, enroll, line

HOT = """query Hot($c: String!) { member(ref: {customerId: $c}) {
  points { available pending } tier { current { name } } } }"""


async def test_the_planned_read_sees_each_commit(gw: Gateway) -> None:
    await enroll(gw, "ada")  # 100 points
    token = await gw.token()
    first = await gw.graphql(HOT, {"c": "ada"}, token)  # the normal path teaches the plan
    assert gw.app.state.graphql.plans.find(HOT, None) is not None
    second = await gw.graphql(HOT, {"c": "ada"}, token)  # planned
    await buy(gw, "ada", "1001", line("30.00", 1, "socks"))  # 30 points pending
    third = await gw.graphql(HOT, {"c": "ada"}, token)
    assert first.body == second.body
    assert second.data["member"]["points"] == {"available": 100, "pending": 0}
    assert third.data["member"]["points"] == {"available": 100, "pending": 30}
    assert third.data["member"]["tier"] == {"current": {"name": "Bronze"}}


@contextmanager
def begins_after_statements(gw: Gateway) -> Iterator[list[tuple[str, int]]]:
    """In order, each statement the engine sends and each BEGIN asyncpg sends, with the
    server connection it went to; asyncpg's own transaction start is watched, as a BEGIN
    is no cursor statement."""
    seen: list[tuple[str, int]] = []
    start = asyncpg.transaction.Transaction.start

    async def begin(self: Any) -> None:
        seen.append(("BEGIN", id(self._connection)))
        await start(self)

    def statement(*args: Any) -> None:
        seen.append((args[2], id(args[1]._adapt_connection._connection)))

    engine = gw.database.engine.sync_engine
    asyncpg.transaction.Transaction.start = begin
    event.listen(engine, "before_cursor_execute", statement)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        asyncpg.transaction.Transaction.start = start


def began_for(seen: list[tuple[str, int]]) -> list[bool]:
    """For each read of a member, whether a BEGIN went ahead of it on its connection
    (the adapter begins as the first statement of a transaction is sent)."""
    began = []
    for n, (text, connection) in enumerate(seen):
        if "FROM members" in text:
            following = [t for t, c in seen[n + 1 :] if c == connection][:1]
            began.append(following == ["BEGIN"])
    return began


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_the_planned_read_on_postgresql_sends_no_begin(gw: Gateway) -> None:
    await enroll(gw, "ada")  # 100 points
    token = await gw.token()
    await gw.graphql(HOT, {"c": "ada"}, token)  # the normal path teaches the plan
    with begins_after_statements(gw) as seen:
        planned = await gw.graphql(HOT, {"c": "ada"}, token)
    assert planned.data["member"]["points"] == {"available": 100, "pending": 0}
    assert began_for(seen) == [False], seen
    # Two reads in one document: one transaction, begun ahead of the first.
    both = """query($c: String!) { a: member(ref: {customerId: $c}) { points { available } }
      b: member(ref: {customerId: $c}) { points { available } } }"""
    await gw.graphql(both, {"c": "ada"}, token)
    with begins_after_statements(gw) as seen:
        response = await gw.graphql(both, {"c": "ada"}, token)
    assert response.data == {
        "a": {"points": {"available": 100}},
        "b": {"points": {"available": 100}},
    }
    assert began_for(seen) == [True, False], seen
