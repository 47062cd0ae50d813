"""Member.profile from Salesforce and Member.orders from WooCommerce, through a running
gateway over real HTTP to their fakes: exact fields, one SOQL query for a page of members
and one orders request per member, the token renewed after INVALID_SESSION_ID, and a
backend that cannot answer leaving its field null with BACKEND_UNAVAILABLE while the
ledger fields stay complete."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from auth import scopes
from backends.fakes.salesforce import EXTERNAL_ID_FIELD, FakeSalesforce
from backends.fakes.woocommerce import FakeWooCommerce
from tests.support.gateway import Gateway, Response, running_gateway

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

MEMBER = """
query($ref: MemberRef!) {
  member(ref: $ref) {
    customerId
    points { available pending }
    tier { current { name } }
    profile { source firstName lastName lifecycleStage company }
    orders(first: 3) { id name total currency createdAt status }
  }
}"""

PAGE = """
query {
  members(first: 100) {
    edges { node { customerId points { available } profile { lastName } orders { id } } }
  }
}"""


@pytest.fixture
async def salesforce() -> AsyncIterator[FakeSalesforce]:
    fake = FakeSalesforce()
    async with fake.serving():
        yield fake


@pytest.fixture
async def store() -> AsyncIterator[FakeWooCommerce]:
    fake = FakeWooCommerce()
    async with fake.serving():
        yield fake


def sections(salesforce: FakeSalesforce, store: FakeWooCommerce, **crm: Any) -> dict[str, Any]:
    return {
        "crm": {
            "kind": "salesforce",
            "base_url": salesforce.base,
            "client_id": salesforce.client_id,
            "client_secret": salesforce.client_secret,
            "customer_id_property": EXTERNAL_ID_FIELD,
            "cache_ttl": 0,
            **crm,
        },
        "commerce": {
            "kind": "woocommerce",
            "base_url": store.base,
            "consumer_key": store.key.consumer_key,
            "consumer_secret": store.key.consumer_secret,
            "cache_ttl": 0,
        },
    }


@asynccontextmanager
async def gateway(
    database_url: str, salesforce: FakeSalesforce, store: FakeWooCommerce, **crm: Any
) -> AsyncIterator[Gateway]:
    # The CRM write-back's rounds would call the fake Salesforce too (its token, its
    # PATCHes): these tests count the reads, so the write-back waits an hour.
    async with running_gateway(
        database_url,
        settings={"crm_write_back_interval": 3600},
        **sections(salesforce, store, **crm),
    ) as gw:
        yield gw


async def enroll(gw: Gateway, *customers: str) -> None:
    for customer in customers:
        data = await gw.partner(
            "mutation($i: EnrollMemberInput!) { enrollMember(input: $i) { userErrors { code } } }",
            {"i": {"idempotencyKey": f"e-{customer}", "customerId": customer}},
        )
        assert data["enrollMember"]["userErrors"] == []


async def member(gw: Gateway, customer: str) -> Response:
    token = await gw.token({scopes.MEMBERS_READ, scopes.MEMBERS_PII})
    return await gw.graphql(MEMBER, {"ref": {"customerId": customer}}, token)


def unavailable(response: Response) -> list[tuple[str, list[Any], str]]:
    return [
        (e["extensions"]["code"], e["path"], e["extensions"]["backend"])
        for e in response.body.get("errors", [])
    ]


async def test_profile_and_orders_with_exact_fields(
    database_url: str, salesforce: FakeSalesforce, store: FakeWooCommerce
) -> None:
    salesforce.add_contact("26", "Ada", "Lovelace", company="Analytical Engines")
    store.add_order(26, total="39.00", created=datetime(2026, 10, 2, 8, 30, tzinfo=UTC))
    store.add_order(26, total="12.50", status="processing", currency="EUR", order_id=901)
    async with gateway(database_url, salesforce, store) as gw:
        await enroll(gw, "26")
        response = await member(gw, "26")

    assert response.data["member"] == {
        "customerId": "26",
        "points": {"available": 100, "pending": 0},
        "tier": {"current": {"name": "Bronze"}},
        "profile": {
            "source": "salesforce",
            "firstName": "Ada",
            "lastName": "Lovelace",
            "lifecycleStage": None,
            "company": "Analytical Engines",
        },
        "orders": [
            {
                "id": "901",
                "name": "#901",
                "total": "12.50",
                "currency": "EUR",
                "createdAt": "2026-11-01T13:00:00+00:00",
                "status": "processing",
            },
            {
                "id": "701",
                "name": "#701",
                "total": "39.00",
                "currency": "USD",
                "createdAt": "2026-10-02T08:30:00+00:00",
                "status": "completed",
            },
        ],
    }
    assert salesforce.calls["token"] == 1
    assert salesforce.calls["query"] == 1
    assert store.requests == [
        {"customer": "26", "per_page": "3", "orderby": "date", "order": "desc"}
    ]


async def test_a_page_of_members_is_one_soql_query_and_one_orders_request_each(
    database_url: str, salesforce: FakeSalesforce, store: FakeWooCommerce
) -> None:
    customers = [str(n) for n in range(1, 31)]
    for customer in customers:
        salesforce.add_contact(customer, "First", f"Last{customer}")
        store.add_order(int(customer), order_id=1000 + int(customer))
    async with gateway(database_url, salesforce, store) as gw:
        await enroll(gw, *customers)
        token = await gw.token({scopes.MEMBERS_READ, scopes.MEMBERS_PII})
        response = await gw.graphql(PAGE, None, token)

    nodes = [edge["node"] for edge in response.data["members"]["edges"]]
    assert sorted(nodes, key=lambda n: int(n["customerId"])) == [
        {
            "customerId": c,
            "points": {"available": 100},
            "profile": {"lastName": f"Last{c}"},
            "orders": [{"id": str(1000 + int(c))}],
        }
        for c in customers
    ]
    assert salesforce.calls["query"] == 1  # 30 ids in one IN list
    assert salesforce.calls["query_more"] == 0
    assert salesforce.queries[0].count("'") == 60
    assert store.calls["orders"] == 30  # WooCommerce filters by one customer per request


async def test_the_token_is_renewed_once_after_invalid_session_id(
    database_url: str, salesforce: FakeSalesforce, store: FakeWooCommerce
) -> None:
    salesforce.add_contact("26", "Ada", "Lovelace")
    async with gateway(database_url, salesforce, store) as gw:
        await enroll(gw, "26")
        first = await member(gw, "26")
        salesforce.expire_tokens()
        second = await member(gw, "26")

    assert first.data["member"]["profile"]["lastName"] == "Lovelace"
    assert second.data["member"]["profile"]["lastName"] == "Lovelace"
    assert salesforce.calls["token"] == 2
    assert salesforce.calls["query"] == 3  # answered, refused (expired), answered


async def test_an_outage_of_both_leaves_their_fields_null_and_the_ledger_complete(
    database_url: str, salesforce: FakeSalesforce, store: FakeWooCommerce
) -> None:
    async with gateway(database_url, salesforce, store) as gw:
        await enroll(gw, "26")
        salesforce.outage = True
        store.outage = True
        response = await member(gw, "26")

    assert response.status == 200
    assert response.body["data"]["member"] == {
        "customerId": "26",
        "points": {"available": 100, "pending": 0},
        "tier": {"current": {"name": "Bronze"}},
        "profile": None,
        "orders": None,
    }
    assert sorted(unavailable(response)) == [
        ("BACKEND_UNAVAILABLE", ["member", "orders"], "woocommerce"),
        ("BACKEND_UNAVAILABLE", ["member", "profile"], "salesforce"),
    ]


async def test_wrong_credentials_are_backend_unavailable_on_their_field_only(
    database_url: str, salesforce: FakeSalesforce, store: FakeWooCommerce
) -> None:
    store.add_order(26)
    async with gateway(database_url, salesforce, store, client_secret="wrong") as gw:
        await enroll(gw, "26")
        response = await member(gw, "26")

    assert response.body["data"]["member"]["profile"] is None
    assert [o["id"] for o in response.body["data"]["member"]["orders"]] == ["701"]
    assert unavailable(response) == [("BACKEND_UNAVAILABLE", ["member", "profile"], "salesforce")]
    assert "invalid_client" in response.body["errors"][0]["extensions"]["reason"]
    assert salesforce.calls["query"] == 0


async def test_malformed_json_is_backend_unavailable(
    database_url: str, salesforce: FakeSalesforce, store: FakeWooCommerce
) -> None:
    salesforce.add_contact("26", "Ada", "Lovelace")
    async with gateway(database_url, salesforce, store) as gw:
        await enroll(gw, "26")
        salesforce.malformed = True
        store.malformed = True
        response = await member(gw, "26")

    assert response.body["data"]["member"]["points"] == {"available": 100, "pending": 0}
    assert response.body["data"]["member"]["profile"] is None
    assert response.body["data"]["member"]["orders"] is None
    assert sorted(unavailable(response)) == [
        ("BACKEND_UNAVAILABLE", ["member", "orders"], "woocommerce"),
        ("BACKEND_UNAVAILABLE", ["member", "profile"], "salesforce"),
    ]


async def test_a_customer_id_woocommerce_cannot_have_has_no_orders_and_costs_no_call(
    database_url: str, salesforce: FakeSalesforce, store: FakeWooCommerce
) -> None:
    salesforce.add_contact("cust-1", "Ada", "Lovelace")
    async with gateway(database_url, salesforce, store) as gw:
        await enroll(gw, "cust-1")
        response = await member(gw, "cust-1")

    assert response.data["member"]["profile"]["firstName"] == "Ada"
    assert response.data["member"]["orders"] is None
    assert store.calls["orders"] == 0


async def test_a_hanging_crm_is_null_within_its_timeout_and_the_orders_still_come(
    database_url: str, salesforce: FakeSalesforce, store: FakeWooCommerce
) -> None:
    store.add_order(26)
    async with gateway(database_url, salesforce, store, timeout=0.5) as gw:
        await enroll(gw, "26")
        salesforce.hang = True
        started = time.monotonic()
        response = await member(gw, "26")
        elapsed = time.monotonic() - started

    assert response.body["data"]["member"]["profile"] is None
    assert [o["id"] for o in response.body["data"]["member"]["orders"]] == ["701"]
    assert unavailable(response) == [("BACKEND_UNAVAILABLE", ["member", "profile"], "salesforce")]
    assert elapsed < 5  # the CRM's 0.5 s deadline, not the operation's 15 s


async def test_a_throttled_store_is_asked_again_after_its_retry_after(
    database_url: str, salesforce: FakeSalesforce, store: FakeWooCommerce
) -> None:
    store.add_order(26)
    async with gateway(database_url, salesforce, store) as gw:
        await enroll(gw, "26")
        store.throttle(0.2)
        response = await member(gw, "26")

    assert [o["id"] for o in response.data["member"]["orders"]] == ["701"]
    assert store.calls["failed"] == 1
    assert store.calls["orders"] == 1
