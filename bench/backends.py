"""R3 and R4 of DESIGN §10: the federated fields against the fake CRM and store
(`python -m bench.backends`: HubSpot and Shopify; `bench.backends_salesforce_woocommerce`
runs the same measurement with the other pair).

R3: one member with `profile` (the fake CRM answering in 100 ms) and `orders` (the fake
store in 150 ms), the caches off: the figure is the ratio to the slowest backend's
latency (1.0 would be no cost beyond waiting for the slower backend; the sum of both
latencies would be 1.67).

R4: `members(first: 100)` with points, tier, `transactions(first: 5)`, profile and
orders: the figures are counts, SQL statements and calls per backend, for the page, and
the page's time with the fakes at the R3 latencies.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from sqlalchemy import event

from auth import scopes
from auth.models import OAuthClient
from backends.fakes.hubspot import FakeHubSpot
from backends.fakes.shopify import FakeShopify
from gateway.app import create_app
from gateway.migrate import upgrade_async
from gateway.settings import Settings
from ledger.program import DEMO_PROGRAM, load_program
from ledger.program_sections import Commerce, Crm
from tests.support.server import free_port, serving

CRM_LATENCY = 0.100
STORE_LATENCY = 0.150
ROUNDS = 5
PER_ROUND = 10
MEMBERS = 100
FIRST_CUSTOMER = 1000  # the members' customer ids are 1000, 1001, ...

MEMBER = """query R3($c: String!) { member(ref: {customerId: $c}) {
  points { available } profile { firstName lifecycleStage } orders { id total createdAt } } }"""
PAGE = """query R4 { members(first: 100) { edges { node { customerId
  points { available pending } tier { current { name } }
  transactions(first: 5) { edges { node { kind points } } }
  profile { firstName } orders { id total } } } } }"""
ENROLL = """mutation Enroll($c: String!) {
  enrollMember(input: {idempotencyKey: $c, customerId: $c}) { userErrors { code } } }"""


class Fake(Protocol):
    latency: float

    def serving(self) -> Any: ...


@dataclass
class Figures:
    r3: float  # seconds, median per member read
    page: float  # seconds, the R4 page at the R3 latencies
    statements: list[str]  # what the R4 page ran, the backends at no latency

    @property
    def selects(self) -> int:
        return sum(1 for s in self.statements if s.lstrip().upper().startswith("SELECT"))

    def r3_line(self, crm: str, store: str) -> str:
        slowest = max(CRM_LATENCY, STORE_LATENCY)
        return (
            f"R3 member with profile ({crm}{CRM_LATENCY * 1e3:.0f} ms) and orders "
            f"({store}{STORE_LATENCY * 1e3:.0f} ms): {self.r3 * 1e3:.1f} ms = "
            f"{self.r3 / slowest:.2f} × the slowest backend "
            f"({(CRM_LATENCY + STORE_LATENCY) / slowest:.2f} × would be one after the other)"
        )

    def r4_line(self, calls: str) -> str:
        return (
            f"R4 members(first: {MEMBERS}) with points, tier, transactions(first: 5), profile, "
            f"orders: {self.selects} SELECTs ({len(self.statements)} statements), {calls}; "
            f"the page with the backends at {CRM_LATENCY * 1e3:.0f} / "
            f"{STORE_LATENCY * 1e3:.0f} ms: {self.page * 1e3:.0f} ms"
        )


async def measure(
    crm_fake: Fake,
    store_fake: Fake,
    configure: Callable[[], tuple[Crm, Commerce]],
    forget_calls: Callable[[], None],
) -> Figures:
    """R3 and R4 through a gateway whose demo program asks the backends `configure` gives
    once the two fakes serve (they know the members `FIRST_CUSTOMER`...); `forget_calls`
    clears the fakes' call counts before the counted page."""
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}"
        await upgrade_async(url)
        port = free_port()
        settings = Settings(
            database_url=url, issuer=f"http://127.0.0.1:{port}", rate_limit="100000/second"
        )
        async with crm_fake.serving(), store_fake.serving(), aiohttp.ClientSession() as http:
            crm, commerce = configure()
            program = load_program(DEMO_PROGRAM).model_copy(
                update={"crm": crm, "commerce": commerce}
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
                    await graphql(ENROLL, {"c": str(FIRST_CUSTOMER + i)})
                # warm: tokens of the backends, connections to the fakes
                await graphql(MEMBER, {"c": str(FIRST_CUSTOMER)})
                crm_fake.latency, store_fake.latency = CRM_LATENCY, STORE_LATENCY
                samples = []
                for round_ in range(ROUNDS):
                    began = time.perf_counter()
                    for i in range(PER_ROUND):
                        customer = FIRST_CUSTOMER + (round_ * PER_ROUND + i) % MEMBERS
                        await graphql(MEMBER, {"c": str(customer)})
                    samples.append((time.perf_counter() - began) / PER_ROUND)
                began = time.perf_counter()
                await graphql(PAGE, {})
                page = time.perf_counter() - began

                crm_fake.latency = store_fake.latency = 0.0
                forget_calls()
                engine = app.state.database.engine.sync_engine
                statements: list[str] = []

                def count(*args: Any) -> None:
                    statements.append(args[2])

                event.listen(engine, "before_cursor_execute", count)
                try:
                    await graphql(PAGE, {})
                finally:
                    event.remove(engine, "before_cursor_execute", count)
    return Figures(statistics.median(samples), page, statements)


async def main() -> None:
    crm, store = FakeHubSpot(token="pat-bench"), FakeShopify(token="shpat_bench")
    for i in range(MEMBERS):
        crm.add(str(FIRST_CUSTOMER + i), firstname=f"F{i}", lifecyclestage="customer")
        store.add_order(str(FIRST_CUSTOMER + i), f"#{i}", "12.50")

    def forget_calls() -> None:
        crm.reset()
        store.reset()

    def configure() -> tuple[Crm, Commerce]:
        return (
            Crm(kind="hubspot", base_url=crm.base, token=crm.token, cache_ttl=0),
            Commerce(kind="shopify", base_url=store.base, token=store.token, cache_ttl=0),
        )

    figures = await measure(crm, store, configure, forget_calls)
    print(figures.r3_line("", ""))
    print(figures.r4_line(f"CRM calls {crm.calls}, store calls {store.calls}"))


if __name__ == "__main__":
    import asyncio

    asyncio.run(main())
