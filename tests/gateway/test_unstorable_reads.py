"""Reads that name text no database can store, on SQLite and PostgreSQL: nothing found,
never INTERNAL (writes refuse such text as INVALID_INPUT: see test_unstorable_text)."""

from __future__ import annotations

import json

import pytest

from tests.gateway.test_graphql_abuse import endpoint_cursor
from tests.gateway.test_graphql_limits import ENROLL, post_raw
from tests.support.gateway import Gateway


@pytest.mark.parametrize("text", ["ada\x00", "ada\ud800"], ids=["nul", "surrogate"])
async def test_reads_naming_unstorable_text_find_nothing(gw: Gateway, text: str) -> None:
    """NUL (PostgreSQL text refuses it) and lone surrogates (JSON escapes carry them) in
    what a read names: not found, never INTERNAL. Writes refuse them as INVALID_INPUT."""
    await gw.partner(ENROLL, {"c": "ada"})
    token = await gw.token()
    member = await gw.graphql(
        "query($c: String!) { member(ref: {customerId: $c}) { id } }", {"c": text}, token
    )
    assert member.data == {"member": None}, member.body
    tier = await gw.graphql(
        "query($t: String) { members(tier: $t) { edges { cursor } } }", {"t": text}, token
    )
    assert tier.data == {"members": {"edges": []}}, tier.body
    cursor = endpoint_cursor("reward", text.replace("\ud800", "\x00"))
    page = await gw.graphql(
        "query($a: String) { rewards(after: $a) { edges { cursor } } }", {"a": cursor}, token
    )
    assert page.codes == ["BAD_USER_INPUT"], page.body
    named = {"query": "query Q { tiers { name } }", "operationName": "Q\ud800"}
    status, _ = await post_raw(gw, json.dumps(named).encode(), token)
    assert status in {200, 400}
    async with gw.http.get(gw.url + "/metrics") as response:
        assert response.status == 200
