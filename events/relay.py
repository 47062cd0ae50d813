"""The outbox relay: rows not yet published go to the bus, then are marked published.

A relay claims a batch (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so two replicas never
take the same rows; SQLite has one writer at a time), publishes it, and marks it in the
same transaction. A process killed between a commit and its publish loses nothing: the
rows are still unpublished, and the next run (of any replica) sends them. Killed after
the publish and before the mark, a batch goes out twice; the hubs drop the repeat.

It runs as soon as a transaction that wrote outbox rows commits in this process, and
every `interval` seconds for what other processes left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from events.bus import BrokerUnavailable, Bus, Event
from ledger import write_repository
from ledger.db import Database
from ledger.models import OutboxEvent

log = logging.getLogger("loyalty.events")

BATCH = 500
INTERVAL = 1.0  # seconds between runs when nothing woke the relay
RETRY_DELAY = 0.5  # seconds before trying again after the broker or database failed
_WROTE_OUTBOX = "loyalty_wrote_outbox"


def event_of(row: OutboxEvent) -> Event:
    return Event(row.id, row.program_id, row.type, row.member_id, dict(row.payload))


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
            rows = await write_repository.claim_unpublished(
                session, self.batch, skip_locked=not self.database.is_sqlite
            )
            if not rows:
                return 0
            await self.bus.publish([event_of(row) for row in rows])
            await write_repository.mark_published(session, [row.id for row in rows], self.clock())
        return len(rows)

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
        if any(isinstance(obj, OutboxEvent) for obj in session.new) and self._ours(session):
            session.info[_WROTE_OUTBOX] = True

    def _after_commit(self, session: Session) -> None:
        if session.info.pop(_WROTE_OUTBOX, False):
            self.wake.set()

    async def _run_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self.wake.wait()
            self.wake.clear()
            if not self.bus.ready:
                continue  # after an outage: wait until this process listens again
            try:
                await self.publish_pending()
            except BrokerUnavailable as exc:
                log.warning("events wait in the outbox: %s", exc)
                await asyncio.sleep(RETRY_DELAY)
            except (SQLAlchemyError, OSError) as exc:
                log.warning("outbox not read: %s", exc)
                await asyncio.sleep(RETRY_DELAY)
