"""`serve --workers N` on PostgreSQL: the workers share the replica's connection budget
(`LOYALTY_DATABASE_POOL`), and a burst of purchases larger than the budget is served in
full, each purchase once, without the database seeing more connections than the budget."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy.pool import QueuePool

from gateway.settings import Settings
from ledger.db import create_engine
from tests.conftest import postgres_url
from tests.support.postgres import PostgresServer
from tests.support.replicas import Replica, create_client, environment, run_cli
from tests.support.server import free_port

pytestmark = pytest.mark.slow

PURCHASE = """
mutation($input: PurchaseInput!) {
  recordPurchase(input: $input) { member { points { pending } } userErrors { code } }
}"""
BUDGET = 4
PG = "postgresql+asyncpg://ledger@127.0.0.1:5/ledger"  # never connected to
BURST = 40


@pytest.mark.parametrize(
    ("pool", "workers", "share"), [(30, 1, 30), (30, 4, 7), (4, 2, 2), (31, 15, 2)]
)
async def test_each_worker_keeps_its_share_of_the_pool_open(
    pool: int, workers: int, share: int
) -> None:
    settings = Settings(database_url=PG, database_pool=pool, workers=workers)
    assert settings.workers_problem(workers) is None
    assert settings.pool_per_worker() == share
    engine = create_engine(PG, connections=settings.pool_per_worker())
    try:
        assert isinstance(engine.pool, QueuePool)
        assert (engine.pool.size(), engine.pool._max_overflow) == (share, 0)
    finally:
        await engine.dispose()


def test_serve_refuses_more_workers_than_the_budget_holds(tmp_path: Path) -> None:
    env = environment(database_url=PG, database_pool="5")
    done = run_cli(env, "serve", "--workers", "3", "--port", str(free_port()))
    assert done.returncode == 2, done.stderr
    assert "--workers 3 needs LOYALTY_DATABASE_POOL of 6 or more" in done.stderr
    # SQLite has no pool to share: any number of workers.
    assert Settings(database_pool=5).workers_problem(3) is None


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # ended while we looked
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


async def test_two_workers_serve_a_burst_within_the_connection_budget(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    database = postgres_url(postgres)
    name = database.rsplit("/", 1)[1]
    port = free_port()
    env = environment(
        database_url=database,
        database_pool=str(BUDGET),
        issuer=f"http://127.0.0.1:{port}",
        rate_limit="10000/second",
        jobs_interval="3600",
    )
    gateway = Replica("gateway", port, env, tmp_path, "--workers", "2")
    gateway.start()
    try:
        assert gateway.process is not None
        assert len(children(gateway.process.pid)) >= 2  # the two workers
        client = create_client(env, "acme", "members:write points:write")
        async with aiohttp.ClientSession() as http:
            form = {"grant_type": "client_credentials", **client}
            async with http.post(gateway.url + "/oauth/token", data=form) as answer:
                token = (await answer.json())["access_token"]

            async def buy(n: int) -> Any:
                body = {
                    "query": PURCHASE,
                    "variables": {
                        "input": {
                            "idempotencyKey": f"burst-{n}",
                            "member": {"customerId": f"shopper-{n}"},
                            "orderId": f"order-{n}",
                            "currency": "USD",
                            "lines": [{"quantity": 1, "unitPrice": "10.00"}],
                        }
                    },
                }
                headers = {"Authorization": f"Bearer {token}"}
                async with http.post(gateway.url + "/graphql", json=body, headers=headers) as r:
                    assert r.status == 200, await r.text()
                    return (await r.json())["data"]["recordPurchase"]

            first = await buy(-1)
            assert first["userErrors"] == [], first
            earned = first["member"]["points"]["pending"]
            assert earned > 0

            seen: list[int] = []
            done = asyncio.Event()

            def connections() -> int:
                sql = f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{name}'"
                return int(postgres.psql(sql).strip())

            async def watch() -> None:
                while not done.is_set():
                    seen.append(await asyncio.to_thread(connections))

            watcher = asyncio.create_task(watch())
            try:
                answers = await asyncio.gather(*(buy(n) for n in range(BURST)))
            finally:
                done.set()
                await watcher
        assert [a["userErrors"] for a in answers] == [[]] * BURST
        assert [a["member"]["points"]["pending"] for a in answers] == [earned] * BURST
        assert seen and max(seen) <= BUDGET, seen
        rows = postgres.psql("SELECT count(*), sum(points) FROM entries WHERE kind = 'EARN'", name)
        assert rows.strip() == f"{BURST + 1}|{(BURST + 1) * earned}"
    finally:
        gateway.stop()
