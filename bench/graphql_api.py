"""What a GraphQL request costs, as a ratio to the cheapest request of the same server.

The floor is `GET /healthz` on the same running gateway over the same keep-alive HTTP
connection, measured in the same run: it costs the HTTP round trip and the ASGI stack and
nothing else, so each ratio is what GraphQL parsing, validation, auth, the DataLoaders
and the ledger add, whatever the machine is doing meanwhile.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from auth import scopes
from auth.models import OAuthClient
from gateway.app import create_app
from gateway.migrate import upgrade_async
from gateway.settings import Settings
from tests.support.server import free_port, serving

ROUNDS = 5
PER_ROUND = 40
MEMBERS = 20

MEMBER = """query Member($c: String!) { member(ref: {customerId: $c}) {
  points { available pending held lifetimeEarned expiringSoon { points expiresAt } }
  tier { current { name } next { name } toNext }
  transactions(first: 10) { edges { node { kind points occurredAt } } } } }"""
PAGE = """query Page { members(first: 20) { edges { node { customerId
  points { available pending } tier { current { name } }
  transactions(first: 5) { edges { node { kind points } } } availableRewards { id } } } } }"""
PURCHASE = """mutation Buy($k: String!, $o: String!) { recordPurchase(input: {idempotencyKey: $k,
  member: {customerId: "m-0"}, orderId: $o, currency: "USD",
  lines: [{sku: "SHOE", category: "shoes", quantity: 1, unitPrice: "80.00"}]}) {
  transaction { points } member { points { pending } } userErrors { code } } }"""
ENROLL = """mutation Enroll($c: String!) {
  enrollMember(input: {idempotencyKey: $c, customerId: $c}) { userErrors { code } } }"""


async def _timed(operation: Callable[[int], Awaitable[None]]) -> float:
    """Median seconds per call over ROUNDS rounds of PER_ROUND calls."""
    samples = []
    for round_ in range(ROUNDS):
        began = time.perf_counter()
        for i in range(PER_ROUND):
            await operation(round_ * PER_ROUND + i)
        samples.append((time.perf_counter() - began) / PER_ROUND)
    return statistics.median(samples)


async def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}"
        await upgrade_async(url)
        port = free_port()
        settings = Settings(
            database_url=url, issuer=f"http://127.0.0.1:{port}", rate_limit="100000/second"
        )
        app = create_app(settings, scheduled_jobs=False)
        async with serving(app, port) as base, aiohttp.ClientSession() as http:
            async with app.state.database.transaction() as session:
                creds = await app.state.authorization.create_client(
                    session, "acme", "bench", scopes.ALL
                )
                client = await session.get(OAuthClient, creds.client_id)
            assert client is not None
            token, _ = app.state.authorization.issue(client, None)
            headers = {"Authorization": f"Bearer {token}"}

            async def graphql(query: str, variables: dict[str, Any]) -> None:
                body = {"query": query, "variables": variables}
                async with http.post(base + "/graphql", json=body, headers=headers) as response:
                    answer = await response.json()
                    assert response.status == 200 and "errors" not in answer, answer

            for i in range(MEMBERS):
                await graphql(ENROLL, {"c": f"m-{i}"})

            async def floor(i: int) -> None:
                async with http.get(base + "/healthz") as response:
                    await response.read()

            base_time = await _timed(floor)
            results = {
                "member (points, tier, history)": await _timed(
                    lambda i: graphql(MEMBER, {"c": f"m-{i % MEMBERS}"})
                ),
                "members page of 20, nested": await _timed(lambda i: graphql(PAGE, {})),
                "recordPurchase": await _timed(
                    lambda i: graphql(PURCHASE, {"k": f"k{i}", "o": f"o{i}"})
                ),
                "recordPurchase replayed": await _timed(
                    lambda i: graphql(
                        PURCHASE, {"k": f"k{i % PER_ROUND}", "o": f"o{i % PER_ROUND}"}
                    )
                ),
            }
    print(f"floor: GET /healthz on the same server = {base_time * 1e3:.2f} ms")
    for name, seconds in results.items():
        print(f"{name:<32} {seconds / base_time:6.1f} × floor   ({seconds * 1e3:.2f} ms)")
