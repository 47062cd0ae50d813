"""A page of members costs a fixed number of queries, whatever its size: every field of
every member is batched by the request's DataLoaders."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event

from tests.support.gateway import Gateway, running_gateway

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

PAGE = """query($n: Int) { members(first: $n) { edges { node {
  id customerId
  points { available pending held lifetimeEarned expiringSoon { points } }
  tier { current { name } qualifyingValue toNext }
  transactions(first: 3) { edges { node { kind points } } }
  availableRewards { id }
  redemptions(first: 2) { edges { node { status reward { id } } } }
} } } }"""


async def statements(gw: Gateway, members: int) -> tuple[int, list[Any]]:
    engine = gw.database.engine.sync_engine
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(args[2])

    event.listen(engine, "before_cursor_execute", count)
    try:
        data = await gw.partner(PAGE, {"n": members})
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return len([s for s in seen if s.lstrip().upper().startswith("SELECT")]), data["members"][
        "edges"
    ]


async def test_query_count_does_not_grow_with_the_page(database_url: str) -> None:
    async with running_gateway(database_url) as gw:
        await gw.partner(
            'mutation { upsertReward(input: {id: "sticker", name: "Sticker", cost: 10}) { userErrors { code } } }'
        )
        for i in range(12):
            await gw.partner(
                """mutation($c: String!, $k: String!) { enrollMember(input: {idempotencyKey: $k, customerId: $c}) { userErrors { code } } }""",
                {"c": f"m{i:02}", "k": f"e{i}"},
            )
            await gw.partner(
                """mutation($c: String!, $k: String!) { redeemReward(input: {idempotencyKey: $k, member: {customerId: $c}, rewardId: "sticker"}) { userErrors { code } } }""",
                {"c": f"m{i:02}", "k": f"r{i}"},
            )
        await gw.token()  # mint before counting: token checks are not part of the page
        small, small_edges = await statements(gw, 3)
        large, large_edges = await statements(gw, 12)
        assert len(small_edges) == 3 and len(large_edges) == 12
        last = large_edges[11]["node"]
        assert last["points"]["available"] == 90
        assert last["transactions"]["edges"] == [
            {"node": {"kind": "REDEEM", "points": -10}},
            {"node": {"kind": "BONUS", "points": 100}},
        ]
        assert [r["id"] for r in last["availableRewards"]] == ["sticker"]
        assert last["redemptions"]["edges"] == [
            {"node": {"status": "ISSUED", "reward": {"id": "sticker"}}}
        ]
        assert large == small, (small, large)
