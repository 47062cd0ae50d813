"""A Black-Friday burst of Shopify `orders/paid` webhooks, against the same purchases sent
as `recordPurchase` to the same gateway in the same run.

2,000 deliveries from 50 concurrent senders, each a signed `orders/paid` body built from
Shopify's published sample order (three lines, tax and shipping), for 200 members. The
floor is the same 2,000 purchases (the same lines, the same members) as `recordPurchase`
mutations from 50 concurrent senders, over HTTP to the same process: what a delivery costs
beyond the write is checking its signature, recording it and mapping its payload. The
two sides run in alternating rounds, so the database grows alike under both.

Afterwards every order has earned exactly once: one EARN entry per order id.
"""

from __future__ import annotations

import asyncio
import copy
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func, select

from gateway.migrate import upgrade_async
from ledger.models import Entry, EntryKind
from tests.support.gateway import Gateway, running_gateway
from tests.support.inbound import SECRETS, encode, shopify_headers

SAMPLE = Path(__file__).parent.parent / "tests" / "samples" / "shopify"
DELIVERIES = 2_000
SENDERS = 50
MEMBERS = 200
ROUNDS = 4  # per side, alternating
# A write that found the database busy past its wait is answered 503; senders try again
# after this many seconds, and the retries are counted in the time and printed.
RETRY_AFTER = 0.05

ENROLL = """mutation Enroll($c: String!) {
  enrollMember(input: {idempotencyKey: $c, customerId: $c}) { userErrors { code } } }"""
PURCHASE = """mutation Buy($i: PurchaseInput!) { recordPurchase(input: $i) {
  transaction { points } userErrors { code } } }"""


def _order(number: int) -> dict[str, Any]:
    sample = json.loads((SAMPLE / "order_resource_excerpt.json").read_text())
    order: dict[str, Any] = copy.deepcopy(sample["order"])
    order["id"] = 10_000_000 + number
    order["financial_status"] = "paid"
    order["refunds"] = []
    order["created_at"] = order["processed_at"] = "2026-03-02T09:00:00-05:00"
    order["customer"]["id"] = 1_000 + number % MEMBERS
    return order


def _purchase_input(order: dict[str, Any]) -> dict[str, Any]:
    """The order as `recordPurchase` takes it: the lines Shopify's would earn on."""
    lines = []
    for item in order["line_items"]:
        discount = sum(
            (Decimal(a["amount"]) for a in item.get("discount_allocations", [])),
            start=Decimal(0),
        )
        lines.append(
            {
                "sku": item.get("sku") or str(item["id"]),
                "quantity": item["quantity"],
                "unitPrice": item["price"],
                "discount": str(discount),
            }
        )
    return {
        "idempotencyKey": f"gql-{order['id']}",
        "member": {"customerId": str(order["customer"]["id"])},
        "orderId": f"gql-{order['id']}",
        "currency": order["currency"],
        "occurredAt": "2026-03-02T14:00:00+00:00",
        "lines": lines,
    }


async def _burst(
    count: int, send: Callable[[int], Awaitable[None]], offset: int
) -> tuple[float, list[float]]:
    """Seconds for `count` sends from SENDERS concurrent senders, and each send's latency."""
    queue = iter(range(offset, offset + count))
    latencies: list[float] = []

    async def sender() -> None:
        for number in queue:
            began = time.perf_counter()
            await send(number)
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(SENDERS)))
    return time.perf_counter() - began, latencies


def _p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98]


async def _earns(gw: Gateway) -> tuple[int, int]:
    async with gw.database.reading() as session:
        row = (
            await session.execute(
                select(func.count(), func.count(func.distinct(Entry.order_id))).where(
                    Entry.kind == EntryKind.EARN
                )
            )
        ).one()
    return int(row[0]), int(row[1])


async def main() -> None:
    per_round = DELIVERIES // ROUNDS
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}"
        await upgrade_async(url)
        async with running_gateway(
            url,
            rate_limit="1000000/second",
            webhook_secrets=SECRETS,
            settings={"webhook_rate_limit": "1000000/second"},
        ) as gw:
            token = await gw.token()
            retries = {"recordPurchase": 0, "webhooks": 0}
            auth = {"Authorization": f"Bearer {token}"}
            connector = aiohttp.TCPConnector(limit=SENDERS)
            async with aiohttp.ClientSession(connector=connector) as http:

                async def graphql(query: str, variables: dict[str, Any]) -> None:
                    body = {"query": query, "variables": variables}
                    while True:
                        async with http.post(
                            gw.url + "/graphql", json=body, headers=auth
                        ) as answer:
                            result = await answer.json()
                        codes = [e["extensions"]["code"] for e in result.get("errors", [])]
                        if codes != ["SERVICE_UNAVAILABLE"]:
                            break
                        retries["recordPurchase"] += 1  # as a till would: again, shortly
                        await asyncio.sleep(RETRY_AFTER)
                    assert answer.status == 200 and not codes, result

                for i in range(MEMBERS):
                    await graphql(ENROLL, {"c": str(1_000 + i)})
                orders = [_order(n) for n in range(DELIVERIES + SENDERS)]
                bodies = [encode(order) for order in orders]

                async def webhook(number: int) -> None:
                    body = bodies[number]
                    headers = shopify_headers(body, "orders/paid", f"wh-{number}")
                    target = f"{gw.url}/webhooks/test/shopify"
                    while True:
                        async with http.post(target, data=body, headers=headers) as answer:
                            result = await answer.json()
                        if answer.status != 503:
                            break
                        retries["webhooks"] += 1  # as Shopify would: again, later
                        await asyncio.sleep(RETRY_AFTER)
                    assert answer.status == 200 and result["outcome"] == "APPLIED", result

                async def mutation(number: int) -> None:
                    await graphql(PURCHASE, {"i": _purchase_input(orders[number])})

                await _burst(SENDERS, mutation, DELIVERIES)  # warm-up, on orders of its own
                await _burst(SENDERS, webhook, DELIVERIES)
                webhook_time = mutation_time = 0.0
                webhook_latencies: list[float] = []
                mutation_latencies: list[float] = []
                for round_ in range(ROUNDS):
                    offset = round_ * per_round
                    seconds, latencies = await _burst(per_round, webhook, offset)
                    webhook_time += seconds
                    webhook_latencies += latencies
                    seconds, latencies = await _burst(per_round, mutation, offset)
                    mutation_time += seconds
                    mutation_latencies += latencies
            earns, orders_earned = await _earns(gw)
    # Each side also earned its warm-up orders: SENDERS each.
    expected = 2 * (DELIVERIES + SENDERS)
    webhook_rate = DELIVERIES / webhook_time
    mutation_rate = DELIVERIES / mutation_time
    print(
        f"inbound burst: {DELIVERIES} Shopify orders/paid from {SENDERS} senders, "
        f"{ROUNDS} rounds per side"
    )
    print(
        f"  floor: recordPurchase        {mutation_rate:7.0f}/s   "
        f"p99 {_p99(mutation_latencies) * 1e3:6.1f} ms"
    )
    print(
        f"  webhooks/shopify             {webhook_rate:7.0f}/s   "
        f"p99 {_p99(webhook_latencies) * 1e3:6.1f} ms   "
        f"{webhook_rate / mutation_rate:.2f} × floor (target ≥ 0.8)"
    )
    print(f"  503s retried: {retries}")
    print(
        f"  earn entries {earns}, orders earned {orders_earned} "
        f"(expected {expected} each: one earn per order)"
    )
    assert earns == orders_earned == expected


if __name__ == "__main__":
    asyncio.run(main())
