"""/metrics of outgoing webhooks from a running gateway: attempts by outcome, their
latency, dead letters and endpoints disabled; the dispatcher runs in the lifespan."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.gateway import Gateway, running_gateway
from tests.support.receiver import SECRET, Receiver, receiving

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

ENROLL = """
mutation { enrollMember(input: {idempotencyKey: "k", customerId: "a"}) { userErrors { code } } }
"""


async def _metrics(gw: Gateway) -> set[str]:
    async with gw.http.get(gw.url + "/metrics") as response:
        return set((await response.text()).splitlines())


async def _until(gw: Gateway, *wanted: str) -> set[str]:
    async with asyncio.timeout(30):  # generous: the dispatcher looks every second
        while not set(wanted) <= (lines := await _metrics(gw)):  # noqa: ASYNC110 (a scrape)
            await asyncio.sleep(0.1)
    return lines


async def test_deliveries_dead_letters_and_disabled_endpoints_are_counted(
    database_url: str,
) -> None:
    ok, gone, refusing = Receiver(path="/ok"), Receiver(then=410), Receiver(then=400)
    async with receiving(ok), receiving(gone), receiving(refusing):
        hooks = [
            {"url": hook.url, "secret": SECRET, "events": ["member.enrolled"]}
            for hook in (ok, gone, refusing)
        ]
        async with running_gateway(
            database_url, settings={"allow_private_webhooks": True}, webhooks=hooks
        ) as gw:
            answer = await gw.graphql(ENROLL, token=await gw.token())
            assert answer.data["enrollMember"]["userErrors"] == []
            await _until(
                gw,
                'loyalty_webhook_deliveries_total{outcome="DELIVERED"} 1.0',
                'loyalty_webhook_deliveries_total{outcome="DISABLED"} 1.0',
                'loyalty_webhook_deliveries_total{outcome="RETRYING"} 1.0',
                "loyalty_webhook_endpoints_disabled_total 1.0",
            )
            gw.clock.advance(seconds=5)
            await _until(gw, 'loyalty_webhook_deliveries_total{outcome="RETRYING"} 2.0')
            gw.clock.advance(minutes=5)
            lines = await _until(
                gw,
                'loyalty_webhook_deliveries_total{outcome="DEAD"} 1.0',
                "loyalty_webhook_dead_letters_total 1.0",
            )
    assert "loyalty_webhook_attempt_duration_seconds_count 5.0" in lines
    assert (len(ok.received), len(gone.received), len(refusing.received)) == (1, 1, 3)
