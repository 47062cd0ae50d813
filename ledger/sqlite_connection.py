"""aiosqlite connections that run each statement in one hand-off to their thread.

aiosqlite runs every call of a connection in its own worker thread; SQLAlchemy's adapter
makes four such calls per statement (open a cursor, execute, fetch the rows, close the
cursor), each a trip through the thread's queue and back to the event loop with a
thread switch both ways: 76 trips for one recordPurchase request. The cursor here does
the four in one trip (26 for that request): the statement runs, its rows are fetched
and its cursor closed in the worker thread, and the rows are handed back buffered (as
SQLAlchemy's adapter buffers them anyway). Neither aiosqlite nor
SQLAlchemy offers this, hence the hand-written cursor; it keeps aiosqlite's thread,
queue and errors (the sqlite3 exceptions, unchanged).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import aiosqlite

Description = tuple[tuple[str, None, None, None, None, None, None], ...] | None


class Connection(aiosqlite.Connection):
    """An aiosqlite connection whose cursors run a statement in one hand-off, and whose
    commit and rollback make none when no transaction is open (sqlite3's own do nothing
    then): a read of one statement outside a transaction is one hand-off in all."""

    # Whether a transaction may be open, as SQLite said after the last statement (and
    # assumed so until a statement has told, or after a statement failed).
    may_be_in_transaction = True

    def cursor(self) -> Cursor:  # type: ignore[override]
        return Cursor(self)

    async def commit(self) -> None:
        if self.may_be_in_transaction:
            await super().commit()
            self.may_be_in_transaction = False

    async def rollback(self) -> None:
        if self.may_be_in_transaction:
            await super().rollback()
            self.may_be_in_transaction = False

    async def run(self, call: Callable[[sqlite3.Connection], Any]) -> Any:
        """`call(connection)` in the connection's thread, in one hand-off."""
        return await self._execute(lambda: call(self._conn))  # type: ignore[no-untyped-call]


class Cursor:
    """The part of aiosqlite's cursor SQLAlchemy's adapter uses, with the rows of the
    statement fetched in the same hand-off as its execution."""

    arraysize = 1

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._rows: list[Any] = []
        self.description: Description = None
        self.rowcount = -1
        self.lastrowid: int | None = None

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> Cursor:
        def run(connection: sqlite3.Connection) -> tuple[Any, ...]:
            cursor = connection.cursor()
            try:
                cursor.execute(sql, () if parameters is None else parameters)
                rows = cursor.fetchall() if cursor.description else []
                described = cursor.description, cursor.rowcount, cursor.lastrowid, rows
                return *described, connection.in_transaction
            finally:
                cursor.close()

        connection = self._connection
        connection.may_be_in_transaction = True  # until the statement tells
        (
            self.description,
            self.rowcount,
            self.lastrowid,
            self._rows,
            connection.may_be_in_transaction,
        ) = await connection.run(run)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> Cursor:
        def run(connection: sqlite3.Connection) -> tuple[Any, ...]:
            cursor = connection.cursor()
            try:
                cursor.executemany(sql, parameters)
                described = cursor.description, cursor.rowcount, cursor.lastrowid
                return *described, connection.in_transaction
            finally:
                cursor.close()

        connection = self._connection
        connection.may_be_in_transaction = True
        (
            self.description,
            self.rowcount,
            self.lastrowid,
            connection.may_be_in_transaction,
        ) = await connection.run(run)
        self._rows = []
        return self

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        count = self.arraysize if size is None else size
        rows, self._rows = self._rows[:count], self._rows[count:]
        return rows

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def close(self) -> None:
        self._rows = []


def connect(database: str, **kwargs: Any) -> Connection:
    """`aiosqlite.connect`, with the connection above; await it to open it."""

    def connector() -> sqlite3.Connection:
        opened: sqlite3.Connection = sqlite3.connect(database, **kwargs)
        return opened

    connection: Connection = Connection(connector, iter_chunk_size=64)
    connection._thread.daemon = True  # as SQLAlchemy sets it on the connections it opens
    return connection
