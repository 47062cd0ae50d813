"""The floors of R1, R1p and R2 (DESIGN §10): the least a server can do for the same
request on the same database with the same driver (aiosqlite or asyncpg), served by
uvicorn with the gateway's options, in its own process.

- `POST /read`: the member's balances and tier, one SELECT (R1's floor);
- `POST /graphql`: a bare Strawberry app with one resolver doing that SELECT, parser and
  validation caches on (R1p's floor);
- `POST /write`: one INSERT of an entry and one UPDATE of the account in one
  transaction (R2's floor).

Each takes the body the gateway gets (a GraphQL request) and reads `variables.c`, the
customer id. `BENCH_FLOOR_URL` is the SQLAlchemy URL of the database.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiosqlite
import asyncpg  # type: ignore[import-untyped]
import strawberry
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from strawberry.asgi import GraphQL
from strawberry.extensions import ParserCache, ValidationCache

READ = {
    "sqlite": "SELECT a.available, a.pending, a.tier FROM members m JOIN accounts a "
    "ON a.member_id = m.id WHERE m.program_id = 'acme' AND m.customer_id = ?",
    "postgres": "SELECT a.available, a.pending, a.tier FROM members m JOIN accounts a "
    "ON a.member_id = m.id WHERE m.program_id = 'acme' AND m.customer_id = $1",
}
INSERT = {
    "sqlite": "INSERT INTO entries (program_id, member_id, kind, points, status, order_id, "
    "occurred_at, created_at, source) SELECT 'acme', id, 'EARN', 160, 'PENDING', ?, ?, ?, "
    "'purchase' FROM members WHERE program_id = 'acme' AND customer_id = ? RETURNING member_id",
    "postgres": "INSERT INTO entries (program_id, member_id, kind, points, status, order_id, "
    "occurred_at, created_at, source) SELECT 'acme', id, 'EARN', 160, 'PENDING', $1, $2, $3, "
    "'purchase' FROM members WHERE program_id = 'acme' AND customer_id = $4 RETURNING member_id",
}
UPDATE = {
    "sqlite": "UPDATE accounts SET pending = pending + 160 WHERE member_id = ?",
    "postgres": "UPDATE accounts SET pending = pending + 160 WHERE member_id = $1",
}


class Store:
    """One driver's connection(s) and the three statements."""

    def __init__(self, url: str) -> None:
        self.kind = "sqlite" if url.startswith("sqlite") else "postgres"
        self.url = url
        self.sqlite: aiosqlite.Connection | None = None
        self.pool: asyncpg.Pool | None = None
        self.lock = asyncio.Lock()  # one writer at a time on the one SQLite connection

    async def open(self) -> None:
        if self.kind == "sqlite":
            self.sqlite = await aiosqlite.connect(self.url.split("///", 1)[1], isolation_level=None)
            for pragma in ("journal_mode=WAL", "synchronous=FULL", "busy_timeout=5000"):
                await self.sqlite.execute(f"PRAGMA {pragma}")
        else:
            parts = urlsplit(self.url)
            self.pool = await asyncpg.create_pool(
                f"postgresql://{parts.netloc}{parts.path}", min_size=10, max_size=10
            )

    async def close(self) -> None:
        if self.sqlite is not None:
            await self.sqlite.close()
        if self.pool is not None:
            await self.pool.close()

    async def read(self, customer_id: str) -> tuple[int, int, str] | None:
        if self.sqlite is not None:
            async with self.sqlite.execute(READ["sqlite"], (customer_id,)) as cursor:
                row = await cursor.fetchone()
            return None if row is None else (int(row[0]), int(row[1]), str(row[2]))
        assert self.pool is not None
        record = await self.pool.fetchrow(READ["postgres"], customer_id)
        return None if record is None else (record[0], record[1], record[2])

    async def write(self, customer_id: str, order_id: str) -> None:
        now = datetime.now(UTC)
        if self.sqlite is not None:
            stamp = now.replace(tzinfo=None).isoformat(" ")
            async with self.lock:
                await self.sqlite.execute("BEGIN IMMEDIATE")
                try:
                    async with self.sqlite.execute(
                        INSERT["sqlite"], (order_id, stamp, stamp, customer_id)
                    ) as cursor:
                        row = await cursor.fetchone()
                    assert row is not None
                    await self.sqlite.execute(UPDATE["sqlite"], (row[0],))
                except BaseException:
                    await self.sqlite.execute("ROLLBACK")
                    raise
                await self.sqlite.execute("COMMIT")
            return
        assert self.pool is not None
        async with self.pool.acquire() as connection, connection.transaction():
            member_id = await connection.fetchval(
                INSERT["postgres"], order_id, now, now, customer_id
            )
            await connection.execute(UPDATE["postgres"], member_id)


@strawberry.type
class TierDef:
    name: str


@strawberry.type
class TierStanding:
    current: TierDef


@strawberry.type
class Points:
    available: int
    pending: int


@strawberry.type
class MemberType:
    points: Points
    tier: TierStanding


@strawberry.input
class MemberRef:
    customer_id: str


@dataclass
class Context:
    store: Store


def _schema(store: Store) -> strawberry.Schema:
    @strawberry.type
    class Query:
        @strawberry.field
        async def member(self, ref: MemberRef) -> MemberType | None:
            row = await store.read(ref.customer_id)
            if row is None:
                return None
            points = Points(available=row[0], pending=row[1])
            return MemberType(points=points, tier=TierStanding(current=TierDef(name=row[2])))

    # Instances, as Strawberry's documentation configures them (its annotation wants classes).
    caches = [ParserCache(), ValidationCache()]
    return strawberry.Schema(Query, extensions=caches)  # type: ignore[arg-type]


def create_app(url: str) -> Starlette:
    store = Store(url)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.open()
        yield
        await store.close()

    async def read(request: Request) -> JSONResponse:
        body: dict[str, Any] = json.loads(await request.body())
        row = await store.read(body["variables"]["c"])
        if row is None:
            return JSONResponse({"data": {"member": None}})
        points = {"available": row[0], "pending": row[1]}
        member = {"points": points, "tier": {"current": {"name": row[2]}}}
        return JSONResponse({"data": {"member": member}})

    async def write(request: Request) -> JSONResponse:
        body: dict[str, Any] = json.loads(await request.body())
        await store.write(body["variables"]["c"], body["variables"]["o"])
        return JSONResponse({"data": {"ok": True}})

    app = Starlette(lifespan=lifespan)
    app.add_route("/read", read, methods=["POST"])
    app.add_route("/write", write, methods=["POST"])
    app.add_route("/graphql", GraphQL(_schema(store), graphql_ide=None))  # type: ignore[arg-type]
    return app


def from_environment() -> Starlette:
    return create_app(os.environ["BENCH_FLOOR_URL"])


if __name__ == "__main__":
    host, port = sys.argv[2], int(sys.argv[4])  # --host HOST --port PORT
    uvicorn.run(
        "bench.floors:from_environment",
        factory=True,
        host=host,
        port=port,
        workers=1,
        proxy_headers=True,
    )
