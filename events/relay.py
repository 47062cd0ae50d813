"""The outbox relay: rows not yet published go to the bus, then are marked published.

A relay claims a batch (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so two replicas never
take the same rows; SQLite has one writer at a time), publishes it, and marks it in the
same transaction. A process killed between a commit and its publish loses nothing: the
rows are still unpublished, and the next run (of any replica) sends them. Killed after
the publish and before the mark, a batch goes out twice; the hubs drop the repeat.

It runs as soon as a transaction that wrote outbox rows commits in this process, and
every `interval` seconds for what other processes left behind. The rows a commit of this
process wrote are published at once from what the session holds (no claim to wait for:
subscribers get them a read sooner), then claimed and marked like any others without
being published again, even by a claim that waited behind that commit or read its rows
before the commit told the relay. Should another replica claim them first, it publishes
them too and the hubs drop the repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from events.bus import BrokerUnavailable, Bus, Event
from ledger import outbox_repository
from ledger.db import Database
from ledger.models import OutboxEvent

log = logging.getLogger("loyalty.events")

BATCH = 500
INTERVAL = 1.0  # seconds between runs when nothing woke the relay
RETRY_DELAY = 0.5  # seconds before trying again after the broker or database failed
_WROTE_OUTBOX = "loyalty_wrote_outbox"
EARLY_IDS = 10_000  # ids remembered as published at commit (until marked) or by a claim


def event_of(row: OutboxEvent) -> Event:
    return Event(row.id, row.program_id, row.type, row.member_id, dict(row.payload))


_READ = frozenset({"id", "program_id", "type", "member_id", "payload"})  # what `event_of` reads


def _loaded(row: OutboxEvent) -> bool:
    state = inspect(row)
    return state.persistent and not (state.unloaded & _READ)


_MISSING = object()


def _remember(ids: OrderedDict[int, None], new: Iterable[int]) -> None:
    """Add `new` to `ids`, keeping the newest `EARLY_IDS` of them."""
    for id_ in new:
        ids[id_] = None
    while len(ids) > EARLY_IDS:
        ids.popitem(last=False)


class OutboxRelay:
    def __init__(
        self,
        database: Database,
        bus: Bus,
        clock: Callable[[], datetime],
        *,
        interval: float = INTERVAL,
        batch: int = BATCH,
    ) -> None:
        self.database = database
        self.bus = bus
        self.clock = clock
        self.interval = interval
        self.batch = batch
        self.wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._committed: list[Event] = []  # committed here, not yet published
        self._early: OrderedDict[int, None] = OrderedDict()  # published, not yet marked
        self._claimed: OrderedDict[int, None] = OrderedDict()  # published by a claim
        # Told of every batch this process published (the CRM write-back): each must
        # return at once and never raise; a batch published twice is told twice.
        self.listeners: list[Callable[[Sequence[Event]], None]] = []

    async def publish_pending(self) -> int:
        """Publish every unpublished row; how many were published. `BrokerUnavailable`
        leaves the current batch unpublished."""
        total = 0
        while True:
            published = await self._publish_batch()
            total += published
            if published < self.batch:
                return total

    async def _publish_batch(self) -> int:
        async with self.database.transaction() as session:
            rows = await outbox_repository.claim_unpublished(
                session, self.batch, skip_locked=not self.database.is_sqlite
            )
            if not rows:
                return 0
            # A commit of this process that the claim waited behind (SQLite's one writer)
            # is published from what its session held, as at any commit, before the rest.
            await self._publish_committed()
            late = [event_of(row) for row in rows if row.id not in self._early]
            await self._publish(late)
            await outbox_repository.mark_published(session, [row.id for row in rows], self.clock())
        for row in rows:
            self._early.pop(row.id, None)
        # The claim can see a commit before its session has told the relay: when it does,
        # the commit's copy is not published again.
        _remember(self._claimed, (published.id for published in late))
        return len(rows)

    async def _publish_committed(self) -> None:
        """What commits of this process wrote, published before any claim."""
        events, self._committed = self._committed, []
        events = [e for e in events if self._claimed.pop(e.id, _MISSING) is _MISSING]
        if not events:
            return
        # Noted before the await, so a claim running meanwhile does not publish them again;
        # taken back if the bus refuses them, so the claim does.
        for published in events:
            self._early[published.id] = None
        try:
            await self._publish(events)
        except BaseException:
            for published in events:
                self._early.pop(published.id, None)
            raise
        while len(self._early) > EARLY_IDS:
            self._early.popitem(last=False)

    async def _publish(self, events: list[Event]) -> None:
        await self.bus.publish(events)
        if events:
            for listener in self.listeners:
                listener(events)

    # -- running inside the server ---------------------------------------------------

    def start(self) -> None:
        event.listen(Session, "after_flush", self._after_flush)
        event.listen(Session, "after_commit", self._after_commit)
        self._task = asyncio.create_task(self._run_forever())

    async def stop(self) -> None:
        if self._task is not None:
            event.remove(Session, "after_flush", self._after_flush)
            event.remove(Session, "after_commit", self._after_commit)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _ours(self, session: Session) -> bool:
        bind = session.bind
        return bind is not None and bind.engine is self.database.engine.sync_engine

    def _after_flush(self, session: Session, context: Any) -> None:
        rows = [obj for obj in session.new if isinstance(obj, OutboxEvent)]
        if rows and self._ours(session):
            session.info.setdefault(_WROTE_OUTBOX, []).extend(rows)

    def _after_commit(self, session: Session) -> None:
        if session.get_nested_transaction() is not None:
            # SQLAlchemy fires after_commit for a released savepoint too: the rows are
            # committed (and visible to other reads) only when the outermost one is.
            return
        rows: list[OutboxEvent] = session.info.pop(_WROTE_OUTBOX, [])
        # A row a rolled-back savepoint wrote is no longer persistent: never published.
        # One not fully loaded is left to the claim (reading it here would be I/O).
        self._committed.extend(event_of(row) for row in rows if _loaded(row))
        if rows:
            self.wake.set()

    async def _run_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self.wake.wait()
            self.wake.clear()
            if not self.bus.ready:
                self._committed.clear()  # still in the outbox: claimed once the bus is back
                continue  # after an outage: wait until this process listens again
            try:
                await self._publish_committed()
                await self.publish_pending()
            except BrokerUnavailable as exc:
                log.warning("events wait in the outbox: %s", exc)
                await asyncio.sleep(RETRY_DELAY)
            except (SQLAlchemyError, OSError) as exc:
                log.warning("outbox not read: %s", exc)
                await asyncio.sleep(RETRY_DELAY)
