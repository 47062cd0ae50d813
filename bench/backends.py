"""R3 and R4 of DESIGN §10: the federated fields against the fake CRM and store.

R3: one member with `profile` (fake HubSpot answering in 100 ms) and `orders` (fake
Shopify in 150 ms), the cache off: the figure is the ratio to the slowest backend's
latency (1.0 would be no cost beyond waiting for the slower backend; the sum of both
latencies would be 1.67).

R4: `members(first: 100)` with points, tier, `transactions(first: 5)`, profile and
orders: the figures are counts, SQL statements and calls per backend, for the page.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import event

from auth import scopes
from auth.models import OAuthClient
from backends.fakes.hubspot import FakeHubSpot
from backends.fakes.shopify import FakeShopify
from gateway.app import create_app
from gateway.migrate import upgrade_async
from gateway.settings import Settings
from ledger.program import DEMO_PROGRAM, Commerce, Crm, load_program
from tests.support.server import free_port, serving

CRM_LATENCY = 0.100
STORE_LATENCY = 0.150
ROUNDS = 5
PER_ROUND = 10
MEMBERS = 100

MEMBER = """query R3($c: String!) { member(ref: {customerId: $c}) {
  points { available } profile { firstName lifecycleStage } orders { id total createdAt } } }"""
PAGE = """query R4 { members(first: 100) { edges { node { customerId
  points { available pending } tier { current { name } }
  transactions(first: 5) { edges { node { kind points } } }
  profile { firstName } orders { id total } } } } }"""
ENROLL = """mutation Enroll($c: String!) {
  enrollMember(input: {idempotencyKey: $c, customerId: $c}) { userErrors { code } } }"""


async def main() -> None:
    crm, store = FakeHubSpot(token="pat-bench"), FakeShopify(token="shpat_bench")
    for i in range(MEMBERS):
        crm.add(str(1000 + i), firstname=f"F{i}", lifecyclestage="customer")
        store.add_order(str(1000 + i), f"#{i}", "12.50")
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}"
        await upgrade_async(url)
        port = free_port()
        settings = Settings(
            database_url=url, issuer=f"http://127.0.0.1:{port}", rate_limit="100000/second"
        )
        async with crm.serving(), store.serving(), aiohttp.ClientSession() as http:
            program = load_program(DEMO_PROGRAM).model_copy(
                update={
                    "crm": Crm(kind="hubspot", base_url=crm.base, token=crm.token, cache_ttl=0),
                    "commerce": Commerce(
                        kind="shopify", base_url=store.base, token=store.token, cache_ttl=0
                    ),
                }
            )
            app = create_app(settings, scheduled_jobs=False, programs={program.id: program})
            async with serving(app, port) as base:
                async with app.state.database.transaction() as session:
                    creds = await app.state.authorization.create_client(
                        session, program.id, "bench", scopes.ALL
                    )
                    client = await session.get(OAuthClient, creds.client_id)
                assert client is not None
                token, _ = app.state.authorization.issue(client, None)
                headers = {"Authorization": f"Bearer {token}"}

                async def graphql(query: str, variables: dict[str, Any]) -> None:
                    body = {"query": query, "variables": variables}
                    async with http.post(base + "/graphql", json=body, headers=headers) as answer:
                        result = await answer.json()
                        assert answer.status == 200 and "errors" not in result, result

                for i in range(MEMBERS):
                    await graphql(ENROLL, {"c": str(1000 + i)})
                await graphql(MEMBER, {"c": "1000"})  # warm: connections to the fakes open
                crm.latency, store.latency = CRM_LATENCY, STORE_LATENCY
                samples = []
                for round_ in range(ROUNDS):
                    began = time.perf_counter()
                    for i in range(PER_ROUND):
                        await graphql(MEMBER, {"c": str(1000 + (round_ * PER_ROUND + i) % MEMBERS)})
                    samples.append((time.perf_counter() - began) / PER_ROUND)
                r3 = statistics.median(samples)

                crm.latency = store.latency = 0.0
                crm.reset()
                store.reset()
                engine = app.state.database.engine.sync_engine
                statements: list[str] = []

                def count(*args: Any) -> None:
                    statements.append(args[2])

                event.listen(engine, "before_cursor_execute", count)
                try:
                    await graphql(PAGE, {})
                finally:
                    event.remove(engine, "before_cursor_execute", count)
    slowest = max(CRM_LATENCY, STORE_LATENCY)
    print(
        f"R3 member with profile ({CRM_LATENCY * 1e3:.0f} ms) and orders "
        f"({STORE_LATENCY * 1e3:.0f} ms): {r3 * 1e3:.1f} ms = {r3 / slowest:.2f} × the slowest "
        f"backend ({(CRM_LATENCY + STORE_LATENCY) / slowest:.2f} × would be one after the other)"
    )
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    print(
        f"R4 members(first: {MEMBERS}) with points, tier, transactions(first: 5), profile, "
        f"orders: {len(selects)} SELECTs ({len(statements)} statements), "
        f"CRM calls {crm.calls}, store calls {store.calls}"
    )


if __name__ == "__main__":
    import asyncio

    asyncio.run(main())
