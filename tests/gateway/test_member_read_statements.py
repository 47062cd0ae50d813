"""The hot read of a member, `member(ref:) { points { available pending } tier { current
{ name } } }`, costs one SQL statement: the member joined with its account. What it does
not ask for (the expiring points, the tier's qualifying value) costs nothing, and is
still exact when asked for."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from tests.support.gateway import Gateway
from tests.support.ledger import T0
from tests.support.operations import buy, enroll, line, run_jobs

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

HOT = """query($ref: MemberRef!) { member(ref: $ref) {
  points { available pending } tier { current { name } } } }"""
FULL = """query($ref: MemberRef!) { member(ref: $ref) {
  points { available pending expiringSoon { points expiresAt } }
  tier { current { name } next { name } qualifyingValue toNext } } }"""
# The relay, the webhook dispatcher and the revocation poll read on the same engine:
# not the request's reads.
BACKGROUND = ("FROM outbox", "FROM webhook_deliveries", "FROM revoked_tokens")


@contextmanager
def statements(gw: Gateway) -> Iterator[list[str]]:
    """The SELECTs the gateway runs meanwhile (BEGIN and ROLLBACK aside), but for the
    background pollers'."""
    engine = gw.database.engine.sync_engine
    seen: list[str] = []

    def count(*args: Any) -> None:
        text: str = args[2]
        if text.lstrip().upper().startswith("SELECT") and not any(b in text for b in BACKGROUND):
            seen.append(args[2])

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


@asynccontextmanager
async def ada_with_history(gw: Gateway) -> AsyncIterator[None]:
    await enroll(gw, "ada")  # 100 points, expiring 365 days after T0
    await buy(gw, "ada", "1001", line("30.00", 2, "shoes", "SHOE"), line("10.49", 1, "socks"))
    gw.clock.advance(days=340)
    await run_jobs(gw)  # the purchase's 130 points are available
    await gw.token()  # minted before counting
    yield


async def test_the_hot_read_is_one_statement(gw: Gateway) -> None:
    async with ada_with_history(gw):
        token = await gw.token()
        with statements(gw) as seen:
            response = await gw.graphql(HOT, {"ref": {"customerId": "ada"}}, token)
        assert response.data["member"] == {
            "points": {"available": 230, "pending": 0},
            "tier": {"current": {"name": "Bronze"}},
        }
        # The token's revocation is checked in memory: no statement of its own.
        assert len(seen) == 1, "\n---\n".join(seen)
        assert "FROM members LEFT OUTER JOIN accounts" in seen[0]


async def test_fields_not_asked_for_are_exact_when_asked_for(gw: Gateway) -> None:
    async with ada_with_history(gw):
        with statements(gw) as seen:
            member = (await gw.partner(FULL, {"ref": {"customerId": "ada"}}))["member"]
        assert member == {
            "points": {
                "available": 230,
                "pending": 0,
                "expiringSoon": [{"points": 100, "expiresAt": T0.replace(year=2027).isoformat()}],
            },
            "tier": {
                "current": {"name": "Bronze"},
                "next": {"name": "Silver"},
                "qualifyingValue": 130,
                "toNext": 870,
            },
        }
        # The member with its account, the expiring lots, the qualifying value.
        assert len(seen) == 3, seen


@contextmanager
def every_statement(gw: Gateway) -> Iterator[list[str]]:
    """Every statement the request runs, BEGIN included (the pollers' aside)."""
    engine = gw.database.engine.sync_engine
    seen: list[str] = []

    def count(*args: Any) -> None:
        if not any(b in args[2] for b in BACKGROUND):
            seen.append(args[2].strip().split()[0].upper())

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


async def test_the_planned_hot_read_is_one_statement_outside_any_transaction(
    gw: Gateway,
) -> None:
    async with ada_with_history(gw):
        token = await gw.token()
        ref = {"ref": {"customerId": "ada"}}
        await gw.graphql(HOT, ref, token)  # the normal path, which teaches the plan
        assert gw.app.state.graphql.plans.find(HOT, None) is not None
        with every_statement(gw) as seen:
            response = await gw.graphql(HOT, ref, token)
        assert response.data["member"]["points"] == {"available": 230, "pending": 0}
        assert seen == ["SELECT"]  # no BEGIN: one statement is its own snapshot
        await buy(gw, "ada", "1002", line("50.00", 1, "shoes", "SHOE"))  # committed since
        with every_statement(gw) as seen:
            response = await gw.graphql(HOT, ref, token)
        assert response.data["member"]["points"] == {"available": 230, "pending": 100}
        assert seen == ["SELECT"]
        # Two members in one document: one read transaction, so one moment for both.
        both = "query($c: String!) { a: member(ref: {customerId: $c}) { points { available } } b: member(ref: {customerId: $c}) { points { available } } }"  # noqa: E501
        await gw.graphql(both, {"c": "ada"}, token)
        with every_statement(gw) as seen:
            response = await gw.graphql(both, {"c": "ada"}, token)
        assert response.data == {
            "a": {"points": {"available": 230}},
            "b": {"points": {"available": 230}},
        }
        assert seen == ["BEGIN", "SELECT", "SELECT"]
