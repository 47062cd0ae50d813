"""Apollo Automatic Persisted Queries over real HTTP (DESIGN §4): the hash alone, the
`PERSISTED_QUERY_NOT_FOUND` answer that asks for the text once, the text checked against
its hash, GET for CDNs, the bounded store, and the store shared through Redis."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
import redis.asyncio as redis

from gateway import persisted
from tests.support.gateway import Gateway, running_gateway
from tests.support.operations import buy, enroll, line
from tests.support.redis import RedisServer

READ = """query Read($c: String!) { member(ref: {customerId: $c}) {
  points { available pending } tier { current { name } } } }"""
ADJUST = """mutation Adjust($c: String!) { adjustPoints(input: {idempotencyKey: "apq-adjust",
  member: {customerId: $c}, points: 500, reason: "apq"}) { userErrors { code } } }"""


def sha(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


def extensions(query: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha(query)}}


async def send(
    gw: Gateway,
    query: str | None,
    ext: dict[str, Any],
    variables: dict[str, Any] | None = None,
    *,
    method: str = "POST",
) -> tuple[int, dict[str, Any], dict[str, str]]:
    headers = {"Authorization": f"Bearer {await gw.token()}"}
    if method == "GET":
        params = {"extensions": json.dumps(ext), "variables": json.dumps(variables or {})}
        if query is not None:
            params["query"] = query
        request = gw.http.get(gw.url + "/graphql", params=params, headers=headers)
    else:
        body: dict[str, Any] = {"extensions": ext, "variables": variables or {}}
        if query is not None:
            body["query"] = query
        request = gw.http.post(gw.url + "/graphql", json=body, headers=headers)
    async with request as response:
        return response.status, await response.json(), dict(response.headers)


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


async def apollo(
    gw: Gateway, query: str, variables: dict[str, Any], method: str = "POST"
) -> tuple[dict[str, Any], int]:
    """What Apollo's persisted-query link does: the hash first, the text with it only when
    the server asks. The answer and how many requests it took."""
    status, body, _ = await send(gw, None, extensions(query), variables, method=method)
    if codes(body) == ["PERSISTED_QUERY_NOT_FOUND"]:
        status, body, _ = await send(gw, query, extensions(query), variables, method=method)
        assert status == 200, body
        return body, 2
    assert status == 200, body
    return body, 1


async def member_with_points(gw: Gateway) -> None:
    await enroll(gw, "ada")
    await buy(gw, "ada", "o-1", line("42.00"))


def points(body: dict[str, Any]) -> dict[str, int]:
    assert "errors" not in body, body
    return body["data"]["member"]["points"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_apollo_flow(database_url: str, method: str) -> None:
    async with running_gateway(database_url) as gw:
        await member_with_points(gw)
        status, body, headers = await send(gw, None, extensions(READ), {"c": "ada"}, method=method)
        assert status == 200
        assert body["errors"] == [
            {
                "message": "PersistedQueryNotFound",
                "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"},
            }
        ]
        assert "data" not in body
        assert "no-cache" in headers["Cache-Control"]  # a CDN must not keep the miss

        first, requests = await apollo(gw, READ, {"c": "ada"}, method)
        assert requests == 2  # still unknown: the link sends the text once
        assert points(first)["pending"] == 42
        assert first["data"] == await gw.partner(READ, {"c": "ada"})

        again, requests = await apollo(gw, READ, {"c": "ada"}, method)
        assert requests == 1  # the hash alone now
        assert again == first
        other, _ = await apollo(gw, READ, {"c": "nobody"}, method)
        assert other["data"] == {"member": None}  # the variables are the request's own


async def test_a_wrong_hash_is_refused_and_not_kept(database_url: str) -> None:
    async with running_gateway(database_url) as gw:
        await member_with_points(gw)
        lie = {"persistedQuery": {"version": 1, "sha256Hash": sha("{ tiers { name } }")}}
        status, body, _ = await send(gw, READ, lie, {"c": "ada"})
        assert status == 400
        assert codes(body) == ["BAD_REQUEST"]
        assert "data" not in body
        # The hash named was not bound to the text sent, nor to anything else.
        status, body, _ = await send(gw, None, lie)
        assert codes(body) == ["PERSISTED_QUERY_NOT_FOUND"]
        status, body, _ = await send(gw, None, extensions(READ), {"c": "ada"})
        assert codes(body) == ["PERSISTED_QUERY_NOT_FOUND"]


@pytest.mark.parametrize(
    "ext",
    [
        {"persistedQuery": {"version": 2, "sha256Hash": sha(READ)}},
        {"persistedQuery": {"version": 1, "sha256Hash": "abc"}},
        {"persistedQuery": {"version": 1, "sha256Hash": sha(READ).upper()}},
        {"persistedQuery": "yes"},
    ],
)
async def test_malformed_persisted_query_is_a_400(database_url: str, ext: dict[str, Any]) -> None:
    async with running_gateway(database_url) as gw:
        status, body, _ = await send(gw, None, ext)
        assert (status, codes(body)) == (400, ["BAD_REQUEST"])


async def test_a_persisted_mutation_does_not_run_over_get(database_url: str) -> None:
    async with running_gateway(database_url) as gw:
        await member_with_points(gw)
        before = await gw.partner(READ, {"c": "ada"})
        status, body, _ = await send(gw, ADJUST, extensions(ADJUST), {"c": "ada"}, method="GET")
        assert (status, codes(body)) == (400, ["BAD_REQUEST"]), body
        status, body, _ = await send(gw, None, extensions(ADJUST), {"c": "ada"}, method="GET")
        assert (status, codes(body)) == (400, ["BAD_REQUEST"]), body
        assert await gw.partner(READ, {"c": "ada"}) == before  # the 500 points never added


async def test_the_store_is_bounded(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(persisted, "MAX_ENTRIES", 3)
    async with running_gateway(database_url) as gw:
        queries = [f"{{ tiers {{ name }} q{n}: tiers {{ threshold }} }}" for n in range(4)]
        for query in queries:
            status, body, _ = await send(gw, query, extensions(query))
            assert status == 200 and "errors" not in body, body
        found = [codes((await send(gw, None, extensions(q)))[1]) for q in queries]
        # the oldest was dropped to keep three; the newest three are still there
        assert found == [["PERSISTED_QUERY_NOT_FOUND"], [], [], []]


async def test_the_store_is_shared_through_redis(
    database_url: str, redis_server: RedisServer
) -> None:
    settings = {"broker_url": redis_server.url}
    async with (
        running_gateway(database_url, settings=settings) as one,
        running_gateway(database_url, settings=settings) as two,
    ):
        await member_with_points(one)
        registered, requests = await apollo(one, READ, {"c": "ada"})
        assert requests == 2
        elsewhere, requests = await apollo(two, READ, {"c": "ada"})
        assert requests == 1  # the other replica knew the hash
        assert points(elsewhere) == points(registered)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{ nosuchfield }", "GRAPHQL_VALIDATION_FAILED"),
        ("{ tiers { name }", "GRAPHQL_PARSE_FAILED"),
        ("{ " + "a: tiers { name } " * 31 + "}", "QUERY_TOO_COMPLEX"),
    ],
)
async def test_a_text_that_would_not_run_is_not_kept(
    database_url: str, text: str, code: str
) -> None:
    async with running_gateway(database_url) as gw:
        status, body, _ = await send(gw, text, extensions(text))
        assert (status, body.get("data"), codes(body)[:1]) == (200, None, [code]), body
        status, body, _ = await send(gw, None, extensions(text))
        assert codes(body) == ["PERSISTED_QUERY_NOT_FOUND"]


async def test_redis_holds_the_newest_shared_texts_only(
    database_url: str, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(persisted, "REDIS_MAX_ENTRIES", 3)
    settings = {"broker_url": redis_server.url}
    queries = [f"{{ tiers {{ name }} q{n}: tiers {{ threshold }} }}" for n in range(5)]
    # Valid, within the token limit, but past what Redis takes: kept by its process only.
    long = "{ tiers { name } }" + " " * persisted.REDIS_MAX_BYTES
    async with (
        running_gateway(database_url, settings=settings) as one,
        running_gateway(database_url, settings=settings) as two,
    ):
        for query in [*queries, long]:
            status, body, _ = await send(one, query, extensions(query))
            assert status == 200 and "errors" not in body, body
        client = redis.Redis.from_url(redis_server.url, decode_responses=True)
        try:
            index = await client.zrange(persisted.REDIS_INDEX, 0, -1)
            texts = sorted(await client.keys(persisted.REDIS_PREFIX + "*"))
        finally:
            await client.aclose()
        newest = [sha(q) for q in queries[2:]]
        assert index == newest  # oldest first
        assert texts == sorted(persisted.REDIS_PREFIX + d for d in newest)
        found = [codes((await send(two, None, extensions(q)))[1]) for q in [*queries, long]]
        miss = ["PERSISTED_QUERY_NOT_FOUND"]
        assert found == [miss, miss, [], [], [], miss]
        assert codes((await send(one, None, extensions(long)))[1]) == []  # its own copy


async def test_a_mutation_is_read_and_its_hash_looked_up_once(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request no plan answers (every mutation) is decoded and resolved by the planned
    entry, and the normal path takes what it found: one lookup a request."""
    async with running_gateway(database_url) as gw:
        await member_with_points(gw)
        before = points({"data": await gw.partner(READ, {"c": "ada"})})
        store = gw.app.state.graphql.persisted
        lookups: list[str | None] = []
        resolve = store.resolve

        async def counted(query: str | None, ext: Any) -> str | None:
            lookups.append(query)
            found: str | None = await resolve(query, ext)
            return found

        monkeypatch.setattr(store, "resolve", counted)
        status, body, _ = await send(gw, None, extensions(ADJUST), {"c": "ada"})
        assert (status, codes(body)) == (200, ["PERSISTED_QUERY_NOT_FOUND"])
        assert lookups == [None]  # the refusal, after one lookup
        status, body, _ = await send(gw, ADJUST, extensions(ADJUST), {"c": "ada"})
        assert (status, body["data"]) == (200, {"adjustPoints": {"userErrors": []}})
        assert lookups == [None, ADJUST]
        status, body, _ = await send(gw, None, extensions(ADJUST), {"c": "ada"})
        assert (status, body["data"]) == (200, {"adjustPoints": {"userErrors": []}})
        assert lookups == [None, ADJUST, None]
        monkeypatch.undo()
        after = points({"data": await gw.partner(READ, {"c": "ada"})})
        assert after["available"] == before["available"] + 500  # once: the same key twice
