"""Engines and units of work.

One transaction per request, job or webhook: `Database.transaction()` opens it and
commits once at the end. On SQLite every write transaction starts with BEGIN IMMEDIATE,
so writers queue instead of failing on a lock upgrade; WAL keeps readers unblocked. The
writers of one process queue first on an asyncio lock, in arrival order, so only one of
them at a time waits on SQLite's lock (whose busy handler polls with growing sleeps, and
would otherwise leave the database idle between one commit and the next writer's wake-up).

`is_unavailable(exc)` tells a database that is away, restarting or locked (worth a
retry later) from everything else (a bug). `Database(url, wait=s)` bounds how long a
request waits for a connection or a lock before it gets such an error.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import event, exc, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.util import await_

from ledger import sqlite_connection

SQLITE_BUSY_TIMEOUT_MS = 30_000

# PostgreSQL going away, shutting down, starting up, or out of connection slots.
_POSTGRES_AWAY = (
    asyncpg.PostgresConnectionError,  # class 08, ConnectionDoesNotExistError among them
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
)
# OSErrors about files, not about reaching a server: a bug or a misconfiguration.
_FILE_ERRORS = (
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)
# SQLite's primary result codes for a lock held by another connection.
_SQLITE_LOCKED = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
# SQLAlchemy's documented code for a transaction whose connection was invalidated.
_INVALIDATED_TRANSACTION = "8s2b"


def is_unavailable(error: BaseException) -> bool:
    """True when `error` means the database cannot be reached or is locked now, so the
    same request may succeed later; False for anything else (a bug, a constraint).

    Read by exception class (and SQLite's result code), never by message: a network
    error reaching the server (any OSError but the file ones); a connection SQLAlchemy
    invalidated as disconnected; a pool with no connection to give in time; PostgreSQL
    shutting down, starting up, out of connection slots; SQLite busy or locked past its
    busy timeout."""
    for cause in _causes(error):
        if isinstance(cause, OSError) and not isinstance(cause, _FILE_ERRORS):
            return True  # refused, reset, unreachable, no such host, timed out
        if isinstance(cause, _POSTGRES_AWAY):
            return True
        if isinstance(cause, exc.DBAPIError) and cause.connection_invalidated:
            return True
        if isinstance(cause, exc.TimeoutError):  # QueuePool: no connection within pool_timeout
            return True
        if isinstance(cause, exc.PendingRollbackError) and cause.code == _INVALIDATED_TRANSACTION:
            return True
        if isinstance(cause, sqlite3.OperationalError):
            code = getattr(cause, "sqlite_errorcode", None)
            if isinstance(code, int) and code & 0xFF in _SQLITE_LOCKED:
                return True
    return False


def _causes(error: BaseException) -> Iterator[BaseException]:
    """`error`, the driver error it wraps, and what each was raised from (not the
    errors that happened to be handled when it was raised: those are not its cause)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__


SQLITE_KEPT_CONNECTIONS = 20  # and up to 10 more opened and closed as needed


def create_engine(
    url: str, wait: float | None = None, connections: int | None = None, **kwargs: Any
) -> AsyncEngine:
    """An async engine with the ledger's connection settings for `url`. `wait` (seconds)
    bounds the waits for a lock (SQLite's busy timeout), a new connection and a pooled
    one (PostgreSQL); unbounded by the engine's defaults when None. `connections` is the
    most PostgreSQL connections the engine opens, all kept in the pool once opened
    (10 kept and 20 more opened and closed as needed when None); SQLite keeps
    `SQLITE_KEPT_CONNECTIONS`."""
    if url.startswith("sqlite"):
        # Kept once opened: a SQLite connection is a file and a thread, and one opened
        # and closed per request (SQLAlchemy keeps 5) costs its thread and its PRAGMAs
        # each time the requests in flight outnumber the kept ones.
        kwargs.setdefault("pool_size", SQLITE_KEPT_CONNECTIONS)
        engine = create_async_engine(url, **kwargs)
        busy_ms = SQLITE_BUSY_TIMEOUT_MS if wait is None else max(1, round(wait * 1000))
        _configure_sqlite(engine, min(busy_ms, SQLITE_BUSY_TIMEOUT_MS))
        return engine
    kwargs.setdefault("pool_size", 10 if connections is None else connections)
    kwargs.setdefault("max_overflow", 20 if connections is None else 0)
    kwargs.setdefault("pool_pre_ping", True)
    if wait is not None:
        kwargs.setdefault("pool_timeout", wait)
        kwargs.setdefault("connect_args", {"timeout": wait})
    engine = create_async_engine(url, **kwargs)
    if engine.dialect.driver == "asyncpg":
        engine.dialect.do_ping = _ping_asyncpg  # type: ignore[method-assign]
    return engine


def _ping_asyncpg(dbapi_connection: Any) -> bool:
    """The pre-ping of a pooled asyncpg connection in one round trip: `SELECT 1`
    by the simple query protocol. SQLAlchemy's own wraps it in BEGIN ... ROLLBACK (for
    PgBouncer's transaction mode, which the gateway's prepared statements rule out
    anyway): three round trips at every checkout, that is every request. A failure is
    the adapter's error, so the pool tells a disconnect as it does for its own ping."""
    try:
        await_(dbapi_connection._connection.execute("SELECT 1"))
    except Exception as error:  # noqa: BLE001 - translated (and raised) by the adapter
        dbapi_connection._handle_exception(error)
    return True


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "do_connect")
    def _open(dialect: Any, record: ConnectionPoolEntry, cargs: Any, cparams: Any) -> None:
        # aiosqlite's connection, with cursors of one hand-off per statement.
        cparams["async_creator_fn"] = sqlite_connection.connect

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Connection) -> None:
        options = connection.get_execution_options()
        if options.get("ledger_one_statement", False):
            return  # a read of one statement: its own snapshot, in autocommit
        readonly = options.get("ledger_readonly", False)
        connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


class Database:
    """The ledger's engine and session factory."""

    def __init__(self, url: str, wait: float | None = None, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = create_engine(url, wait, **engine_kwargs)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time: this process's writers take turns here before
        # BEGIN IMMEDIATE, waiting no longer than they would for SQLite's own lock.
        self._writer: asyncio.Lock | None = asyncio.Lock() if self.is_sqlite else None
        self._writer_wait = (
            SQLITE_BUSY_TIMEOUT_MS / 1000
            if wait is None
            else min(wait, SQLITE_BUSY_TIMEOUT_MS / 1000)
        )

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in one write transaction, committed when the block succeeds.

        On SQLite the block runs holding the process's writer lock; a writer that waits
        for it longer than the busy timeout gets TimeoutError (`is_unavailable`)."""
        if self._writer is None:
            async with self.sessions() as session, session.begin():
                yield session
            return
        async with asyncio.timeout(self._writer_wait):
            await self._writer.acquire()
        try:
            async with self.sessions() as session, session.begin():
                yield session
        finally:
            self._writer.release()

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A session for reads only, on one snapshot (no write lock on SQLite; REPEATABLE
        READ on PostgreSQL). Closing it ends the transaction; the objects read stay
        usable, detached."""
        options: dict[str, Any] = {"ledger_readonly": True}
        if not self.is_sqlite:
            options["isolation_level"] = "REPEATABLE READ"
        async with self.sessions() as session:
            await session.connection(execution_options=options)
            yield session

    @asynccontextmanager
    async def reading_one(self) -> AsyncIterator[AsyncSession]:
        """A session for a read of one statement, outside any transaction: a statement
        is a snapshot of its own on either database, so one statement needs no BEGIN
        and no ROLLBACK around it (two round trips fewer). Only for one statement: two
        would each see their own moment."""
        options: dict[str, Any] = {"ledger_readonly": True, "ledger_one_statement": True}
        if not self.is_sqlite:
            options = {"isolation_level": "AUTOCOMMIT"}
        async with self.sessions() as session:
            await session.connection(execution_options=options)
            yield session

    async def ping(self) -> None:
        """One round trip to the database (readiness); raises what the driver raises."""
        async with self.reading() as session:
            await session.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
