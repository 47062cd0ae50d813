"""The planned member read on both databases (one statement outside any transaction):
what has been committed since the last read, exactly as the normal path answers."""

from __future__ import annotations

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
