"""R1, R1p, R2, R6, R7 and the memory row of DESIGN §10, on SQLite and PostgreSQL.

The gateway is `loyalty-gateway serve` in its own process over a database built by
`bench.dataset`; its floors are `bench.floors` in another process over the same
database; the load is `wrk` (see `bench.harness`), except R7, whose 1,000 clients are
aiohttp sessions in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import asyncpg  # type: ignore[import-untyped]

from bench import dataset, harness
from bench.harness import Load, Measure, Server

ROWS = frozenset({"R1", "R1p", "R2", "R6", "R7", "memory"})

READ = (
    "query Member($c: String!) { member(ref: {customerId: $c}) "
    "{ points { available pending } tier { current { name } } } }"
)
WRITE = (
    "mutation Buy($k: String!, $o: String!, $c: String!) { recordPurchase(input: "
    '{idempotencyKey: $k, member: {customerId: $c}, orderId: $o, currency: "USD", lines: ['
    '{sku: "SHOE", category: "shoes", quantity: 1, unitPrice: "80.00"}, '
    '{sku: "SOCK", category: "socks", quantity: 2, unitPrice: "5.00"}, '
    '{sku: "CAP", category: "hats", quantity: 1, unitPrice: "20.00"}]}) '
    "{ transaction { points } userErrors { code } } }"
)
REDEEM = (
    "mutation Redeem($k: String!, $c: String!) { redeemReward(input: {idempotencyKey: $k, "
    'member: {customerId: $c}, rewardId: "five-off"}) '
    "{ redemption { code } userErrors { code } } }"
)


def _body(query: str, variables: str) -> str:
    return '{"query": ' + json.dumps(query) + ', "variables": {' + variables + "}}"


READ_BODY = _body(READ, '"c": "c-{m}"')
WRITE_BODY = _body(WRITE, '"k": "{id}", "o": "{id}", "c": "c-{m}"')


@dataclass
class Sizes:
    """How big and how long: the default, `--full` and `--smoke`."""

    seconds: int = 5
    members: int = 10_000
    big_members: int = 100_000  # R6; 1,000,000 with --full
    entries: int = 10  # per member
    redeem_clients: int = 1_000
    redeem_attempts: int = 2_000  # 10,000 with --full
    memory_samples: tuple[int, int] = (20, 60)  # seconds; (120, 600) with --full
    postgres_rows: frozenset[str] = field(
        default_factory=lambda: frozenset({"R1", "R1p", "R2", "R6", "R7", "memory"})
    )


FULL = Sizes(seconds=10, big_members=1_000_000, redeem_attempts=10_000, memory_samples=(120, 600))
SMOKE = Sizes(
    seconds=1,
    members=200,
    big_members=2_000,
    entries=2,
    redeem_clients=20,
    redeem_attempts=60,
    memory_samples=(1, 2),
    postgres_rows=frozenset({"R7"}),
)


@dataclass
class Row:
    id: str
    scenario: str
    database: str
    gateway: str
    floor: str
    ratio: float | None
    latency: str
    note: str = ""


def _rate(m: Measure) -> str:
    errors = m.maximum.errors + m.half.errors
    return f"{m.rate:,.0f} req/s" + (f" ({errors} errors)" if errors else "")


def _latency(m: Measure) -> str:
    return f"{m.half.p50_ms:.1f} / {m.half.p99_ms:.1f} ms at {m.half.rate:,.0f} req/s"


def _pair(
    id_: str, scenario: str, db: str, gateway: Measure, floor: Measure, floor_name: str
) -> Row:
    return Row(
        id_,
        scenario,
        db,
        _rate(gateway),
        f"{floor_name}: {_rate(floor)}",
        gateway.rate / floor.rate if floor.rate else None,
        _latency(gateway),
    )


@contextlib.contextmanager
def databases(kind: str) -> Iterator[tuple[str, Iterator[str]]]:
    """(kind, a source of fresh empty database URLs)."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench-") as folder:

            def sqlite_urls() -> Iterator[str]:
                n = 0
                while True:
                    n += 1
                    yield f"sqlite+aiosqlite:///{Path(folder) / f'bench{n}.db'}"

            yield kind, sqlite_urls()
    else:
        from tests.support.postgres import running_postgres

        with running_postgres(durable=True) as server:

            def postgres_urls() -> Iterator[str]:
                n = 0
                while True:
                    n += 1
                    server.create_database(f"bench{n}")
                    yield server.sqlalchemy_url(f"bench{n}")

            yield kind, postgres_urls()


def _probe(server: Server, path: str, body: str, token: str | None) -> None:
    """One request before the load: it must answer data and no error."""
    sample = json.loads(body.replace("{id}", "probe").replace("{m}", "1"))
    answer = server.post(path, sample, token)
    assert answer.get("data") and not answer.get("errors"), answer


def run(kind: str, sizes: Sizes, only: frozenset[str] | None = None) -> list[Row]:
    wanted = only or ROWS
    rows: list[Row] = []
    name = "SQLite" if kind == "sqlite" else "PostgreSQL"
    s = sizes.seconds
    with databases(kind) as (_, urls):
        url = next(urls)
        asyncio.run(dataset.build(url, sizes.members, sizes.entries))
        big = _build_big(next(urls), sizes) if "R6" in wanted else None
        gateway, floor = harness.gateway(url), harness.floor(url)  # both start at once
        try:
            gateway.wait(), floor.wait()
            token = harness.partner_token(gateway, url)
            read = Load("/graphql", [READ_BODY], sizes.members, token)
            r1 = None
            if wanted & {"R1", "R1p"}:
                _probe(gateway, "/graphql", READ_BODY, token)
                r1 = harness.measure(gateway, read, s)
            if "R1" in wanted and r1:
                _probe(floor, "/read", READ_BODY, None)
                bare = harness.measure(floor, Load("/read", [READ_BODY], sizes.members), s)
                scenario = "member read (points, tier), partner token"
                rows.append(_pair("R1", scenario, name, r1, bare, "Starlette + driver"))
            if "R1p" in wanted and r1:
                _probe(floor, "/graphql", READ_BODY, None)
                plain = harness.measure(floor, Load("/graphql", [READ_BODY], sizes.members), s)
                scenario = "the same read"
                rows.append(_pair("R1p", scenario, name, r1, plain, "bare Strawberry"))
            if "R2" in wanted:
                _probe(gateway, "/graphql", WRITE_BODY, token)
                write = harness.measure(
                    gateway, Load("/graphql", [WRITE_BODY], sizes.members, token), s
                )
                _probe(floor, "/write", WRITE_BODY, None)
                bare = harness.measure(floor, Load("/write", [WRITE_BODY], sizes.members), s)
                scenario = "recordPurchase, 3 lines, fresh key and order"
                rows.append(_pair("R2", scenario, name, write, bare, "INSERT + UPDATE"))
            if big is not None:
                rows.append(_r6(big, sizes, name, gateway, read))
            if "memory" in wanted:
                rows.append(_memory(gateway, token, sizes, name))
        finally:
            gateway.stop()
            floor.stop()
        if "R7" in wanted and kind == "postgres":
            rows.append(_r7(next(urls), sizes, name))
    return rows


R6_ROUNDS = 3


def _build_big(url: str, sizes: Sizes) -> tuple[str, float]:
    """The R6 database, and the seconds its build took."""
    began = time.monotonic()
    asyncio.run(dataset.build(url, sizes.big_members, sizes.entries))
    return url, time.monotonic() - began


def _r6(big_db: tuple[str, float], sizes: Sizes, name: str, small: Server, read: Load) -> Row:
    """R1 on the big database against R1 on the small one, measured in alternating rounds
    while both gateways run, so that what else loads the machine weighs on both sides
    alike; the figure is the ratio of the median maximum rates."""
    url, built = big_db
    gateway = harness.gateway(url).wait()
    try:
        token = harness.partner_token(gateway, url)
        _probe(gateway, "/graphql", READ_BODY, token)
        _probe(small, "/graphql", READ_BODY, read.token)  # when R1 did not run before
        load = Load("/graphql", [READ_BODY], sizes.big_members, token)
        small_rates, big_rates = [], []
        for _ in range(R6_ROUNDS):
            small_rates.append(
                harness.wrk(small, read, sizes.seconds, harness.CONNECTIONS, None).rate
            )
            big_rates.append(
                harness.wrk(gateway, load, sizes.seconds, harness.CONNECTIONS, None).rate
            )
        big = harness.measure(gateway, load, sizes.seconds)
    finally:
        gateway.stop()
    small_rate, big_rate = statistics.median(small_rates), statistics.median(big_rates)
    entries = sizes.big_members * sizes.entries
    rounds = ", ".join(f"{a:,.0f}/{b:,.0f}" for a, b in zip(small_rates, big_rates, strict=True))
    return Row(
        "R6",
        f"R1 at {sizes.big_members:,} members, {entries:,} entries",
        name,
        f"{big_rate:,.0f} req/s",
        f"R1 at {sizes.members:,}: {small_rate:,.0f} req/s",
        # R6's figure is the slowdown: small / big (≤ 1.2× is the target).
        small_rate / big_rate if big_rate else None,
        _latency(big),
        f"ratio is R1 at {sizes.members:,} / R1 here, medians of {R6_ROUNDS} alternating "
        f"rounds (small/big req/s: {rounds}); database built in {built:.0f} s",
    )


def _memory(gateway: Server, token: str, sizes: Sizes, name: str) -> Row:
    """Resident memory under four reads to one write, sampled at two moments."""
    import subprocess

    first, second = sizes.memory_samples
    load = Load("/graphql", [READ_BODY] * 4 + [WRITE_BODY], sizes.members, token)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(load.script(f"mem{os.getpid()}-{time.time_ns()}-", 10))
    command = ["wrk", "-t1", "-c8", f"-d{second + 2}s", "-s", lua.name, gateway.url + "/graphql"]
    if harness.pinned():
        command = ["taskset", "-c", str(harness.LOAD_CPU), *command]
    start = gateway.rss_mb()
    began = time.monotonic()
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as load_run:
        time.sleep(first)
        at_first = gateway.rss_mb()
        time.sleep(max(0.0, second - (time.monotonic() - began)))
        at_second = gateway.rss_mb()
        out, _ = load_run.communicate(timeout=60)
    os.unlink(lua.name)
    requests = out.decode().split(" requests in")[0].split()[-1] if b"requests in" in out else "?"
    growth = at_second / at_first
    return Row(
        "memory",
        f"RSS at {first} s and {second} s of mixed load (4 reads : 1 write)",
        name,
        f"{at_first:.1f} MB → {at_second:.1f} MB",
        f"at start {start:.1f} MB",
        growth,
        "",
        f"ratio is RSS at {second} s / at {first} s (≤ 1.10 is the target); {requests} requests",
    )


def _r7(url: str, sizes: Sizes, name: str) -> Row:
    members = max(1, sizes.redeem_clients)
    # 500 points each (10 entries of 50): exactly one "five-off" (500 points) per member.
    asyncio.run(dataset.build(url, members, 10))
    gateway = harness.gateway(url).wait()
    try:
        token = harness.partner_token(gateway, url)
        outcome = asyncio.run(_redeem(gateway.url, token, sizes))
    finally:
        gateway.stop()
    overspent, stored = asyncio.run(_audit(url))
    elapsed, latencies, outcomes = outcome
    issued = outcomes.pop("redeemed", 0)
    others = ", ".join(f"{n} {code}" for code, n in outcomes.most_common())
    p99 = statistics.quantiles(latencies, n=100)[98] if len(latencies) > 1 else latencies[0]
    return Row(
        "R7",
        f"{sizes.redeem_attempts:,} redemptions, {sizes.redeem_clients:,} concurrent clients",
        name,
        f"{len(latencies) / elapsed:,.0f} req/s",
        f"overspent members: {overspent}",
        None,
        f"p50 {statistics.median(latencies):.0f} / p99 {p99:.0f} ms at saturation",
        f"{issued} answered redeemed, {stored} redemptions in the database, of {members} "
        f"possible (one each); the other attempts: {others or 'none'}",
    )


async def _redeem(base: str, token: str, sizes: Sizes) -> tuple[float, list[float], Counter[str]]:
    """(seconds, latencies in ms, outcomes): `redeemed`, a user error's code, an error's
    code, or `transport` (no answer)."""
    members = sizes.redeem_clients
    per_client = max(1, sizes.redeem_attempts // sizes.redeem_clients)
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=300)

    async def client(http: aiohttp.ClientSession, c: int) -> None:
        for attempt in range(per_client):
            # Each attempt goes to a member other clients are redeeming for too.
            member = (c * 7 + attempt) % members + 1
            body = {"query": REDEEM, "variables": {"k": f"r{c}-{attempt}", "c": f"c-{member}"}}
            sent = time.perf_counter()
            try:
                async with http.post(base + "/graphql", json=body, headers=headers) as answer:
                    result = await answer.json(content_type=None)
            except (TimeoutError, aiohttp.ClientError, ValueError):
                outcomes["transport"] += 1
                continue
            latencies.append((time.perf_counter() - sent) * 1000)
            payload = (result.get("data") or {}).get("redeemReward") or {}
            if payload.get("redemption"):
                outcomes["redeemed"] += 1
            elif payload.get("userErrors"):
                outcomes[str(payload["userErrors"][0].get("code"))] += 1
            else:
                errors = result.get("errors") or [{}]
                outcomes[str(errors[0].get("extensions", {}).get("code", "error"))] += 1

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        began = time.perf_counter()
        await asyncio.gather(*(client(http, c) for c in range(sizes.redeem_clients)))
        elapsed = time.perf_counter() - began
    return elapsed, latencies, outcomes


async def _audit(url: str) -> tuple[int, int]:
    """(members overspent, redemptions stored). Overspent: a balance below zero, one that
    disagrees with the member's entries, or more than 500 points' worth of rewards. The
    stored redemptions count those whose answer the client never saw too (a timeout)."""
    parts = urlsplit(url)
    connection = await asyncpg.connect(f"postgresql://{parts.netloc}{parts.path}")
    try:
        overspent = await connection.fetchval(
            "SELECT count(*) FROM accounts a WHERE a.available < 0 OR a.held < 0 "
            "OR a.available + a.pending + a.held <> "
            "(SELECT sum(points) FROM entries e WHERE e.member_id = a.member_id) "
            "OR (SELECT coalesce(sum(points), 0) FROM redemptions r "
            "WHERE r.member_id = a.member_id AND r.status <> 'CANCELLED') > 500"
        )
        stored = await connection.fetchval(
            "SELECT count(*) FROM redemptions WHERE status <> 'CANCELLED'"
        )
        return int(overspent), int(stored)
    finally:
        await connection.close()
