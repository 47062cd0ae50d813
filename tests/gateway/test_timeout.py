"""An operation over LOYALTY_OPERATION_TIMEOUT is cut short with 504 and writes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select, text

from ledger.models import Entry
from tests.support.gateway import Gateway, running_gateway

ENROLL = "mutation($c: String!) { enrollMember(input: {idempotencyKey: $c, customerId: $c}) { member { id } userErrors { code } } }"


async def in_time(gw: Gateway, query: str, variables: dict[str, object] | None = None) -> Any:
    """The answer of a write that is safe to repeat (its idempotency key), sent again
    while a loaded machine makes it miss the test's short operation time: a timed-out
    write wrote nothing, so the next try is the first that counts."""
    token = await gw.token()
    for _ in range(5):
        response = await gw.graphql(query, variables, token)
        if response.codes != ["TIMEOUT"]:
            return response.data
    raise AssertionError("five tries, each over the operation time")


async def count(gw: Gateway) -> int:
    async with gw.database.reading() as session:
        return int(await session.scalar(select(func.count()).select_from(Entry)) or 0)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_an_operation_over_its_time_is_cut_short_and_writes_nothing(
    database_url: str,
) -> None:
    async with running_gateway(database_url, operation_timeout=0.5) as gw:
        member = (await in_time(gw, ENROLL, {"c": "ada"}))["enrollMember"]["member"]["id"]
        adjust = """mutation { adjustPoints(input: {idempotencyKey: "slow", member: {customerId: "ada"},
                      points: 5, reason: "r"}) { transaction { points } userErrors { code } } }"""
        token = await gw.token()
        entries = await count(gw)
        # Another transaction holds Ada's account: the write waits on its row lock.
        async with gw.database.transaction() as blocker:
            await blocker.execute(
                text("SELECT 1 FROM accounts WHERE member_id = :m FOR UPDATE"), {"m": int(member)}
            )
            late = await gw.graphql(adjust, token=token)
            assert (late.status, late.codes) == (504, ["TIMEOUT"])
        assert await count(gw) == entries  # rolled back, not half applied
        again = await in_time(gw, adjust)
        assert again["adjustPoints"] == {"transaction": {"points": 5}, "userErrors": []}
        assert await count(gw) == entries + 1
