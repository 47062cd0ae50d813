"""The WooCommerce store client against the WooCommerce fake, over real HTTP: one orders
request per customer under a concurrency bound, exact orders, auth and errors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from backends.client import Breakers, client_session
from backends.commerce.base import StoreOrder
from backends.commerce.woocommerce import WooCommerceClient
from backends.errors import BackendTimeout, BackendUnavailable, BadAnswer, BadCredentials
from backends.fakes.woocommerce import FakeWooCommerce
from ledger.program_sections import Commerce

SAMPLES = Path(__file__).parents[1] / "samples" / "woocommerce_rest"


@pytest.fixture
async def store() -> AsyncIterator[FakeWooCommerce]:
    fake = FakeWooCommerce()
    async with fake.serving():
        yield fake


def commerce(fake: FakeWooCommerce, **overrides: Any) -> Commerce:
    settings: dict[str, Any] = {
        "kind": "woocommerce",
        "base_url": fake.base,
        "consumer_key": fake.key.consumer_key,
        "consumer_secret": fake.key.consumer_secret,
        "cache_ttl": 0,
        **overrides,
    }
    return Commerce(**settings)


@pytest.fixture
async def client(store: FakeWooCommerce) -> AsyncIterator[WooCommerceClient]:
    config = commerce(store)
    async with client_session(config) as session:
        yield WooCommerceClient("test", config, session, Breakers())


async def test_newest_orders_first_with_exact_fields(
    store: FakeWooCommerce, client: WooCommerceClient
) -> None:
    store.add_order(26, total="39.00", created=datetime(2026, 3, 21, 19, 16, tzinfo=UTC))
    store.add_order(26, total="12.50", status="processing", currency="EUR", order_id=901)
    store.add_order(27, total="5.00")

    orders = await client.orders(["26"], 5)

    assert orders == {
        "26": [
            StoreOrder(
                id="901",
                name="#901",
                total=Decimal("12.50"),
                currency="EUR",
                created_at=datetime(2026, 11, 1, 13, 0, tzinfo=UTC),
                status="processing",
            ),
            StoreOrder(
                id="701",
                name="#701",
                total=Decimal("39.00"),
                currency="USD",
                created_at=datetime(2026, 3, 21, 19, 16, tzinfo=UTC),
                status="completed",
            ),
        ]
    }
    assert store.requests == [
        {"customer": "26", "per_page": "5", "orderby": "date", "order": "desc"}
    ]


async def test_first_is_the_page_size(store: FakeWooCommerce, client: WooCommerceClient) -> None:
    for n in range(4):
        store.add_order(26, total=f"{n}.00")
    orders = await client.orders(["26"], 2)
    assert [o.total for o in orders["26"] or []] == [Decimal("3.00"), Decimal("2.00")]
    assert store.calls["orders"] == 1


async def test_one_request_per_customer_bounded_in_flight(
    store: FakeWooCommerce, client: WooCommerceClient
) -> None:
    ids = [str(n) for n in range(1, 41)]
    for customer_id in ids:
        store.add_order(int(customer_id), total=f"{customer_id}.00")
    store.latency = 0.02

    orders = await client.orders(ids, 3)

    assert {c: [o.total for o in found or []] for c, found in orders.items()} == {
        c: [Decimal(f"{c}.00")] for c in ids
    }
    assert store.calls["orders"] == 40
    assert 1 < store.in_flight_peak <= 8  # the default max_concurrency


async def test_max_concurrency_bounds_the_requests_in_flight(store: FakeWooCommerce) -> None:
    ids = [str(n) for n in range(1, 13)]
    store.latency = 0.02
    config = commerce(store, max_concurrency=3)
    async with client_session(config) as session:
        client = WooCommerceClient("test", config, session, Breakers())
        assert await client.orders(ids, 5) == {c: [] for c in ids}
    assert store.calls["orders"] == 12
    assert store.in_flight_peak == 3


async def test_a_customer_without_orders_has_an_empty_list(
    store: FakeWooCommerce, client: WooCommerceClient
) -> None:
    assert await client.orders(["55"], 5) == {"55": []}


async def test_a_customer_id_that_is_not_a_woocommerce_id_is_not_asked_for(
    store: FakeWooCommerce, client: WooCommerceClient
) -> None:
    odd = ["cust-1", "0", "007", "-3", "٣", "1" * 20, "4.0"]
    assert await client.orders(odd, 5) == dict.fromkeys(odd)
    assert store.calls["orders"] == 0


async def test_the_documented_list_sample_parses() -> None:
    sample = json.loads((SAMPLES / "orders_list_v3.json").read_text())
    store = FakeWooCommerce()
    store.orders = [o for o in sample if o["customer_id"] == 26]
    async with store.serving():
        config = commerce(store)
        async with client_session(config) as session:
            client = WooCommerceClient("test", config, session, Breakers())
            orders = await client.orders(["26"], 5)
    assert orders == {
        "26": [
            StoreOrder(
                id="723",
                name="#723",
                total=Decimal("39.00"),
                currency="USD",
                created_at=datetime(2017, 3, 21, 19, 16, tzinfo=UTC),
                status="completed",
            )
        ]
    }


async def test_wrong_secret_is_bad_credentials(store: FakeWooCommerce) -> None:
    config = commerce(store, consumer_secret="cs_wrong")
    async with client_session(config) as session:
        client = WooCommerceClient("test", config, session, Breakers())
        with pytest.raises(BadCredentials):
            await client.orders(["26"], 5)
    assert store.calls["orders"] == 1  # a refusal is not retried


async def test_unknown_key_is_bad_credentials(store: FakeWooCommerce) -> None:
    config = commerce(store, consumer_key="ck_nobody")
    async with client_session(config) as session:
        client = WooCommerceClient("test", config, session, Breakers())
        with pytest.raises(BadCredentials):
            await client.orders(["26"], 5)


async def test_a_write_only_key_is_bad_credentials(store: FakeWooCommerce) -> None:
    key = store.add_key("ck_write", "cs_write", "write")
    config = commerce(store, consumer_key=key.consumer_key, consumer_secret=key.consumer_secret)
    async with client_session(config) as session:
        client = WooCommerceClient("test", config, session, Breakers())
        with pytest.raises(BadCredentials):
            await client.orders(["26"], 5)


async def test_malformed_json_is_a_bad_answer(
    store: FakeWooCommerce, client: WooCommerceClient
) -> None:
    store.malformed = True
    with pytest.raises(BadAnswer, match="not JSON"):
        await client.orders(["26"], 5)


async def test_an_order_without_a_total_is_a_bad_answer(
    store: FakeWooCommerce, client: WooCommerceClient
) -> None:
    del store.add_order(26)["total"]
    with pytest.raises(BadAnswer, match="total"):
        await client.orders(["26"], 5)


async def test_wrong_base_url_is_a_bad_answer(store: FakeWooCommerce) -> None:
    config = commerce(store, base_url=store.base + "/shop")
    async with client_session(config) as session:
        client = WooCommerceClient("test", config, session, Breakers())
        with pytest.raises(BadAnswer, match="404"):
            await client.orders(["26"], 5)
    assert store.calls["no_route"] == 1


async def test_a_5xx_is_retried_then_answers(
    store: FakeWooCommerce, client: WooCommerceClient
) -> None:
    store.add_order(26)
    store.fail(502)
    orders = await client.orders(["26"], 5)
    assert len(orders["26"] or []) == 1
    assert store.calls["failed"] == 1


async def test_a_429_waits_the_retry_after(
    store: FakeWooCommerce, client: WooCommerceClient
) -> None:
    store.add_order(26)
    store.throttle(0.1)
    orders = await client.orders(["26"], 5)
    assert len(orders["26"] or []) == 1
    assert store.calls["failed"] == 1


async def test_outage_is_unavailable(store: FakeWooCommerce, client: WooCommerceClient) -> None:
    store.outage = True
    with pytest.raises(BackendUnavailable):
        await client.orders(["26"], 5)


async def test_a_hang_ends_at_the_deadline(store: FakeWooCommerce) -> None:
    config = commerce(store, timeout=0.3)
    async with client_session(config) as session:
        client = WooCommerceClient("test", config, session, Breakers())
        store.hang = True
        with pytest.raises(BackendTimeout):
            await client.orders(["26"], 5)


def test_a_woocommerce_store_needs_its_keys() -> None:
    with pytest.raises(ValueError, match="consumer_key"):
        Commerce(kind="woocommerce", base_url="https://shop.example")


@pytest.mark.parametrize("bound", [0, 21])
def test_max_concurrency_stays_within_the_connection_pool(bound: int) -> None:
    with pytest.raises(ValueError, match="max_concurrency"):
        Commerce(
            kind="woocommerce",
            base_url="https://shop.example",
            consumer_key="ck_1",
            consumer_secret="cs_1",
            max_concurrency=bound,
        )
