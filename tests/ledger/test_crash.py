"""Invariant 6: a write that was acknowledged survives a `kill -9` of the writer.

A real process (tests/support/crash_writer.py) writes a stream of commands, each in its
own transaction, and acknowledges each after its commit; it is killed with SIGKILL in the
middle of the stream. Every acknowledged write must then be in the database with the
outcome that was acknowledged and its effects, the invariants must hold, and running the
whole stream again must give every key exactly one effect.
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
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
from sqlalchemy import func, text
from sqlalchemy import select as sql_select

from ledger.db import Database
from ledger.models import Entry, Hold, IdempotencyRecord, Member, Order, Redemption
from tests.support.crash_writer import MEMBERS
from tests.support.ledger import check_invariants

ROOT = Path(__file__).resolve().parents[2]
STREAM = 150
DEADLINE = 60.0  # seconds for everything a test does on one database


class Deadline:
    """One budget of time for the whole test: every wait gets what is left of it."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            pytest.fail(f"the crash test did not finish within {DEADLINE} s")
        return left


@dataclass(frozen=True)
class Ack:
    effect: int | None  # the entry id, else the member id
    outcome: dict[str, Any]  # as stored under the key
    replayed: bool


@dataclass
class Run:
    acks: dict[str, Ack]
    order: list[str]  # keys in the order they were acknowledged
    finished: bool
    in_flight: str | None = None  # the key begun when the writer was killed


def parse(line: bytes) -> tuple[str, Ack]:
    tag, key, effect, data = line.decode().split(" ", 3)
    assert tag == "ACK", line
    outcome = json.loads(data)
    replayed = outcome.pop("replayed")
    return key, Ack(None if effect == "-" else int(effect), outcome, replayed)


def read(process: subprocess.Popen[bytes], deadline: Deadline, kill_after: int | None) -> Run:
    """Collect acknowledgements until the writer exits. After `kill_after` of them, SIGKILL
    it as soon as it begins its next write, so the kill lands while a write is in flight.

    Reads the pipe's bytes directly (no buffered readline behind select's back), and
    keeps reading after the kill: whatever the writer printed before it died counts.
    """
    assert process.stdout is not None
    fd = process.stdout.fileno()
    run = Run({}, [], finished=False)
    pending = b""
    while True:
        ready, _, _ = select.select([fd], [], [], min(1.0, deadline.left()))
        if not ready:
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return run  # end of file: the writer is gone
        *lines, pending = (pending + chunk).split(b"\n")
        begun = None
        for line in lines:
            if line == b"DONE":
                run.finished = True
            elif line.startswith(b"BEGIN "):
                begun = line.decode().split(" ", 1)[1]
            else:
                key, ack = parse(line)
                assert key not in run.acks, f"{key} acknowledged twice"
                run.acks[key] = ack
                run.order.append(key)
                begun = None
        killing = kill_after is not None and len(run.acks) >= kill_after
        if killing and begun is not None and run.in_flight is None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            run.in_flight = begun


def write(url: str, deadline: Deadline, kill_after: int | None = None) -> Run:
    """Run the writer over `url` to the end, or kill it after `kill_after` acks."""
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.crash_writer", url, "--count", str(STREAM)],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        try:
            run = read(process, deadline, kill_after)
            process.wait(timeout=deadline.left())
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            assert process.stdout is not None
            process.stdout.close()
        errors = output(stderr)
    if kill_after is None:
        assert process.returncode == 0 and run.finished, errors
    else:
        assert process.returncode == -signal.SIGKILL, errors
        assert not run.finished, "the stream ended before the kill: make it longer"
    return run


def output(stream: IO[bytes]) -> str:
    stream.seek(0)
    return stream.read().decode(errors="replace")[-4000:]


@dataclass
class Stored:
    """What the database holds after a run, read with a fresh engine."""

    records: dict[str, dict[str, Any]]
    entries: dict[int, tuple[int, str]]  # id: (member id, source)
    members: set[int]
    holds: set[int]
    redemptions: set[int]
    orders: int
    journal_mode: str | None


async def load(url: str) -> Stored:
    database = Database(url)
    try:
        async with database.reading() as session:
            await check_invariants(session)
            records = (await session.scalars(sql_select(IdempotencyRecord))).all()
            entries = await session.execute(sql_select(Entry.id, Entry.member_id, Entry.source))
            journal_mode = None
            if database.is_sqlite:
                journal_mode = await session.scalar(text("PRAGMA journal_mode"))
            return Stored(
                records={record.key: record.response for record in records},
                entries={id_: (member_id, source) for id_, member_id, source in entries},
                members=set((await session.scalars(sql_select(Member.id))).all()),
                holds=set((await session.scalars(sql_select(Hold.id))).all()),
                redemptions=set((await session.scalars(sql_select(Redemption.id))).all()),
                orders=int(await session.scalar(sql_select(func.count(Order.id))) or 0),
                journal_mode=journal_mode,
            )
    finally:
        await database.dispose()


def stored(url: str, deadline: Deadline) -> Stored:
    return asyncio.run(asyncio.wait_for(load(url), deadline.left()))


def assert_effects(acks: dict[str, Ack], db: Stored) -> None:
    """Each acknowledged key has its record, holding its outcome, and its effects."""
    for key, ack in acks.items():
        outcome = ack.outcome
        assert db.records.get(key) == outcome, key
        if outcome["entry_id"] is not None:
            assert ack.effect == outcome["entry_id"], key
            assert db.entries[outcome["entry_id"]][0] == outcome["member_id"], key
        if outcome["member_id"] is not None:
            assert outcome["member_id"] in db.members, key
        if outcome["hold_id"] is not None:
            assert outcome["hold_id"] in db.holds, key
        if outcome["redemption_id"] is not None:
            assert outcome["redemption_id"] in db.redemptions, key


def assert_one_effect_per_key(acks: dict[str, Ack], db: Stored) -> None:
    """Everything in the database is the effect of exactly one key (the signup bonus
    being part of an enrolment's effect)."""
    assert db.records == {key: ack.outcome for key, ack in acks.items()}
    outcomes = [ack.outcome for ack in acks.values()]
    entry_ids = [o["entry_id"] for o in outcomes if o["entry_id"] is not None]
    assert len(entry_ids) == len(set(entry_ids)), "two keys claim one entry"
    signups = {id_ for id_, (_, source) in db.entries.items() if source == "signup"}
    assert set(db.entries) == set(entry_ids) | signups
    enrolled = {acks[f"enroll-{m}"].outcome["member_id"] for m in range(MEMBERS)}
    assert db.members == enrolled and len(enrolled) == len(signups) == MEMBERS
    purchases = [o for key, o in zip(acks, outcomes, strict=True) if key.startswith("buy-")]
    assert db.orders == sum(o["problem"] is None for o in purchases)
    assert db.holds == {o["hold_id"] for o in outcomes if o["hold_id"] is not None}
    assert db.redemptions == {o["redemption_id"] for o in outcomes if o["redemption_id"]}


@pytest.mark.slow
def test_acknowledged_writes_survive_kill_9(database_url: str) -> None:
    deadline = Deadline(DEADLINE)
    kill_after = random.randint(20, 60)

    crashed = write(database_url, deadline, kill_after)
    assert len(crashed.acks) >= kill_after
    if database_url.startswith("sqlite"):
        database_file = database_url.split("///", 1)[1]
        assert Path(f"{database_file}-wal").exists(), "no write-ahead log left to recover"
    after_crash = stored(database_url, deadline)
    if after_crash.journal_mode is not None:
        assert after_crash.journal_mode == "wal"
    assert_effects(crashed.acks, after_crash)
    # The write in flight at the kill is all there or not there at all (the invariants
    # above, and the rerun below); it is the only one that may be stored unacknowledged.
    assert crashed.in_flight is not None and crashed.in_flight not in crashed.acks
    unacknowledged = set(after_crash.records) - set(crashed.acks)
    assert unacknowledged <= {crashed.in_flight}, unacknowledged

    # The whole stream again, same keys: what was stored is replayed, the rest runs once.
    second = write(database_url, deadline)
    for key, ack in crashed.acks.items():
        assert second.acks[key].outcome == ack.outcome, key
    replayed = {key for key, ack in second.acks.items() if ack.replayed}
    assert replayed == set(after_crash.records)
    after_rerun = stored(database_url, deadline)
    assert_effects(second.acks, after_rerun)
    assert_one_effect_per_key(second.acks, after_rerun)

    # And once more: every key replays, nothing runs twice.
    third = write(database_url, deadline)
    assert all(ack.replayed for ack in third.acks.values())
    assert {key: ack.outcome for key, ack in third.acks.items()} == {
        key: ack.outcome for key, ack in second.acks.items()
    }
    assert stored(database_url, deadline) == after_rerun
