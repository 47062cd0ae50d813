"""The HubSpot client against the fake HubSpot over real HTTP: batch reads by the
customer id property, 207 for missing contacts, the cache, retries, timeouts, the
breaker and the errors of a CRM that cannot answer."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from backends.crm.base import CrmProfile
from backends.crm.hubspot import HubSpotClient
from backends.errors import (
    BackendThrottled,
    BackendTimeout,
    BackendUnavailable,
    BadAnswer,
    BadCredentials,
    CircuitOpen,
)
from backends.fakes.hubspot import FakeHubSpot
from tests.backends.support import backends

SAMPLES = Path(__file__).parents[1] / "samples" / "hubspot"
TOKEN = "pat-na1-test"


@pytest.fixture
async def crm() -> AsyncIterator[FakeHubSpot]:
    fake = FakeHubSpot(token=TOKEN)
    fake.add("c1", firstname="Ada", lastname="Lovelace", lifecyclestage="customer", company="AE")
    fake.add("c2", firstname="Alan", lastname="", lifecyclestage="lead", company=None)
    async with fake.serving():
        yield fake


def section(crm: FakeHubSpot, **extra: Any) -> dict[str, Any]:
    return {"kind": "hubspot", "base_url": crm.base, "token": TOKEN, **extra}


def client(registry: Any) -> HubSpotClient:
    found = registry.crm("test")
    assert isinstance(found, HubSpotClient)
    return found


ADA = CrmProfile("hubspot", "Ada", "Lovelace", "customer", "AE")
ALAN = CrmProfile("hubspot", "Alan", None, "lead", None)


async def test_a_batch_read_by_the_customer_id_property(crm: FakeHubSpot) -> None:
    async with backends(crm=section(crm)) as registry:
        found = await client(registry).profiles(["c1", "c2"])
    assert found == {"c1": ADA, "c2": ALAN}
    assert crm.calls == 1
    assert crm.requests == [
        {
            "idProperty": "customer_id",
            "inputs": [{"id": "c1"}, {"id": "c2"}],
            "properties": ["firstname", "lastname", "lifecyclestage", "company", "customer_id"],
            "propertiesWithHistory": [],
        }
    ]


async def test_missing_contacts_come_back_in_a_207_and_have_no_profile(crm: FakeHubSpot) -> None:
    async with backends(crm=section(crm)) as registry:
        found = await client(registry).profiles(["c1", "nobody", "c2", "ghost"])
    assert found == {"c1": ADA, "nobody": None, "c2": ALAN, "ghost": None}
    assert crm.calls == 1


async def test_a_configured_id_property_is_the_one_asked_by() -> None:
    fake = FakeHubSpot(token=TOKEN, id_property="shop_customer_id")
    fake.add("c9", firstname="Grace")
    async with (
        fake.serving(),
        backends(crm=section(fake, customer_id_property="shop_customer_id")) as registry,
    ):
        found = await client(registry).profiles(["c9"])
    assert found == {"c9": CrmProfile("hubspot", "Grace")}
    assert fake.requests[0]["idProperty"] == "shop_customer_id"


async def test_more_than_100_ids_are_split_into_calls_of_100(crm: FakeHubSpot) -> None:
    ids = [f"x{i}" for i in range(150)] + ["c1"]
    async with backends(crm=section(crm)) as registry:
        found = await client(registry).profiles(ids)
    assert found["c1"] == ADA and sum(v is not None for v in found.values()) == 1
    assert crm.calls == 2
    assert sorted(len(r["inputs"]) for r in crm.requests) == [51, 100]


async def test_answers_are_cached_for_the_ttl_absent_ones_too(crm: FakeHubSpot) -> None:
    async with backends(crm=section(crm, cache_ttl=0.3)) as registry:
        hubspot = client(registry)
        await hubspot.profiles(["c1", "nobody"])
        assert await hubspot.profiles(["nobody", "c1"]) == {"nobody": None, "c1": ADA}
        assert crm.calls == 1
        assert await hubspot.profiles(["c1", "c2"]) == {"c1": ADA, "c2": ALAN}
        assert crm.calls == 2 and crm.requests[1]["inputs"] == [{"id": "c2"}]
        await asyncio.sleep(0.35)
        await hubspot.profiles(["c1"])
        assert crm.calls == 3


async def test_wrong_credentials_are_refused_and_not_retried(crm: FakeHubSpot) -> None:
    async with backends(crm={**section(crm), "token": "pat-wrong"}) as registry:
        with pytest.raises(BadCredentials):
            await client(registry).profiles(["c1"])
    assert crm.calls == 1


async def test_a_5xx_is_retried_within_the_deadline(crm: FakeHubSpot) -> None:
    crm.failures = [500, 503]
    async with backends(crm=section(crm)) as registry:
        assert await client(registry).profiles(["c1"]) == {"c1": ADA}
    assert crm.calls == 3


async def test_a_backend_that_keeps_failing_is_unavailable_after_three_tries(
    crm: FakeHubSpot,
) -> None:
    crm.failures = [500] * 10
    async with backends(crm=section(crm)) as registry:
        with pytest.raises(BackendUnavailable) as raised:
            await client(registry).profiles(["c1"])
    assert raised.value.reason == "failing (500)"
    assert crm.calls == 3


async def test_a_429_is_retried_after_its_retry_after(crm: FakeHubSpot) -> None:
    crm.throttle = 0.1
    async with backends(crm=section(crm)) as registry:
        assert await client(registry).profiles(["c1"]) == {"c1": ADA}
    assert crm.calls == 2


async def test_a_retry_after_beyond_the_deadline_gives_up_at_once(crm: FakeHubSpot) -> None:
    crm.throttle = 30
    started = time.monotonic()
    async with backends(crm=section(crm)) as registry:
        with pytest.raises(BackendThrottled) as raised:
            await client(registry).profiles(["c1"])
    assert raised.value.retry_after == 30
    assert crm.calls == 1
    assert time.monotonic() - started < 0.9  # did not wait out any of it


async def test_a_hanging_crm_times_out_at_the_deadline(crm: FakeHubSpot) -> None:
    crm.hang = True
    started = time.monotonic()
    async with backends(crm=section(crm, timeout=0.3)) as registry:
        with pytest.raises(BackendTimeout):
            await client(registry).profiles(["c1"])
    assert time.monotonic() - started < 1.5  # generous bound on a 0.3 s deadline


async def test_an_outage_is_unavailable(crm: FakeHubSpot) -> None:
    crm.outage = True
    async with backends(crm=section(crm)) as registry:
        with pytest.raises(BackendUnavailable):
            await client(registry).profiles(["c1"])


async def test_an_unreachable_crm_is_unavailable() -> None:
    from tests.support.server import free_port

    config = {"kind": "hubspot", "base_url": f"http://127.0.0.1:{free_port()}", "token": TOKEN}
    async with backends(crm=config) as registry:
        with pytest.raises(BackendUnavailable) as raised:
            await client(registry).profiles(["c1"])
    assert raised.value.reason.startswith("unreachable")


async def test_a_malformed_answer_is_a_bad_answer_and_not_retried(crm: FakeHubSpot) -> None:
    crm.malformed = True
    async with backends(crm=section(crm)) as registry:
        with pytest.raises(BadAnswer):
            await client(registry).profiles(["c1"])
    assert crm.calls == 1


async def test_the_breaker_opens_after_repeated_failures_and_closes_again(
    crm: FakeHubSpot,
) -> None:
    async with backends(
        crm=section(crm, breaker_failures=2, breaker_cooldown=0.3, attempts=1, cache_ttl=0)
    ) as registry:
        hubspot = client(registry)
        crm.failures = [500, 500]
        for _ in range(2):
            with pytest.raises(BackendUnavailable):
                await hubspot.profiles(["c1"])
        assert registry.breakers.state(hubspot.circuit) == "opened"
        with pytest.raises(CircuitOpen):
            await hubspot.profiles(["c1"])
        assert crm.calls == 2  # the open circuit asked nothing
        await asyncio.sleep(0.35)
        assert await hubspot.profiles(["c1"]) == {"c1": ADA}  # the trial call
        assert registry.breakers.state(hubspot.circuit) == "closed"
        assert crm.calls == 3


async def test_a_failed_trial_opens_the_circuit_again(crm: FakeHubSpot) -> None:
    async with backends(
        crm=section(crm, breaker_failures=1, breaker_cooldown=0.2, attempts=1, cache_ttl=0)
    ) as registry:
        hubspot = client(registry)
        crm.failures = [500, 500]
        with pytest.raises(BackendUnavailable):
            await hubspot.profiles(["c1"])
        await asyncio.sleep(0.25)
        with pytest.raises(BackendUnavailable):
            await hubspot.profiles(["c1"])  # half-open: one trial, which fails
        with pytest.raises(CircuitOpen):
            await hubspot.profiles(["c1"])
        assert crm.calls == 2


async def test_programs_have_their_own_clients_caches_and_circuits() -> None:
    first, second = FakeHubSpot(token="pat-a"), FakeHubSpot(token="pat-b")
    first.add("c1", firstname="Ada")
    second.add("c1", firstname="Bea")
    async with first.serving(), second.serving():
        programs = {
            "a": {"crm": {"kind": "hubspot", "base_url": first.base, "token": "pat-a"}},
            "b": {
                "crm": {
                    "kind": "hubspot",
                    "base_url": second.base,
                    "token": "pat-b",
                    "breaker_failures": 1,
                    "attempts": 1,
                }
            },
        }
        async with backends(programs=programs) as registry:
            a, b = registry.crm("a"), registry.crm("b")
            assert a is not None and b is not None
            assert (await a.profiles(["c1"]))["c1"] == CrmProfile("hubspot", "Ada")
            assert (await b.profiles(["c1"]))["c1"] == CrmProfile("hubspot", "Bea")
            second.failures = [500]
            await asyncio.sleep(0)
            b._cache.clear()
            with pytest.raises(BackendUnavailable):
                await b.profiles(["c1"])
            assert registry.breakers.state(b.circuit) == "opened"
            assert registry.breakers.state(a.circuit) == "closed"
            a._cache.clear()
            assert (await a.profiles(["c1"]))["c1"] == CrmProfile("hubspot", "Ada")
    assert first.calls == 2 and second.calls == 2  # each token went to its own CRM only


async def test_the_documented_207_reads_as_profiles(crm: FakeHubSpot) -> None:
    sample = json.loads((SAMPLES / "contacts_batch_read_207.json").read_text())
    async with backends(crm=section(crm)) as registry:
        found = client(registry)._profiles(sample, "customer_id", {"cust-1", "cust-404"})
    assert found == {
        "cust-1": CrmProfile("hubspot", "Ada", "Lovelace", "customer", "Analytical Engines")
    }
