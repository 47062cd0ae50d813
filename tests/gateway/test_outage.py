"""A database that is away or locked is answered 503 + Retry-After (SERVICE_UNAVAILABLE),
never a 500 or INTERNAL; every retry with the same key lands exactly once."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from gateway.migrate import upgrade
from ledger.db import Database
from ledger.models import Entry, EntryKind, Member
from tests.conftest import IN_CI, sqlite_url
from tests.support.gateway import Gateway, Response, running_gateway
from tests.support.ledger import check_invariants, table_counts
from tests.support.postgres import PostgresServer, PostgresUnavailable, running_postgres

PURCHASE = """mutation($i: PurchaseInput!) {
  recordPurchase(input: $i) { transaction { id points orderId } userErrors { code } }
}"""
ME = "{ me { customerId points { available pending } } }"
CLIENTS = 8
POINTS = 10  # one 10.00 line, Bronze, on a Monday


def purchase(key: str, customer: str) -> dict[str, Any]:
    line = {"sku": "tee", "quantity": 1, "unitPrice": "10.00"}
    return {
        "i": {
            "idempotencyKey": key,
            "member": {"customerId": customer},
            "orderId": f"order-{key}",
            "currency": "USD",
            "lines": [line],
        }
    }


def assert_unavailable(response: Response) -> None:
    assert (response.status, response.codes) == (503, ["SERVICE_UNAVAILABLE"]), response
    assert response.headers["retry-after"] == "2"
    assert "x-request-id" in response.headers


def assert_purchased(response: Response, key: str) -> None:
    assert response.status == 200, response
    payload = response.data["recordPurchase"]
    assert payload["userErrors"] == []
    assert (payload["transaction"]["points"], payload["transaction"]["orderId"]) == (
        POINTS,
        f"order-{key}",
    )


async def readiness(gw: Gateway) -> tuple[int, dict[str, str]]:
    async with gw.http.get(gw.url + "/readyz") as response:
        return response.status, {k.lower(): v for k, v in response.headers.items()}


async def earned_per_order(gw: Gateway) -> dict[str, list[int]]:
    async with gw.database.reading() as session:
        rows = await session.execute(
            select(Entry.order_id, Entry.points).where(Entry.kind == EntryKind.EARN)
        )
        earned: dict[str, list[int]] = defaultdict(list)
        for order_id, points in rows:
            earned[str(order_id)].append(points)
        return earned


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own, to stop and start under the gateway;
    durable, so that a commit acknowledged before an immediate stop is still there."""
    try:
        with running_postgres(durable=True) as server:
            server.create_database("ledger")
            upgrade(server.sqlalchemy_url("ledger"))
            yield server
    except PostgresUnavailable as exc:
        if IN_CI:
            raise
        pytest.skip(f"PostgreSQL is not available here: {exc}")


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_postgresql_restarted_under_concurrent_purchases(
    own_postgres: PostgresServer, mode: str
) -> None:
    async with running_gateway(own_postgres.sqlalchemy_url("ledger")) as gw:
        token = await gw.token()
        async with gw.database.transaction() as session:
            client = await gw.app.state.authorization.create_client(
                session, "test", "till", frozenset({"points:write"})
            )
        form = {
            "grant_type": "client_credentials",
            "client_id": client.client_id,
            "client_secret": client.client_secret,
        }
        answers: dict[str, list[Response]] = defaultdict(list)
        owner: dict[str, str] = {}
        served: list[float] = []  # when purchases succeeded
        stop = asyncio.Event()

        async def till(n: int) -> None:
            for i in range(10_000):
                if stop.is_set():
                    return
                key, customer = f"{mode}-{n}-{i}", f"shopper-{n}"
                owner[key] = customer
                response = await gw.graphql(PURCHASE, purchase(key, customer), token)
                answers[key].append(response)
                if response.status == 200:
                    served.append(time.monotonic())
                else:
                    await asyncio.sleep(0.05)

        tills = [asyncio.create_task(till(n)) for n in range(CLIENTS)]
        try:
            await asyncio.sleep(1)
            await asyncio.to_thread(own_postgres.stop, mode)

            # While it is down: not ready, a member's query and a token request are 503s.
            status, headers = await readiness(gw)
            assert (status, headers["retry-after"]) == (503, "2")
            assert_unavailable(await gw.graphql(ME, token=gw.member_token("shopper-0")))
            async with gw.http.post(gw.url + "/oauth/token", data=form) as minted:
                assert (minted.status, minted.headers["Retry-After"]) == (503, "2")
                assert (await minted.json())["error"] == "temporarily_unavailable"
            await asyncio.sleep(1.5)

            await asyncio.to_thread(own_postgres.start)
            restarted = time.monotonic()
            while (await readiness(gw))[0] != 200:
                assert time.monotonic() - restarted < 5, "not ready 5 s after it returned"
                await asyncio.sleep(0.05)
            ready_after = time.monotonic() - restarted
            await asyncio.sleep(1)
            stop.set()
            await asyncio.gather(*tills)
        finally:
            for task in tills:
                task.cancel()
            await asyncio.gather(*tills, return_exceptions=True)

        # Every answer was a success or a 503 to retry: never a 500, never INTERNAL.
        refused = []
        for key, responses in answers.items():
            (response,) = responses
            if response.status == 200:
                assert_purchased(response, key)
            else:
                assert_unavailable(response)
                refused.append(key)
        served_after = min(t for t in served if t > restarted) - restarted
        assert served_after < 2, served_after  # purchases land again within 2 s
        succeeded = len(answers) - len(refused)
        assert refused, "the outage was never felt"
        assert succeeded > 2 * CLIENTS, "too few purchases around the outage"

        # Retried with the same key, each 503 lands exactly once.
        for key in refused:
            for _ in range(20):
                again = await gw.graphql(PURCHASE, purchase(key, owner[key]), token)
                if again.status == 200:
                    break
                assert_unavailable(again)
                await asyncio.sleep(0.1)
            assert_purchased(again, key)
        earned = await earned_per_order(gw)
        assert earned == {f"order-{key}": [POINTS] for key in answers}
        async with gw.database.reading() as session:
            members = await session.scalar(select(func.count()).select_from(Member))
            assert members == CLIENTS
            await check_invariants(session)
        async with gw.http.post(gw.url + "/oauth/token", data=form) as minted:
            assert minted.status == 200
        print(
            f"\n{mode}: {len(refused)} of {len(answers)} refused; ready {ready_after:.2f} s, "
            f"a purchase served {served_after:.2f} s after the restart"
        )


async def test_a_sqlite_write_lock_held_past_the_operation_timeout_is_a_503(
    sqlite_template: Path, tmp_path: Path
) -> None:
    url = sqlite_url(sqlite_template, tmp_path)
    timeout = 1.0
    async with running_gateway(url, operation_timeout=timeout) as gw:
        token = await gw.token()
        first = await gw.graphql(PURCHASE, purchase("warm", "ada"), token)
        assert_purchased(first, "warm")
        before = await table_counts(gw.database)
        blocker = sqlite3.connect(url.removeprefix("sqlite+aiosqlite:///"), isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")  # another process's writer, never done in time
            started = time.monotonic()
            locked = await gw.graphql(PURCHASE, purchase("k", "ada"), token)
            waited = time.monotonic() - started
            assert_unavailable(locked)
            assert timeout / 2 <= waited < timeout, waited
            print(f"\nSQLite lock: 503 after {waited:.2f} s (operation timeout {timeout:g} s)")
            assert (await readiness(gw))[0] == 200  # reads go on beside the writer (WAL)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert await table_counts(gw.database) == before  # nothing was written
        landed = await gw.graphql(PURCHASE, purchase("k", "ada"), token)
        assert_purchased(landed, "k")
        replayed = await gw.graphql(PURCHASE, purchase("k", "ada"), token)
        assert replayed.data == landed.data
        assert await earned_per_order(gw) == {"order-warm": [POINTS], "order-k": [POINTS]}
        async with gw.database.reading() as session:
            await check_invariants(session)


async def backend_waiting(gw: Gateway, wait_event: str) -> int:
    """The pid of the (one) session waiting on `wait_event`, once it does."""
    for _ in range(200):
        async with gw.database.reading() as session:
            pid = await session.scalar(
                text("SELECT pid FROM pg_stat_activity WHERE wait_event = :e"), {"e": wait_event}
            )
        if pid is not None:
            return int(pid)
        await asyncio.sleep(0.02)
    raise AssertionError(f"no session waits on {wait_event}")


async def kill(gw: Gateway, pid: int) -> None:
    async with gw.database.reading() as session:
        assert await session.scalar(text("SELECT pg_terminate_backend(:p)"), {"p": pid})


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_write_whose_connection_dies_in_its_transaction_is_a_503(
    database_url: str,
) -> None:
    async with running_gateway(database_url) as gw:
        token = await gw.token()
        assert_purchased(await gw.graphql(PURCHASE, purchase("warm", "ada"), token), "warm")
        before = await table_counts(gw.database)
        async with gw.database.transaction() as blocker:
            # Ada's account is locked: the purchase waits on the row inside its transaction.
            await blocker.execute(
                text(
                    "SELECT 1 FROM accounts JOIN members ON members.id = accounts.member_id"
                    " WHERE members.customer_id = 'ada' FOR UPDATE"
                )
            )
            answer = asyncio.create_task(gw.graphql(PURCHASE, purchase("k", "ada"), token))
            await kill(gw, await backend_waiting(gw, "transactionid"))
            assert_unavailable(await answer)
        assert await table_counts(gw.database) == before  # nothing half-written
        landed = await gw.graphql(PURCHASE, purchase("k", "ada"), token)
        assert_purchased(landed, "k")
        assert await earned_per_order(gw) == {"order-warm": [POINTS], "order-k": [POINTS]}


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_write_whose_connection_dies_at_commit_is_a_503(database_url: str) -> None:
    async with running_gateway(database_url) as gw:
        token = await gw.token()
        assert_purchased(await gw.graphql(PURCHASE, purchase("warm", "ada"), token), "warm")
        before = await table_counts(gw.database)
        async with gw.database.transaction() as session:
            # A deferred trigger: every commit that wrote an entry sleeps in COMMIT.
            await session.execute(
                text(
                    "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS"
                    " $$ BEGIN PERFORM pg_sleep(5); RETURN NULL; END $$"
                )
            )
            await session.execute(
                text(
                    "CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON entries"
                    " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()"
                )
            )
        answer = asyncio.create_task(gw.graphql(PURCHASE, purchase("k", "ada"), token))
        await kill(gw, await backend_waiting(gw, "PgSleep"))
        assert_unavailable(await answer)
        async with gw.database.transaction() as session:
            await session.execute(text("DROP TRIGGER slow_commit ON entries"))
        assert await table_counts(gw.database) == before  # the commit never completed
        landed = await gw.graphql(PURCHASE, purchase("k", "ada"), token)
        assert_purchased(landed, "k")
        assert await earned_per_order(gw) == {"order-warm": [POINTS], "order-k": [POINTS]}
        async with gw.database.reading() as session:
            await check_invariants(session)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_readiness_never_hangs_on_a_database_that_does_not_answer(
    database_url: str,
) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts, and never says a word
        writer.close()

    async with running_gateway(database_url) as gw:
        listener = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        answering = gw.app.state.database
        gw.app.state.database = Database(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/x")
        try:
            started = time.monotonic()
            status, headers = await readiness(gw)
            waited = time.monotonic() - started
            assert (status, headers["retry-after"]) == (503, "2")
            assert 1.5 <= waited < 3, waited  # READY_TIMEOUT, not the driver's 60 s
        finally:
            await gw.app.state.database.dispose()
            gw.app.state.database = answering
            listener.close()
            await listener.wait_closed()
        assert (await readiness(gw))[0] == 200


GATEWAY_BACKENDS = """SELECT pid FROM pg_stat_activity WHERE datname = current_database()
  AND backend_type = 'client backend' AND pid <> pg_backend_pid()"""


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_pooled_connection_ended_by_the_server_is_replaced_before_use(
    database_url: str,
) -> None:
    """The pre-ping of a checkout (`ledger.db._ping_asyncpg`) finds a pooled connection
    whose server process has ended, and the pool hands out a new one: the requests
    after are answered as before, not 503."""
    async with running_gateway(database_url) as gw:
        token = await gw.token()
        assert_purchased(await gw.graphql(PURCHASE, purchase("warm", "ada"), token), "warm")
        async with gw.database.reading() as session:
            pooled = set((await session.scalars(text(GATEWAY_BACKENDS))).all())
            assert pooled  # the connections the gateway keeps, but this one
            for pid in pooled:
                await session.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        for n in range(len(pooled) + 2):  # every pooled connection checked out again
            assert_purchased(await gw.graphql(PURCHASE, purchase(f"k{n}", "ada"), token), f"k{n}")
        read = await gw.graphql(ME, token=gw.member_token("ada"))
        assert read.status == 200, read
        assert read.data["me"]["points"]["pending"] == POINTS * (len(pooled) + 3)
        async with gw.database.reading() as session:
            now = set((await session.scalars(text(GATEWAY_BACKENDS))).all())
        assert not now & pooled  # none of the ended ones is in use
