"""Outgoing webhooks: deliveries per second to a fast local receiver, against a bare
aiohttp POST loop to the same receiver in the same run; and the time from a write's
commit to the first attempt of its delivery while the ledger takes writes.

The floor POSTs the same signed-size body with the same concurrency per endpoint as the
dispatcher, and does nothing else: no claim, no signature, no record of the attempt. Each
round writes fresh due deliveries (not timed), then times both sides, the one going first
alternating; after a warm-up round the figure is the median ratio of the rounds.

The CPU line is the same ratio in this process's CPU time (every thread: the event
loop, SQLite's connection thread, the receiver) instead of seconds on the clock. On a
machine other work keeps busy, waiting for a core stretches both sides' seconds by
chance; their CPU time moves less, so the line says whether a change of the ratio is
the code's. The database server's CPU (PostgreSQL) is not in it.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from events.webhooks import CONCURRENCY, WebhookDispatcher
from gateway.migrate import upgrade_async
from ledger.commands import AdjustPoints, EnrollMember, MemberRef
from ledger.db import Database
from ledger.program import parse_program
from ledger.service import LoyaltyService

DELIVERIES = 1000  # per round, on each side
ROUNDS = 5  # measured rounds; the figure is the median of their ratios
WARMUP = 1  # rounds run first and not counted (imports, connections, caches)
LATENCY_WRITES = 400
WRITE_INTERVAL = 0.01  # seconds between writes while measuring commit-to-attempt
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class _Receiver:
    def __init__(self) -> None:
        self.count = 0
        self.arrivals: dict[str, float] = {}  # transaction id -> when it first arrived

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.count += 1
        data = json.loads(body)["data"]  # parsed on both sides alike: the same work
        if request.headers.get("webhook-id"):
            self.arrivals.setdefault(str(data.get("transactionId")), time.perf_counter())
        return web.Response(text="ok")


async def _serve(receiver: _Receiver) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/hook"


async def _bare_loop(url: str, body: bytes, count: int) -> float:
    """Seconds for `count` POSTs with CONCURRENCY in flight, reading each answer."""
    left = count
    async with aiohttp.ClientSession() as http:

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                async with http.post(url, data=body) as answer:
                    await answer.read()

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return time.perf_counter() - began


def _program(url: str) -> Any:
    return parse_program(
        {
            "id": "bench",
            "name": "Bench",
            "currency": "USD",
            "webhooks": [{"url": url, "secret": SECRET, "events": ["points.adjusted"]}],
        }
    )


async def main(database_url: str | None = None) -> None:
    """The run on a fresh SQLite file, or on `database_url` (an empty migrated ledger,
    e.g. PostgreSQL: `python -m bench.webhooks postgresql+asyncpg://...`)."""
    receiver = _Receiver()
    runner, url = await _serve(receiver)
    program = _program(url)
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    try:
        with tempfile.TemporaryDirectory() as directory:
            if database_url is None:
                database_url = f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}"
                await upgrade_async(database_url)
            database = Database(database_url)
            service = LoyaltyService({program.id: program}, clock=lambda: now)
            async with database.transaction() as session:
                await service.execute(session, "bench", "bench", EnrollMember("e", "m-1"))
            sample = {"type": "points.adjusted", "timestamp": now.isoformat(), "data": {}}
            body = json.dumps(sample).encode().ljust(420)  # the size of a delivery's body
            rounds: list[tuple[float, float]] = []  # (dispatcher seconds, floor seconds)
            cpu: list[tuple[float, float]] = []  # the same in this process's CPU seconds
            for number in range(WARMUP + ROUNDS):
                # Both sides send the same count; the side that goes first alternates, so
                # drift in the shared machine's load falls on both alike.
                await _write(database, service, number, DELIVERIES)
                if number % 2:
                    bare, bare_cpu = await _cpu(_bare_loop(url, body, DELIVERIES))
                    dispatched, dispatched_cpu = await _cpu(_dispatch(database, service, now))
                else:
                    dispatched, dispatched_cpu = await _cpu(_dispatch(database, service, now))
                    bare, bare_cpu = await _cpu(_bare_loop(url, body, DELIVERIES))
                if number >= WARMUP:
                    rounds.append((dispatched, bare))
                    cpu.append((dispatched_cpu, bare_cpu))
            latencies = await _commit_to_attempt(database, program, receiver)
            await database.dispose()
    finally:
        await runner.cleanup()
    ratio = statistics.median(bare / dispatched for dispatched, bare in rounds)
    rate = statistics.median(DELIVERIES / dispatched for dispatched, _ in rounds)
    floor = statistics.median(DELIVERIES / bare for _, bare in rounds)
    each = ", ".join(f"{bare / dispatched:.2f}" for dispatched, bare in rounds)
    kind = "SQLite" if database_url.startswith("sqlite") else "PostgreSQL"
    print(f"floor: bare aiohttp POST loop, {CONCURRENCY} in flight = {floor:.0f} requests/s")
    print(
        f"{'webhook deliveries':<24} {ratio:6.2f} × floor   ({rate:.0f} deliveries/s, "
        f"{kind}, signed, each attempt recorded; median of {ROUNDS} rounds: {each})"
    )
    cpu_ratio = statistics.median(bare / dispatched for dispatched, bare in cpu)
    cpu_each = ", ".join(f"{bare / dispatched:.2f}" for dispatched, bare in cpu)
    per_delivery = statistics.median(d for d, _ in cpu) / DELIVERIES * 1e6
    per_request = statistics.median(b for _, b in cpu) / DELIVERIES * 1e6
    print(
        f"{'  the same in CPU time':<24} {cpu_ratio:6.2f} × floor   ({per_delivery:.0f} µs a "
        f"delivery, {per_request:.0f} µs a bare request, receiver included; rounds: {cpu_each})"
    )
    p50 = statistics.median(latencies)
    p99 = statistics.quantiles(latencies, n=100)[98]
    print(
        f"{'commit → first attempt':<24} p50 {p50 * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms "
        f"({len(latencies)} writes at {1 / WRITE_INTERVAL:.0f}/s)"
    )


async def _write(database: Database, service: LoyaltyService, round_: int, count: int) -> None:
    """`count` adjustments, each writing one delivery due at once (not timed)."""
    for i in range(count):
        command = AdjustPoints(f"a{round_}-{i}", MemberRef(customer_id="m-1"), 1, "bench")
        async with database.transaction() as session:
            await service.execute(session, "bench", "bench", command)


async def _dispatch(database: Database, service: LoyaltyService, now: datetime) -> float:
    """Seconds for one `run_due` to attempt and record every due delivery."""
    dispatcher = WebhookDispatcher(database, service.programs, lambda: now, allow_private=True)
    began = time.perf_counter()
    report = await dispatcher.run_due(now)
    took = time.perf_counter() - began
    assert report.outcomes == {"bench": {"DELIVERED": DELIVERIES}}, report.outcomes
    return took


async def _commit_to_attempt(database: Database, program: Any, receiver: _Receiver) -> list[float]:
    """Seconds from each write's commit to its delivery's arrival, with the dispatcher
    running in the background (woken by the commits) while writes keep coming."""
    service = LoyaltyService({program.id: program})
    dispatcher = WebhookDispatcher(database, service.programs, _utcnow, allow_private=True)
    dispatcher.start()
    committed: dict[str, float] = {}
    try:
        for i in range(LATENCY_WRITES):
            command = AdjustPoints(f"l{i}", MemberRef(customer_id="m-1"), 1, "bench")
            async with database.transaction() as session:
                outcome = await service.execute(session, "bench", "bench", command)
            committed[str(outcome.entry_id)] = time.perf_counter()
            await asyncio.sleep(WRITE_INTERVAL)
        async with asyncio.timeout(60):
            while not all(key in receiver.arrivals for key in committed):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    finally:
        await dispatcher.stop()
    return [receiver.arrivals[key] - at for key, at in committed.items()]


async def _cpu(work: Awaitable[float]) -> tuple[float, float]:
    """`work`'s seconds, and the CPU seconds this process spent meanwhile."""
    began = time.process_time()
    seconds = await work
    return seconds, time.process_time() - began


def _utcnow() -> datetime:
    return datetime.now(UTC)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else None))
