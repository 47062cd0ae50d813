"""Outgoing webhooks from real `loyalty-gateway` processes: `jobs run --now` sends what
is due by then; a `serve` killed with SIGKILL mid-delivery loses nothing once it is back;
two replicas on one PostgreSQL make each attempt once, not once per replica."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from ledger.commands import EnrollMember
from ledger.db import Database
from ledger.models import DeliveryOutcome, WebhookDelivery
from ledger.program import load_program
from ledger.service import LoyaltyService
from tests.conftest import postgres_url, sqlite_url
from tests.support.postgres import PostgresServer
from tests.support.receiver import SECRET, Receiver, receiving
from tests.support.replicas import Replica, cli, environment
from tests.support.server import free_port

pytestmark = pytest.mark.slow


def program_file(directory: Path, url: str) -> Path:
    path = directory / "hooks.toml"
    path.write_text(
        f"""
id = "hooks"
name = "Hooks"
currency = "USD"

[[webhooks]]
url = "{url}"
secret = "{SECRET}"
events = ["member.enrolled"]
""",
        encoding="utf-8",
    )
    return path


async def enroll_many(
    database: Database, program: Path, count: int, clock: datetime | None = None
) -> None:
    loaded = load_program(program)
    service = LoyaltyService({loaded.id: loaded}, **({"clock": lambda: clock} if clock else {}))
    for n in range(count):
        async with database.transaction() as session:
            outcome = await service.execute(
                session, "hooks", "test", EnrollMember(f"e-{n}", f"c-{n}")
            )
            assert outcome.ok


async def outcomes(database: Database) -> Counter[DeliveryOutcome]:
    async with database.reading() as session:
        rows = (await session.scalars(select(WebhookDelivery))).all()
    return Counter(row.outcome for row in rows)


async def attempts(database: Database) -> Counter[int]:
    async with database.reading() as session:
        rows = (await session.scalars(select(WebhookDelivery))).all()
    return Counter(row.attempts for row in rows)


async def wait_for_outcomes(database: Database, wanted: Counter[DeliveryOutcome]) -> None:
    async with asyncio.timeout(60):  # generous: the retries here are seconds apart
        while await outcomes(database) != wanted:  # noqa: ASYNC110 (rows, not an event)
            await asyncio.sleep(0.2)


@pytest.fixture
async def ledger(postgres: PostgresServer) -> AsyncIterator[tuple[str, Database]]:
    url = postgres_url(postgres)
    database = Database(url)
    yield url, database
    await database.dispose()


async def test_jobs_run_now_sends_what_is_due_by_then(
    sqlite_template: Path, tmp_path: Path
) -> None:
    url = sqlite_url(sqlite_template, tmp_path)
    database = Database(url)
    start = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    try:
        async with receiving(Receiver(script=[500])) as hook:
            program = program_file(tmp_path, hook.url)
            await enroll_many(database, program, 1, start)
            env = environment(
                database_url=url, programs=str(program), allow_private_webhooks="true"
            )
            reports = []
            for at in (start, start + timedelta(seconds=4), start + timedelta(seconds=5)):
                out = await asyncio.to_thread(cli, env, "jobs", "run", "--now", at.isoformat())
                reports.append(json.loads(out)["hooks"])
        assert [
            {k: v for k, v in report.items() if k.startswith("webhooks_")} for report in reports
        ] == [{"webhooks_retrying": 1}, {}, {"webhooks_delivered": 1}]
        assert len(hook.received) == 2
        assert hook.received[0].message_id == hook.received[1].message_id
        assert all(r.verified[SECRET] for r in hook.received)
        assert await outcomes(database) == Counter({DeliveryOutcome.DELIVERED: 1})
    finally:
        await database.dispose()


async def test_a_killed_gateway_delivers_everything_once_it_is_back(
    ledger: tuple[str, Database], tmp_path: Path
) -> None:
    url, database = ledger
    async with receiving(Receiver(hang=True)) as hook:
        program = program_file(tmp_path, hook.url)
        env = environment(
            database_url=url,
            programs=str(program),
            allow_private_webhooks="true",
            webhook_timeout="5",
            jobs_interval="3600",
        )
        gateway = Replica("gateway", free_port(), env, tmp_path)
        await asyncio.to_thread(gateway.start)
        try:
            await enroll_many(database, program, 10)
            await hook.wait_for(4)  # four attempts in flight (the endpoint's concurrency)
            await asyncio.to_thread(gateway.kill)  # mid-attempt, six more due
            assert await outcomes(database) == Counter({DeliveryOutcome.PENDING: 10})
            hook.hang = False
            hook.released.set()
            await asyncio.to_thread(gateway.start)
            await wait_for_outcomes(database, Counter({DeliveryOutcome.DELIVERED: 10}))
        finally:
            await asyncio.to_thread(gateway.stop)
    ids = Counter(r.message_id for r in hook.received)
    assert len(ids) == 10  # every event arrived
    # The four cut off by the kill arrived again with the same webhook-id: at least once.
    assert sorted(ids.values()) == [1] * 6 + [2] * 4
    assert all(r.verified[SECRET] for r in hook.received)


async def test_two_replicas_make_each_attempt_once(
    ledger: tuple[str, Database], tmp_path: Path
) -> None:
    url, database = ledger
    async with receiving(Receiver(fail_first=True)) as hook:
        program = program_file(tmp_path, hook.url)
        env = environment(
            database_url=url,
            programs=str(program),
            allow_private_webhooks="true",
            jobs_interval="3600",
        )
        replicas = [Replica(f"gateway-{n}", free_port(), env, tmp_path) for n in (1, 2)]
        try:
            for replica in replicas:
                await asyncio.to_thread(replica.start)
            await enroll_many(database, program, 30)
            await wait_for_outcomes(database, Counter({DeliveryOutcome.DELIVERED: 30}))
        finally:
            for replica in replicas:
                await asyncio.to_thread(replica.stop)
    ids = Counter(r.message_id for r in hook.received)
    assert len(ids) == 30
    assert set(ids.values()) == {2}  # a 500, then the retry five seconds later: once each
    assert await attempts(database) == Counter({2: 30})
