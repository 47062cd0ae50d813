"""`is_unavailable`: a database that is away or locked, told from a bug, on real drivers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import exc, text

from ledger.db import Database, is_unavailable
from tests.conftest import postgres_url, sqlite_url
from tests.support.postgres import PostgresServer
from tests.support.server import free_port


async def test_a_sqlite_write_behind_another_connections_lock_is_unavailable(
    sqlite_template: Path, tmp_path: Path
) -> None:
    url = sqlite_url(sqlite_template, tmp_path)
    database = Database(url, wait=0.2)
    blocker = sqlite3.connect(url.removeprefix("sqlite+aiosqlite:///"), isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(exc.OperationalError) as raised:
            async with database.transaction() as session:
                await session.execute(text("SELECT 1"))
        # What SQLite says, pinned: the classifier reads the result code, not this text.
        orig = raised.value.orig
        assert isinstance(orig, sqlite3.OperationalError)
        assert str(orig) == "database is locked"
        assert orig.sqlite_errorcode == sqlite3.SQLITE_BUSY
        assert is_unavailable(raised.value)
        async with database.reading() as session:  # WAL: reads go on beside the writer
            assert await session.scalar(text("SELECT 1")) == 1
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        await database.dispose()


async def test_sqlite_errors_that_are_bugs_are_not_unavailable(
    sqlite_template: Path, tmp_path: Path
) -> None:
    database = Database(sqlite_url(sqlite_template, tmp_path), wait=0.2)
    try:
        with pytest.raises(exc.OperationalError) as missing:
            async with database.transaction() as session:
                await session.execute(text("SELECT * FROM no_such_table"))
        assert not is_unavailable(missing.value)
        with pytest.raises(exc.IntegrityError) as duplicate:
            async with database.transaction() as session:
                await session.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
                await session.execute(text("INSERT INTO t VALUES (1), (1)"))
        assert not is_unavailable(duplicate.value)
    finally:
        await database.dispose()


def test_errors_that_say_nothing_about_the_database_are_not_unavailable() -> None:
    assert not is_unavailable(ValueError("bad"))
    assert not is_unavailable(KeyError("k"))
    assert not is_unavailable(FileNotFoundError(2, "No such file", "program.toml"))
    assert not is_unavailable(PermissionError(13, "Permission denied"))
    wrapped = RuntimeError("bug")
    wrapped.__context__ = ConnectionRefusedError(111, "refused")  # handled, not its cause
    assert not is_unavailable(wrapped)
    caused = RuntimeError("lookup failed")
    caused.__cause__ = ConnectionRefusedError(111, "refused")
    assert is_unavailable(caused)


async def test_a_postgresql_server_that_refuses_connections_is_unavailable() -> None:
    database = Database(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/x", wait=1)
    try:
        with pytest.raises(ConnectionRefusedError) as raised:
            async with database.reading() as session:
                await session.execute(text("SELECT 1"))
        assert is_unavailable(raised.value)
    finally:
        await database.dispose()


async def test_a_postgresql_pool_with_nothing_to_give_in_time_is_unavailable(
    postgres: PostgresServer,
) -> None:
    database = Database(postgres_url(postgres), wait=0.2, pool_size=1, max_overflow=0)
    try:
        async with database.reading() as held:
            await held.execute(text("SELECT 1"))
            with pytest.raises(exc.TimeoutError) as raised:
                async with database.reading() as session:
                    await session.execute(text("SELECT 1"))
        assert is_unavailable(raised.value)
    finally:
        await database.dispose()


async def test_a_postgresql_session_terminated_under_a_transaction_is_unavailable(
    postgres: PostgresServer,
) -> None:
    database = Database(postgres_url(postgres))
    try:
        with pytest.raises(exc.DBAPIError) as raised:
            async with database.transaction() as session:
                pid = await session.scalar(text("SELECT pg_backend_pid()"))
                postgres.psql(f"SELECT pg_terminate_backend({pid})")
                await session.execute(text("SELECT 1"))
        assert raised.value.connection_invalidated
        assert is_unavailable(raised.value)
        # and the next transaction gets a fresh connection
        async with database.reading() as session:
            assert await session.scalar(text("SELECT 1")) == 1
    finally:
        await database.dispose()


async def test_postgresql_errors_that_are_bugs_are_not_unavailable(
    postgres: PostgresServer,
) -> None:
    database = Database(postgres_url(postgres))
    try:
        with pytest.raises(exc.ProgrammingError) as missing:
            async with database.reading() as session:
                await session.execute(text("SELECT * FROM no_such_table"))
        assert not is_unavailable(missing.value)
        with pytest.raises(exc.DBAPIError) as division:
            async with database.reading() as session:
                await session.execute(text("SELECT 1 / 0"))
        assert not is_unavailable(division.value)
    finally:
        await database.dispose()
