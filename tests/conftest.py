"""Fixtures: a migrated ledger on SQLite and on a throwaway PostgreSQL 15 server."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser

from gateway.migrate import upgrade
from ledger.db import Database
from ledger.service import LoyaltyService
from tests.support.browser import BrowserUnavailable, launched
from tests.support.ledger import Clock, make_program
from tests.support.postgres import PostgresServer, PostgresUnavailable, running_postgres
from tests.support.redis import RedisServer, RedisUnavailable, running_redis

IN_CI = os.environ.get("CI") == "true"
_databases = itertools.count()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session, with a migrated template database."""
    try:
        with running_postgres() as server:
            server.create_database("ledger_template")
            upgrade(server.sqlalchemy_url("ledger_template"))
            yield server
    except PostgresUnavailable as exc:
        if IN_CI:
            raise
        pytest.skip(f"PostgreSQL is not available here: {exc}")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "ledger.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


def postgres_url(server: PostgresServer) -> str:
    """A fresh database copied from the migrated template."""
    name = f"ledger_{os.getpid()}_{next(_databases)}"
    server.create_database(name, template="ledger_template")
    return server.sqlalchemy_url(name)


def sqlite_url(template: Path, directory: Path) -> str:
    path = directory / f"ledger_{next(_databases)}.db"
    shutil.copy(template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty migrated ledger, once on each database."""
    if request.param == "sqlite":
        return sqlite_url(request.getfixturevalue("sqlite_template"), tmp_path)
    return postgres_url(request.getfixturevalue("postgres"))


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    yield db
    await db.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def service(database: Database, clock: Clock) -> LoyaltyService:
    """The ledger service over the test program, its rewards seeded."""
    program = make_program()
    svc = LoyaltyService({program.id: program}, clock=clock)
    async with database.transaction() as session:
        await svc.seed_rewards(session, program.id)
    return svc


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh Redis for one test (a test may stop and restart it)."""
    try:
        with running_redis() as server:
            yield server
    except RedisUnavailable as exc:
        if IN_CI:
            raise
        pytest.skip(f"Redis is not available here: {exc}")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium for the module's tests (which run on the module's loop:
    `pytestmark = pytest.mark.asyncio(loop_scope="module")`)."""
    try:
        async with launched() as chromium:
            yield chromium
    except BrowserUnavailable as exc:
        if IN_CI:
            raise
        pytest.skip(str(exc))
