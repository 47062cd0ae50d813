"""R3 and R4 of DESIGN §10 with the other pair of backends: Salesforce as the CRM and
WooCommerce as the store, against their fakes (`python -m bench.backends_salesforce_woocommerce`).

R3: one member with `profile` (fake Salesforce answering in 100 ms) and `orders` (fake
WooCommerce in 150 ms), the caches off: the ratio to the slowest backend's latency.

R4: `members(first: 100)` with points, tier, `transactions(first: 5)`, profile and
orders: SQL statements and calls per backend for the page (Salesforce: token and SOQL
queries; WooCommerce: orders requests, one per member, since its API filters by one
customer), and the page's time with the fakes at the R3 latencies.
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
from backends.fakes.salesforce import EXTERNAL_ID_FIELD, FakeSalesforce
from backends.fakes.woocommerce import FakeWooCommerce
from bench.backends import ENROLL, MEMBER, PAGE
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


async def main() -> None:
    crm, store = FakeSalesforce(), FakeWooCommerce()
    for i in range(MEMBERS):
        crm.add_contact(str(1000 + i), f"F{i}", f"L{i}")
        store.add_order(1000 + i, total="12.50")
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
                    "crm": Crm(
                        kind="salesforce",
                        base_url=crm.base,
                        client_id=crm.client_id,
                        client_secret=crm.client_secret,
                        customer_id_property=EXTERNAL_ID_FIELD,
                        cache_ttl=0,
                    ),
                    "commerce": Commerce(
                        kind="woocommerce",
                        base_url=store.base,
                        consumer_key=store.key.consumer_key,
                        consumer_secret=store.key.consumer_secret,
                        cache_ttl=0,
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
                await graphql(MEMBER, {"c": "1000"})  # warm: the token, the connections
                crm.latency, store.latency = CRM_LATENCY, STORE_LATENCY
                samples = []
                for round_ in range(ROUNDS):
                    began = time.perf_counter()
                    for i in range(PER_ROUND):
                        await graphql(MEMBER, {"c": str(1000 + (round_ * PER_ROUND + i) % MEMBERS)})
                    samples.append((time.perf_counter() - began) / PER_ROUND)
                r3 = statistics.median(samples)

                began = time.perf_counter()
                await graphql(PAGE, {})
                page_time = time.perf_counter() - began

                crm.latency = store.latency = 0.0
                crm.calls.clear()
                store.calls.clear()
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
        f"R3 member with profile (Salesforce {CRM_LATENCY * 1e3:.0f} ms) and orders "
        f"(WooCommerce {STORE_LATENCY * 1e3:.0f} ms): {r3 * 1e3:.1f} ms = {r3 / slowest:.2f} × "
        "the slowest backend"
    )
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    print(
        f"R4 members(first: {MEMBERS}) with points, tier, transactions(first: 5), profile, "
        f"orders: {len(selects)} SELECTs ({len(statements)} statements), Salesforce calls "
        f"{dict(crm.calls)}, WooCommerce calls {dict(store.calls)}; the page with the "
        f"backends at 100 / 150 ms: {page_time * 1e3:.0f} ms"
    )


if __name__ == "__main__":
    import asyncio

    asyncio.run(main())
