"""The Shopify client against the fake Admin GraphQL API over real HTTP: customers'
newest orders in one nodes(ids:) query, batches within the query cost, THROTTLED, the
access token, and answers that break the documented shape."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from backends.commerce.base import StoreOrder
from backends.commerce.shopify import ORDERS_QUERY, ShopifyClient, requested_cost
from backends.errors import BackendThrottled, BadAnswer, BadCredentials
from backends.fakes.shopify import FakeShopify
from tests.backends.support import backends

SAMPLES = Path(__file__).parents[1] / "samples" / "shopify_admin"
TOKEN = "shpat_test"


@pytest.fixture
async def store() -> AsyncIterator[FakeShopify]:
    fake = FakeShopify(token=TOKEN)
    fake.add_order("1001", "#1001", "25.00", created_at="2026-10-01T10:00:00Z")
    fake.add_order("1001", "#1003", "99.95", currency="EUR", created_at="2026-11-20T08:30:00Z")
    fake.add_order("1001", "#1002", "10.50", created_at="2026-11-02T16:05:12Z", status="REFUNDED")
    fake.add_customer("1002")  # a customer without orders
    async with fake.serving():
        yield fake


def section(store: FakeShopify, **extra: Any) -> dict[str, Any]:
    return {"kind": "shopify", "base_url": store.base, "token": TOKEN, **extra}


def client(registry: Any) -> ShopifyClient:
    found = registry.commerce("test")
    assert isinstance(found, ShopifyClient)
    return found


def order(
    gid: int, name: str, total: str, when: str, currency: str = "USD", status: str = "PAID"
) -> StoreOrder:
    return StoreOrder(
        id=f"gid://shopify/Order/{gid}",
        name=name,
        total=Decimal(total),
        currency=currency,
        created_at=datetime.fromisoformat(when).astimezone(UTC),
        status=status,
    )


async def test_newest_orders_of_many_customers_in_one_query(store: FakeShopify) -> None:
    async with backends(commerce=section(store)) as registry:
        found = await client(registry).orders(["1001", "1002", "4040", "not-a-number"], 2)
    assert found == {
        "1001": [
            order(5002, "#1003", "99.95", "2026-11-20T08:30:00+00:00", "EUR"),
            order(5003, "#1002", "10.50", "2026-11-02T16:05:12+00:00", status="REFUNDED"),
        ],
        "1002": [],
        "4040": None,  # no such customer
        "not-a-number": None,  # cannot name a Shopify customer: never sent
    }
    assert store.calls == 1
    (request,) = store.requests
    assert request == {
        "query": ORDERS_QUERY,
        "variables": {
            "ids": [
                "gid://shopify/Customer/1001",
                "gid://shopify/Customer/1002",
                "gid://shopify/Customer/4040",
            ],
            "first": 2,
        },
    }


async def test_a_batch_holds_as_many_customers_as_the_query_cost_allows(
    store: FakeShopify,
) -> None:
    ids = [str(2000 + i) for i in range(120)] + ["1001"]
    async with backends(commerce=section(store, cache_ttl=0)) as registry:
        shopify = client(registry)
        assert shopify.batch_size(5) == 55 and requested_cost(55, 5) <= 1000
        found = await shopify.orders(ids, 5)
    assert len(found["1001"] or []) == 3
    assert store.calls == 3
    assert sorted(len(r["variables"]["ids"]) for r in store.requests) == [11, 55, 55]


async def test_batches_answered_at_once_each_get_their_own_customers(
    store: FakeShopify,
) -> None:
    # The batches go out together; with latency the fake answers them together too.
    store.add_order("2000", "#2000", "5.00", created_at="2026-11-01T00:00:00Z")
    ids = ["2000"] + [str(2001 + i) for i in range(119)] + ["1001"]
    store.latency = 0.05
    async with backends(commerce=section(store, cache_ttl=0)) as registry:
        found = await client(registry).orders(ids, 5)
    assert [o.name for o in found["2000"] or []] == ["#2000"]
    assert [o.name for o in found["1001"] or []] == ["#1003", "#1002", "#1001"]
    assert [c for c, orders in found.items() if orders is not None] == ["2000", "1001"]
    assert store.calls == 3


async def test_throttled_is_retried_once_the_bucket_has_restored(store: FakeShopify) -> None:
    store.bucket.drain(restore_rate=1000)  # 18 points: restored in 18 ms
    async with backends(commerce=section(store)) as registry:
        found = await client(registry).orders(["1001"], 5)
    assert [o.name for o in found["1001"] or []] == ["#1003", "#1002", "#1001"]
    assert store.calls == 2


async def test_throttled_longer_than_the_deadline_gives_up_at_once(store: FakeShopify) -> None:
    store.bucket.drain(restore_rate=1)  # 18 s to restore 18 points
    started = time.monotonic()
    async with backends(commerce=section(store)) as registry:
        with pytest.raises(BackendThrottled) as raised:
            await client(registry).orders(["1001"], 5)
    assert raised.value.retry_after is not None and raised.value.retry_after > 10
    assert store.calls == 1 and time.monotonic() - started < 0.9


async def test_a_wrong_access_token_is_refused(store: FakeShopify) -> None:
    async with backends(commerce={**section(store), "token": "shpat_wrong"}) as registry:
        with pytest.raises(BadCredentials):
            await client(registry).orders(["1001"], 5)
    assert store.calls == 1


async def test_a_malformed_answer_is_a_bad_answer(store: FakeShopify) -> None:
    store.malformed = True
    async with backends(commerce=section(store)) as registry:
        with pytest.raises(BadAnswer):
            await client(registry).orders(["1001"], 5)


async def test_the_api_version_is_in_the_path() -> None:
    fake = FakeShopify(token=TOKEN, api_version="2026-01")
    fake.add_order("7", "#7", "1.00")
    async with (
        fake.serving(),
        backends(
            commerce={
                "kind": "shopify",
                "base_url": fake.base,
                "token": TOKEN,
                "api_version": "2026-01",
            }
        ) as registry,
    ):
        found = await client(registry).orders(["7"], 1)
    assert [o.total for o in found["7"] or []] == [Decimal("1.00")]


async def test_the_documented_answers_read_as_orders_and_a_throttle(store: FakeShopify) -> None:
    answer = json.loads((SAMPLES / "customer_orders.json").read_text())
    throttled = json.loads((SAMPLES / "throttled.json").read_text())
    async with backends(commerce=section(store)) as registry:
        shopify = client(registry)
        found = shopify._orders(answer, ["544365967", "1"])
        with pytest.raises(BackendThrottled) as raised:
            shopify._orders(throttled, ["544365967"])
    assert found == {
        "544365967": [
            order(148977776, "#1001", "11.50", "2026-11-20T08:30:00+00:00"),
            order(
                148977775,
                "#1000",
                "598.94",
                "2026-10-01T10:00:00+00:00",
                status="PARTIALLY_REFUNDED",
            ),
        ]
    }
    assert raised.value.retry_after == (752 - 666) / 50
