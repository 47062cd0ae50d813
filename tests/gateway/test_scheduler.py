"""`serve` runs the scheduled jobs every LOYALTY_JOBS_INTERVAL seconds."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.gateway import running_gateway

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

POINTS = '{ member(ref: {customerId: "ada"}) { points { available pending } } }'


async def test_the_scheduler_activates_pending_points_on_its_own(database_url: str) -> None:
    async with running_gateway(database_url, jobs_interval=0.2) as gw:
        bought = await gw.partner(
            """mutation { recordPurchase(input: {idempotencyKey: "b", member: {customerId: "ada"},
                 orderId: "1", currency: "USD", lines: [{quantity: 1, unitPrice: "40.00"}]}) {
                 userErrors { code } } }"""
        )
        assert bought["recordPurchase"]["userErrors"] == []
        assert (await gw.partner(POINTS))["member"]["points"] == {"available": 100, "pending": 40}

        gw.clock.advance(days=14, seconds=1)  # the return window is over
        async with asyncio.timeout(10):
            for _ in range(200):  # polled over HTTP, as a storefront would
                if not (await gw.partner(POINTS))["member"]["points"]["pending"]:
                    break
                await asyncio.sleep(0.05)
        assert (await gw.partner(POINTS))["member"]["points"] == {"available": 140, "pending": 0}
