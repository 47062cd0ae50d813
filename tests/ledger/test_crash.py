"""Invariant 6: a write that was acknowledged survives a `kill -9` of the writer.

A real process writes a stream of commands and acknowledges each after its commit; it
is killed with SIGKILL in the middle of the stream. Every acknowledged write must be in
the database with the outcome that was acknowledged, the invariants must hold, and
running the whole stream again must give every key exactly one effect.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy import select as sql_select

from ledger.db import Database
from ledger.models import Entry, IdempotencyRecord
from tests.support.ledger import check_invariants

ROOT = Path(__file__).resolve().parents[2]
STREAM = 120
DEADLINE = 120.0


def writer(url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.crash_writer", url, str(STREAM)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def read_acks(process: subprocess.Popen[str], stop_after: int | None) -> dict[str, Any]:
    """Acknowledged outcomes by key; SIGKILL after `stop_after` of them."""
    assert process.stdout is not None
    acks: dict[str, Any] = {}
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 1.0)
        if not ready:
            continue
        line = process.stdout.readline()
        if not line or line.strip() == "DONE":
            break
        _, key, outcome = line.rstrip("\n").split(" ", 2)
        acks[key] = json.loads(outcome)
        if stop_after is not None and len(acks) >= stop_after:
            process.send_signal(signal.SIGKILL)
            break
    else:
        process.kill()
        pytest.fail("the writer did not finish in time")
    process.wait(timeout=30)
    process.stdout.close()
    return acks


async def stored(url: str) -> tuple[dict[str, Any], set[int]]:
    database = Database(url)
    try:
        async with database.reading() as session:
            await check_invariants(session)
            records = (await session.scalars(sql_select(IdempotencyRecord))).all()
            entries = set((await session.scalars(sql_select(Entry.id))).all())
            assert await session.scalar(sql_select(func.count()).select_from(Entry)) == len(entries)
            return {record.key: record.response for record in records}, entries
    finally:
        await database.dispose()


def test_acknowledged_writes_survive_kill_9(database_url: str) -> None:
    stop_after = random.randint(20, 60)
    crashed = writer(database_url)
    acked = read_acks(crashed, stop_after)
    assert crashed.returncode == -signal.SIGKILL
    assert len(acked) == stop_after

    records, entries = asyncio.run(stored(database_url))
    for key, outcome in acked.items():
        assert records.get(key) == outcome, key
        if outcome["entry_id"] is not None:
            assert outcome["entry_id"] in entries, key

    # The whole stream again: what was acknowledged is replayed, the rest runs once.
    second = read_acks(writer(database_url), None)
    for key, outcome in acked.items():
        assert second[key] == outcome, key
    records, entries = asyncio.run(stored(database_url))
    assert {key: records[key] for key in second} == second

    # And once more: nothing runs twice.
    third = read_acks(writer(database_url), None)
    assert third == second
    assert asyncio.run(stored(database_url))[1] == entries
