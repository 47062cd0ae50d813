"""Member.profile and Member.orders through a running gateway, against the fake HubSpot
and the fake Shopify over real HTTP: one call per backend per page, the backends asked
concurrently, a failing backend nulling only its own field (BACKEND_UNAVAILABLE, the
backend named) within its timeout, the breaker, and programs kept apart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import event

from auth import scopes
from backends.fakes.hubspot import FakeHubSpot
from backends.fakes.shopify import FakeShopify
from tests.support.gateway import Gateway, Response, running_gateway

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

CRM_TOKEN = "pat-na1-gateway"
STORE_TOKEN = "shpat_gateway"

PAGE = """query($n: Int) { members(first: $n) { edges { node {
  customerId
  points { available }
  tier { current { name } }
  profile { source firstName lastName lifecycleStage company }
  orders(first: 2) { id name total currency createdAt status }
} } } }"""

ENROL = """mutation($c: String!, $k: String!) {
  enrollMember(input: {idempotencyKey: $k, customerId: $c}) { userErrors { code } } }"""


@dataclass
class World:
    gw: Gateway
    crm: FakeHubSpot
    store: FakeShopify

    async def page(self, members: int = 50, token: str | None = None) -> Response:
        return await self.gw.graphql(PAGE, {"n": members}, token or await self.gw.token())


def sections(
    crm: FakeHubSpot, store: FakeShopify, crm_only: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "crm": {
            "kind": "hubspot",
            "base_url": crm.base,
            "token": CRM_TOKEN,
            **extra,
            **(crm_only or {}),
        },
        "commerce": {"kind": "shopify", "base_url": store.base, "token": STORE_TOKEN, **extra},
    }


@asynccontextmanager
async def world(
    database_url: str,
    members: int = 50,
    crm_settings: dict[str, Any] | None = None,
    **extra: Any,
) -> AsyncIterator[World]:
    """`extra` sets both backends' program-file keys, `crm_settings` the CRM's alone."""
    crm, store = FakeHubSpot(token=CRM_TOKEN), FakeShopify(token=STORE_TOKEN)
    for i in range(members):
        customer_id = str(1000 + i)
        if i % 2 == 0:  # every other member is a CRM contact
            crm.add(
                customer_id, firstname=f"First{i}", lastname=f"Last{i}", lifecyclestage="customer"
            )
        if i % 5 == 0:  # every fifth has orders in the store
            store.add_order(customer_id, f"#{i}-a", "20.00", created_at="2026-10-01T09:00:00Z")
            store.add_order(customer_id, f"#{i}-b", "35.50", created_at="2026-11-01T09:00:00Z")
            store.add_order(customer_id, f"#{i}-c", "5.25", created_at="2026-09-01T09:00:00Z")
        elif i % 5 == 1:
            store.add_customer(customer_id)
    # Each item is entered before the next is evaluated: the program file names the
    # fakes' ports once they serve.
    async with (
        crm.serving(),
        store.serving(),
        running_gateway(
            database_url,
            # The CRM write-back's rounds would be calls to the fake CRM too: these
            # tests count the reads a page makes, so the write-back waits an hour.
            settings={"crm_write_back_interval": 3600},
            **sections(crm, store, crm_settings or {}, **extra),
        ) as gw,
    ):
        for i in range(members):
            await gw.partner(ENROL, {"c": str(1000 + i), "k": f"e{i}"})
        await gw.token()
        crm.reset()
        store.reset()
        yield World(gw, crm, store)


def node(response: Response, index: int) -> dict[str, Any]:
    return response.body["data"]["members"]["edges"][index]["node"]  # type: ignore[no-any-return]


def ledger_complete(response: Response, members: int) -> None:
    edges = response.body["data"]["members"]["edges"]
    assert len(edges) == members
    for edge in edges:
        assert edge["node"]["points"] == {"available": 100}  # the signup bonus
        assert edge["node"]["tier"] == {"current": {"name": "Bronze"}}


async def test_a_page_makes_one_call_per_backend_and_few_statements(database_url: str) -> None:
    # A deadline far from any call's time on a loaded machine: a retry would be a second
    # call, and this counts the calls a page makes, not what a slow answer costs.
    async with world(database_url, timeout=10) as w:
        engine = w.gw.database.engine.sync_engine
        seen: list[str] = []

        def count(*args: Any) -> None:
            seen.append(args[2])

        token = await w.gw.token()
        event.listen(engine, "before_cursor_execute", count)
        try:
            response = await w.page(50, token)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert response.body.get("errors") is None, response.body
        assert (w.crm.calls, w.store.calls) == (1, 1)
        # SELECTs, as tests/gateway/test_dataloaders.py counts them: the page's two reads (members, accounts: the page asks for
        # no expiring lots nor qualifying value); none for the backends' fields.
        # The relay and the webhook dispatcher poll the outbox meanwhile, on the same
        # engine: their reads are not the request's.
        # The revocation poll too (one read per process every few seconds, none per request).
        background = ("FROM outbox", "FROM webhook_deliveries", "FROM revoked_tokens")
        selects = [
            s
            for s in seen
            if s.lstrip().upper().startswith("SELECT") and not any(b in s for b in background)
        ]
        assert len(selects) == 2, "\n---\n".join(selects)
        ledger_complete(response, 50)
        first, second, fifth = node(response, 0), node(response, 1), node(response, 5)
        assert first["profile"] == {
            "source": "hubspot",
            "firstName": "First0",
            "lastName": "Last0",
            "lifecycleStage": "customer",
            "company": None,
        }
        assert first["orders"] == [
            {
                "id": "gid://shopify/Order/5002",
                "name": "#0-b",
                "total": "35.50",
                "currency": "USD",
                "createdAt": "2026-11-01T09:00:00+00:00",
                "status": "PAID",
            },
            {
                "id": "gid://shopify/Order/5001",
                "name": "#0-a",
                "total": "20.00",
                "currency": "USD",
                "createdAt": "2026-10-01T09:00:00+00:00",
                "status": "PAID",
            },
        ]
        assert second["profile"] is None and second["orders"] == []  # no contact, no orders
        assert fifth["profile"] is None and [o["name"] for o in fifth["orders"]] == ["#5-b", "#5-a"]
        assert node(response, 2)["orders"] is None  # no such customer in the store
        assert w.store.requests[0]["variables"]["first"] == 2
        assert len(w.crm.requests[0]["inputs"]) == 50


async def test_the_backends_are_asked_at_once_not_one_after_the_other(database_url: str) -> None:
    async with world(database_url, members=10, cache_ttl=0) as w:
        token = await w.gw.token()
        await w.page(10, token)  # warm: connections opened
        w.crm.latency, w.store.latency = 0.1, 0.15
        started = time.monotonic()
        response = await w.page(10, token)
        elapsed = time.monotonic() - started
        assert response.body.get("errors") is None
        (crm_began, crm_ended), (store_began, store_ended) = w.crm.windows[-1], w.store.windows[-1]
        assert crm_began < store_ended and store_began < crm_ended  # the calls overlapped
        # The overlap above is the proof; this only bounds the whole answer (the calls
        # take 0.15 s at most, the rest is the page's own work on a shared machine).
        assert elapsed < 1.0, elapsed


FAILURES: dict[str, dict[str, Any]] = {
    "outage": {"outage": True},
    "hang": {"hang": True},
    "500s": {"failures": [500] * 10},
    "429 beyond the deadline": {"throttle": 30.0},
    "malformed JSON": {"malformed": True},
    "wrong credentials": {"token": "pat-rotated"},
}


@pytest.mark.parametrize("failure", FAILURES, ids=list(FAILURES))
async def test_a_failing_crm_nulls_only_the_profiles(database_url: str, failure: str) -> None:
    # The CRM's deadline only: the store keeps its own, so a loaded machine cannot make
    # it fail too.
    async with world(database_url, members=6, crm_settings={"timeout": 0.5}) as w:
        for knob, value in FAILURES[failure].items():
            setattr(w.crm, knob, value)
        started = time.monotonic()
        response = await w.page(6)
        elapsed = time.monotonic() - started
        assert response.status == 200
        ledger_complete(response, 6)
        errors = response.body["errors"]
        assert len(errors) == 6
        assert {e["extensions"]["code"] for e in errors} == {"BACKEND_UNAVAILABLE"}
        assert {e["extensions"]["backend"] for e in errors} == {"hubspot"}
        assert sorted(e["path"][2] for e in errors) == list(range(6))
        assert {tuple(e["path"][3:]) for e in errors} == {("node", "profile")}
        for i in range(6):
            assert node(response, i)["profile"] is None
        assert [o["name"] for o in node(response, 0)["orders"]] == ["#0-b", "#0-a"]
        # Within the CRM's timeout (0.5 s), never the 30 s Retry-After nor a hang; the
        # margin is for the page's own work on a loaded machine.
        assert elapsed < 0.5 + 4.0, elapsed


async def test_a_failing_store_nulls_only_the_orders(database_url: str) -> None:
    async with world(database_url, members=4, timeout=0.5) as w:
        w.store.hang = True
        started = time.monotonic()
        response = await w.page(4)
        assert time.monotonic() - started < 1.5
        ledger_complete(response, 4)
        assert {e["extensions"]["backend"] for e in response.body["errors"]} == {"shopify"}
        assert [e["path"][4] for e in response.body["errors"]] == ["orders"] * 4
        assert node(response, 0)["profile"]["firstName"] == "First0"
        assert [node(response, i)["orders"] for i in range(4)] == [None] * 4


async def test_contacts_missing_from_the_crm_have_no_profile_and_no_error(
    database_url: str,
) -> None:
    async with world(database_url, members=5) as w:
        response = await w.page(5)
        assert response.body.get("errors") is None
        assert [node(response, i)["profile"] is not None for i in range(5)] == [
            True,
            False,
            True,
            False,
            True,
        ]
        assert w.crm.calls == 1  # one 207 for the five


async def test_the_breaker_opens_answers_at_once_and_closes_again(database_url: str) -> None:
    async with world(
        database_url, members=3, breaker_failures=2, breaker_cooldown=3.0, attempts=1, cache_ttl=0
    ) as w:
        token = await w.gw.token()
        w.crm.failures = [503, 503]
        for _ in range(2):
            response = await w.page(3, token)
            assert response.body["errors"][0]["extensions"]["reason"] == "failing (503)"
        started = time.monotonic()
        response = await w.page(3, token)
        assert time.monotonic() - started < 2.0  # no call, no wait (the cool-down is 3 s)
        assert w.crm.calls == 2
        assert {e["extensions"]["reason"] for e in response.body["errors"]} == {
            "circuit open after repeated failures"
        }
        ledger_complete(response, 3)
        assert await circuit_open(w) == {"hubspot": 1.0, "shopify": 0.0}
        await asyncio.sleep(3.1)
        response = await w.page(3, token)
        assert response.body.get("errors") is None
        assert node(response, 0)["profile"]["firstName"] == "First0"
        assert w.crm.calls == 3
        assert await circuit_open(w) == {"hubspot": 0.0, "shopify": 0.0}


async def circuit_open(w: World) -> dict[str, float]:
    """`loyalty_backend_circuit_open` of the test program, by backend."""
    async with w.gw.http.get(w.gw.url + "/metrics") as response:
        text = await response.text()
    found = {}
    for line in text.splitlines():
        if line.startswith("loyalty_backend_circuit_open{") and 'program="test"' in line:
            labels, value = line.rsplit(" ", 1)
            found[labels.split('backend="')[1].split('"')[0]] = float(value)
    return found


async def test_programs_keep_their_crm_cache_and_credentials_apart(database_url: str) -> None:
    other_crm = FakeHubSpot(token="pat-other")
    other_crm.add("1000", firstname="Other")
    async with other_crm.serving():
        crm, store = FakeHubSpot(token=CRM_TOKEN), FakeShopify(token=STORE_TOKEN)
        crm.add("1000", firstname="Mine")
        async with crm.serving(), store.serving():
            other = {
                "id": "other",
                "crm": {"kind": "hubspot", "base_url": other_crm.base, "token": "pat-other"},
            }
            async with running_gateway(
                database_url,
                other_programs=[other],
                # the write-back's rounds are calls too: these count the reads only
                settings={"crm_write_back_interval": 3600},
                **sections(crm, store),
            ) as gw:
                for program in ("test", "other"):
                    token = await gw.token(program=program)
                    await gw.graphql(ENROL, {"c": "1000", "k": "e"}, token)
                query = "{ members(first: 5) { edges { node { profile { firstName } } } } }"
                mine = await gw.graphql(query, None, await gw.token(program="test"))
                theirs = await gw.graphql(query, None, await gw.token(program="other"))
                again = await gw.graphql(query, None, await gw.token(program="test"))

    def profile(response: Response) -> Any:
        return response.body["data"]["members"]["edges"][0]["node"]["profile"]

    assert profile(mine) == {"firstName": "Mine"}
    assert profile(theirs) == {"firstName": "Other"}  # not the cached "Mine"
    assert profile(again) == {"firstName": "Mine"}  # from this program's cache
    assert (crm.calls, other_crm.calls) == (1, 1)  # each token reached only its own CRM


async def test_a_profile_needs_personal_data_access(database_url: str) -> None:
    async with world(database_url, members=2) as w:
        token = await w.gw.token([scopes.MEMBERS_READ])
        response = await w.page(2, token)
        assert {e["extensions"]["code"] for e in response.body["errors"]} == {"FORBIDDEN"}
        assert [node(response, i)["profile"] for i in range(2)] == [None, None]
        assert node(response, 0)["orders"] is not None
        assert w.crm.calls == 0  # refused before the CRM was asked


async def test_orders_first_is_bounded_and_costed(database_url: str) -> None:
    async with world(database_url, members=1) as w:
        token = await w.gw.token()
        refused = await w.gw.graphql(
            "{ members(first: 1) { edges { node { orders(first: 0) { id } } } } }", None, token
        )
        assert refused.codes == ["BAD_USER_INPUT"] and w.store.calls == 0
        costed = await w.gw.graphql(
            "{ members(first: 10) { edges { node { profile { firstName } "
            "orders(first: 3) { id total } } } } }",
            None,
            token,
        )
        assert costed.body["extensions"]["cost"]["requested"] == 1 + 10 * (1 + 1 + 2 + 1 + 3 * 2)


async def test_calls_are_counted_per_backend_and_outcome(database_url: str) -> None:
    async with world(database_url, members=2, cache_ttl=0, attempts=1) as w:
        token = await w.gw.token()
        await w.page(2, token)
        w.crm.failures = [500]
        w.store.malformed = True
        await w.page(2, token)
        async with w.gw.http.get(w.gw.url + "/metrics") as response:
            lines = set((await response.text()).splitlines())
    assert {
        'loyalty_backend_calls_total{backend="hubspot",outcome="ok"} 1.0',
        'loyalty_backend_calls_total{backend="hubspot",outcome="unavailable"} 1.0',
        'loyalty_backend_calls_total{backend="shopify",outcome="ok"} 1.0',
        'loyalty_backend_calls_total{backend="shopify",outcome="bad_answer"} 1.0',
        'loyalty_backend_call_duration_seconds_count{backend="hubspot"} 2.0',
    } <= lines
