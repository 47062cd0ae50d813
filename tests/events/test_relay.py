"""The outbox relay on both databases: every committed event published once and marked;
a broker that cannot take them leaves them in the outbox; two relays at once (two
replicas) never publish a row twice."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

import pytest
from sqlalchemy import func, select

from events.bus import BrokerUnavailable, Event, Hub, MemoryBus
from events.relay import OutboxRelay
from ledger.commands import EnrollMember
from ledger.db import Database
from ledger.models import OutboxEvent
from ledger.service import LoyaltyService
from tests.support.ledger import Clock


class RecordingBus(MemoryBus):
    """The memory bus, keeping what it was given, optionally refusing it."""

    def __init__(self) -> None:
        super().__init__(Hub())
        self.published: list[Event] = []
        self.down = False

    async def publish(self, events: Sequence[Event]) -> None:
        if self.down:
            raise BrokerUnavailable("down for the test")
        await asyncio.sleep(0)  # let another relay run in between
        self.published.extend(events)
        await super().publish(events)


@contextlib.asynccontextmanager
async def waking_relay(database: Database, clock: Clock) -> AsyncIterator[RecordingBus]:
    """A relay that publishes only when a commit wakes it (no polling), for the block."""
    bus = RecordingBus()
    relay = OutboxRelay(database, bus, clock, interval=60)
    relay.start()
    try:
        yield bus
    finally:
        await relay.stop()


async def _enroll(database: Database, service: LoyaltyService, *customers: str) -> None:
    for customer in customers:
        async with database.transaction() as session:
            await service.execute(
                session, "test", "client", EnrollMember(f"e-{customer}", customer)
            )


async def _unpublished(database: Database) -> int:
    async with database.reading() as session:
        count = await session.scalar(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.published_at.is_(None))
        )
    return int(count or 0)


async def test_every_committed_event_is_published_once_and_marked(
    database: Database, service: LoyaltyService, clock: Clock
) -> None:
    await _enroll(database, service, "ada", "bob")
    bus = RecordingBus()
    relay = OutboxRelay(database, bus, clock, batch=3)
    assert await _unpublished(database) == 4  # enrolment and signup bonus, each
    assert await relay.publish_pending() == 4
    assert [(e.type, e.payload["memberId"]) for e in bus.published] == [
        ("member.enrolled", "1"),
        ("points.earned", "1"),
        ("member.enrolled", "2"),
        ("points.earned", "2"),
    ]
    assert bus.published[1].payload["available"] == 100
    assert await _unpublished(database) == 0
    async with database.reading() as session:
        marks = set((await session.scalars(select(OutboxEvent.published_at))).all())
    assert marks == {clock.now}
    assert await relay.publish_pending() == 0


async def test_a_broker_outage_leaves_the_events_in_the_outbox(
    database: Database, service: LoyaltyService, clock: Clock
) -> None:
    await _enroll(database, service, "ada")
    bus = RecordingBus()
    relay = OutboxRelay(database, bus, clock)
    bus.down = True
    with pytest.raises(BrokerUnavailable):
        await relay.publish_pending()
    assert await _unpublished(database) == 2
    bus.down = False
    assert await relay.publish_pending() == 2
    assert await _unpublished(database) == 0


async def test_two_relays_at_once_publish_each_row_once(
    database: Database, service: LoyaltyService, clock: Clock
) -> None:
    customers = [f"c{n}" for n in range(30)]
    await _enroll(database, service, *customers)
    bus = RecordingBus()
    relays = [OutboxRelay(database, bus, clock, batch=7) for _ in range(2)]
    counts = await asyncio.gather(*(relay.publish_pending() for relay in relays))
    assert sum(counts) == 60
    ids = [event.id for event in bus.published]
    assert len(ids) == len(set(ids)) == 60
    assert await _unpublished(database) == 0


async def test_the_relay_wakes_when_a_write_commits(
    database: Database, service: LoyaltyService, clock: Clock
) -> None:
    async with waking_relay(database, clock) as bus:
        await _enroll(database, service, "ada")
        async with asyncio.timeout(5):
            while len(bus.published) < 2:  # noqa: ASYNC110 (the bus's list, not an event)
                await asyncio.sleep(0.01)
        assert [e.type for e in bus.published] == ["member.enrolled", "points.earned"]


def _row(clock: Clock, type_: str) -> OutboxEvent:
    return OutboxEvent(
        program_id="test",
        type=type_,
        member_id=None,
        payload={"n": type_},
        occurred_at=clock.now,
        created_at=clock.now,
    )


async def test_a_commit_is_published_before_any_claim_and_then_only_marked(
    database: Database, clock: Clock
) -> None:
    async with waking_relay(database, clock) as bus:
        async with database.transaction() as session:
            with contextlib.suppress(LookupError):
                async with session.begin_nested():  # written, then rolled back
                    session.add(_row(clock, "rolled.back"))
                    await session.flush()
                    raise LookupError
            session.add(_row(clock, "kept"))
        async with asyncio.timeout(5):
            while not bus.published:  # noqa: ASYNC110 (the bus's list, not an event)
                await asyncio.sleep(0.01)
        assert [e.type for e in bus.published] == ["kept"]
        async with asyncio.timeout(5):
            while await _unpublished(database):  # noqa: ASYNC110 (rows the relay marks)
                await asyncio.sleep(0.01)
        assert [e.type for e in bus.published] == ["kept"]  # marked, not published again
    async with database.reading() as session:
        assert list(await session.scalars(select(OutboxEvent.type))) == ["kept"]


async def test_nothing_is_published_before_the_outermost_commit(
    database: Database, clock: Clock
) -> None:
    async with waking_relay(database, clock) as bus:
        with contextlib.suppress(LookupError):
            async with database.transaction() as session:
                async with session.begin_nested():  # released: committed only with the rest
                    session.add(_row(clock, "in.a.savepoint"))
                await session.flush()
                await asyncio.sleep(0.2)  # the relay had its chance to publish
                assert bus.published == []
                raise LookupError  # and the whole transaction rolls back
        async with database.transaction() as session:
            async with session.begin_nested():
                session.add(_row(clock, "committed"))
            await asyncio.sleep(0.2)
            assert bus.published == []  # not until the outermost commit
        async with asyncio.timeout(5):
            while not bus.published:  # noqa: ASYNC110 (the bus's list, not an event)
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        assert [e.type for e in bus.published] == ["committed"]


async def test_a_commit_a_claim_waited_behind_is_published_once(
    database: Database, clock: Clock
) -> None:
    bus = RecordingBus()
    relay = OutboxRelay(database, bus, clock, interval=0.05)  # claims every 50 ms
    told: list[Event] = []
    relay.listeners.append(told.extend)
    relay.start()
    try:
        async with database.transaction() as session:
            session.add(_row(clock, "behind.a.claim"))
            await session.flush()
            await asyncio.sleep(0.3)  # a claim is due meanwhile: on SQLite it waits for us
        async with asyncio.timeout(5):
            while await _unpublished(database):  # noqa: ASYNC110 (rows the relay marks)
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # several more runs of the relay
    finally:
        await relay.stop()
    assert [e.type for e in bus.published] == ["behind.a.claim"]
    assert [e.type for e in told] == ["behind.a.claim"]  # the write-back is told once
