"""The outgoing-webhook dispatcher against real receivers on loopback, on both databases:
signed per Standard Webhooks, the retry schedule (time moved by `run_due(now)`), 410,
timeouts, redirects, answer caps, and a dead endpoint beside a healthy one."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from events.webhooks import WebhookDispatcher
from ledger.commands import AdjustPoints, ForgetMember, MemberRef
from ledger.db import Database
from ledger.models import DeliveryOutcome, WebhookDelivery, WebhookEndpoint
from ledger.service import LoyaltyService
from tests.support.ledger import Clock, enroll, item, make_program, purchase, run
from tests.support.receiver import OLD_SECRET, SECRET, Receiver, receiving

SCHEDULE = [
    timedelta(0),
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
]


def service_for(clock: Clock, *hooks: dict[str, Any], **overrides: Any) -> LoyaltyService:
    program = make_program(webhooks=list(hooks), **overrides)
    return LoyaltyService({program.id: program}, clock=clock)


def dispatcher(
    database: Database, service: LoyaltyService, clock: Clock, **kw: Any
) -> WebhookDispatcher:
    kw.setdefault("allow_private", True)
    return WebhookDispatcher(database, service.programs, clock, **kw)


async def deliveries(database: Database) -> list[WebhookDelivery]:
    async with database.reading() as session:
        query = select(WebhookDelivery).order_by(WebhookDelivery.id)
        return list((await session.scalars(query)).all())


def no_bonus(clock: Clock, *hooks: dict[str, Any]) -> LoyaltyService:
    return service_for(clock, *hooks, bonuses={"signup": 0})


async def test_500_twice_then_200_is_one_event_three_verified_attempts_one_id(
    database: Database, clock: Clock
) -> None:
    async with receiving(Receiver(script=[500, 500], secrets=(SECRET, OLD_SECRET))) as hook:
        service = no_bonus(
            clock,
            {"url": hook.url, "secrets": [SECRET, OLD_SECRET], "events": ["points.adjusted"]},
        )
        member = await enroll(database, service, "c-1")
        await run(database, service, AdjustPoints("a-1", MemberRef(id=member), 40, "welcome"))
        sender = dispatcher(database, service, clock)
        t0 = clock.now
        for at in (t0, t0 + timedelta(seconds=5), t0 + timedelta(seconds=5, minutes=5)):
            early = await sender.run_due(at - timedelta(milliseconds=1))
            assert early.outcomes == {}  # nothing is due a moment before its time
            await sender.run_due(at)
        await sender.run_due(t0 + timedelta(days=2))  # nothing left to send
    assert len(hook.received) == 3
    assert {r.message_id for r in hook.received} == {hook.received[0].message_id}
    # Each attempt verifies with the new secret and with the old one (rotation).
    assert [r.verified for r in hook.received] == [{SECRET: True, OLD_SECRET: True}] * 3
    (row,) = await deliveries(database)
    assert (row.outcome, row.attempts, row.last_status, row.next_attempt_at) == (
        DeliveryOutcome.DELIVERED,
        3,
        200,
        None,
    )
    assert [a["status"] for a in row.attempt_log] == [500, 500, 200]
    assert [a["body"] for a in row.attempt_log] == ["ok"] * 3
    assert hook.received[0].message_id == f"msg_test_{row.id}"
    payload = hook.received[2].payload
    assert payload["type"] == "points.adjusted"
    assert payload["timestamp"] == t0.isoformat().replace("+00:00", "Z")
    data = payload["data"]
    assert {key: data[key] for key in ("memberId", "customerId", "delta", "available")} == {
        "memberId": str(member),
        "customerId": "c-1",
        "delta": 40,
        "available": 40,
    }
    assert (data["pending"], data["held"], data["tier"], data["kind"]) == (0, 0, "Bronze", "ADJUST")
    assert data["transactionId"] and data["eventId"]
    assert data["sequence"] == 2  # member.enrolled was the member's first event


async def test_every_topic_goes_out_with_a_per_member_sequence(
    database: Database, clock: Clock
) -> None:
    async with receiving(Receiver()) as hook:
        service = service_for(clock, {"url": hook.url, "secret": SECRET}, pending_days=0)
        member = await enroll(database, service, "c-1")  # enrolled, signup points.earned
        await run(database, service, purchase("p-1", "c-1", "o-1", item("1000.00")))
        await run(database, service, AdjustPoints("a-1", MemberRef(id=member), -5, "fix"))
        await enroll(database, service, "c-2")
        await dispatcher(database, service, clock).run_due(clock.now)
    first = [r.payload for r in hook.received if r.payload["data"]["memberId"] == str(member)]
    first.sort(key=lambda p: p["data"]["sequence"])
    assert [(p["type"], p["data"]["sequence"]) for p in first] == [
        ("member.enrolled", 1),
        ("points.earned", 2),
        ("points.earned", 3),
        ("tier.changed", 4),
        ("points.adjusted", 5),
    ]
    purchase_event = first[2]["data"]
    assert (purchase_event["orderId"], purchase_event["delta"], purchase_event["tier"]) == (
        "o-1",
        1000,
        "Silver",  # the tier after the change
    )
    second = [r.payload for r in hook.received if r.payload["data"]["memberId"] != str(member)]
    assert sorted(p["data"]["sequence"] for p in second) == [1, 2]
    assert {r.outcome for r in await deliveries(database)} == {DeliveryOutcome.DELIVERED}


async def test_sequences_go_on_across_batches_of_interleaved_members(
    database: Database, clock: Clock
) -> None:
    async with receiving(Receiver()) as hook:
        service = no_bonus(clock, {"url": hook.url, "secret": SECRET})
        ada = await enroll(database, service, "ada")
        bob = await enroll(database, service, "bob")
        for n in range(3):  # ada, bob, ada, bob, ...: the members' events interleave
            for member in (ada, bob):
                await run(
                    database, service, AdjustPoints(f"a{n}-{member}", MemberRef(id=member), 1, "x")
                )
        await dispatcher(database, service, clock).run_due(clock.now)
        assert len(hook.received) == 8
        # A second batch: every member has numbered events before it.
        for n in range(3, 5):
            for member in (bob, ada):
                await run(
                    database, service, AdjustPoints(f"a{n}-{member}", MemberRef(id=member), 1, "x")
                )
        await dispatcher(database, service, clock).run_due(clock.now)
    for member in (ada, bob):
        events = [r.payload for r in hook.received if r.payload["data"]["memberId"] == str(member)]
        # in the order the ledger wrote them, numbered 1, 2, ... with no gap or repeat
        events.sort(key=lambda p: int(p["data"]["eventId"]))
        assert [p["data"]["sequence"] for p in events] == [1, 2, 3, 4, 5, 6]
        assert [p["type"] for p in events] == ["member.enrolled"] + ["points.adjusted"] * 5


async def test_attempts_recorded_by_the_next_claim_are_recorded_and_counted_once(
    database: Database, clock: Clock
) -> None:
    # Batches of 3: most attempts are recorded by the claim of a later batch, the rest by
    # the recorder; each delivery shows one attempt, and the report counts each once.
    async with receiving(Receiver()) as hook:
        service = no_bonus(clock, {"url": hook.url, "secret": SECRET})
        member = await enroll(database, service, "ada")
        for n in range(20):
            await run(database, service, AdjustPoints(f"a{n}", MemberRef(id=member), 1, "x"))
        report = await dispatcher(database, service, clock, batch=3).run_due(clock.now)
    assert len(hook.received) == 21
    assert len({r.message_id for r in hook.received}) == 21
    rows = await deliveries(database)
    assert [(row.outcome, row.attempts, len(row.attempt_log)) for row in rows] == [
        (DeliveryOutcome.DELIVERED, 1, 1)
    ] * 21
    assert report.outcomes == {"test": {"DELIVERED": 21}}


async def test_a_dead_letter_after_the_whole_schedule(database: Database, clock: Clock) -> None:
    async with receiving(Receiver(then=503)) as hook:
        service = no_bonus(clock, {"url": hook.url, "secret": SECRET})
        await enroll(database, service, "c-1")
        sender = dispatcher(database, service, clock)
        at = clock.now
        for n, wait in enumerate(SCHEDULE, start=1):
            at += wait
            await sender.run_due(at)
            (row,) = await deliveries(database)
            assert row.attempts == n
            if n < len(SCHEDULE):
                assert (row.outcome, row.next_attempt_at) == (
                    DeliveryOutcome.PENDING,
                    at + SCHEDULE[n],
                )
        await sender.run_due(at + timedelta(days=30))
    assert (row.outcome, row.next_attempt_at) == (DeliveryOutcome.DEAD, None)
    assert len(hook.received) == 7


@pytest.mark.parametrize(("status", "attempts"), [(400, 3), (404, 3), (302, 3), (408, 7), (429, 7)])
async def test_refusing_answers_are_dead_after_three_attempts(
    database: Database, clock: Clock, status: int, attempts: int
) -> None:
    async with receiving(Receiver(then=status)) as hook:
        service = no_bonus(clock, {"url": hook.url, "secret": SECRET})
        await enroll(database, service, "c-1")
        sender = dispatcher(database, service, clock)
        for day in range(10):
            await sender.run_due(clock.now + timedelta(days=day))
    (row,) = await deliveries(database)
    assert (row.outcome, row.attempts, row.last_status) == (DeliveryOutcome.DEAD, attempts, status)
    assert len(hook.received) == attempts
    assert hook.redirected == 0  # a redirect is never followed


async def test_410_disables_the_endpoint(database: Database, clock: Clock) -> None:
    async with receiving(Receiver(then=410)) as hook:
        service = no_bonus(clock, {"url": hook.url, "secret": SECRET})
        member = await enroll(database, service, "c-1")
        sender = dispatcher(database, service, clock)
        await sender.run_due(clock.now)
        await run(database, service, AdjustPoints("a-1", MemberRef(id=member), 5, "later"))
        for day in range(3):
            await sender.run_due(clock.now + timedelta(days=day))
    assert len(hook.received) == 1
    rows = await deliveries(database)
    assert [(r.outcome, r.attempts) for r in rows] == [
        (DeliveryOutcome.DISABLED, 1),
        (DeliveryOutcome.DISABLED, 0),
    ]
    async with database.reading() as session:
        (endpoint,) = (await session.scalars(select(WebhookEndpoint))).all()
    assert (endpoint.url, endpoint.reason) == (hook.url, "410 Gone")


async def test_a_hanging_receiver_times_out_and_is_retried(
    database: Database, clock: Clock
) -> None:
    async with receiving(Receiver(hang=True)) as hook:
        service = no_bonus(clock, {"url": hook.url, "secret": SECRET})
        await enroll(database, service, "c-1")
        sender = dispatcher(database, service, clock, timeout=0.5)
        async with asyncio.timeout(20):  # generous: the call's own timeout is 0.5 s
            await sender.run_due(clock.now)
        (row,) = await deliveries(database)
        assert (row.outcome, row.attempts, row.last_status) == (DeliveryOutcome.PENDING, 1, None)
        assert row.next_attempt_at == clock.now + timedelta(seconds=5)
        assert row.attempt_log[0]["error"] == "timed out"
        hook.hang = False
        await sender.run_due(clock.now + timedelta(seconds=5))
    (row,) = await deliveries(database)
    assert (row.outcome, row.attempts) == (DeliveryOutcome.DELIVERED, 2)
    assert len({r.message_id for r in hook.received}) == 1


async def test_answers_are_kept_up_to_one_kib(database: Database, clock: Clock) -> None:
    async with receiving(Receiver(then=500, body=b"x" * 50_000)) as hook:
        service = no_bonus(clock, {"url": hook.url, "secret": SECRET})
        await enroll(database, service, "c-1")
        await dispatcher(database, service, clock).run_due(clock.now)
    (row,) = await deliveries(database)
    assert row.attempt_log[0]["body"] == "x" * 1024


async def test_an_unreachable_endpoint_is_retried(database: Database, clock: Clock) -> None:
    async with receiving(Receiver()) as closed:
        url = closed.url  # nothing listens there once the block ends
    service = no_bonus(clock, {"url": url, "secret": SECRET})
    await enroll(database, service, "c-1")
    await dispatcher(database, service, clock).run_due(clock.now)
    (row,) = await deliveries(database)
    assert (row.outcome, row.attempts, row.last_status) == (DeliveryOutcome.PENDING, 1, None)
    assert "Connect" in row.attempt_log[0]["error"]


async def _wait_until(condition: Any) -> None:
    async with asyncio.timeout(30):
        while not condition():  # noqa: ASYNC110 (a counter of the receiver's, not an event)
            await asyncio.sleep(0.02)


async def test_a_dead_endpoint_does_not_slow_a_healthy_one(
    database: Database, clock: Clock
) -> None:
    stuck = Receiver(hang=True, path="/stuck")
    async with receiving(stuck), receiving(Receiver()) as healthy:
        service = no_bonus(
            clock,
            {"url": stuck.url, "secret": SECRET},
            {"url": healthy.url, "secret": SECRET},
        )
        sender = dispatcher(database, service, clock, timeout=120, concurrency=4)
        sender.start()
        try:
            for n in range(12):
                await enroll(database, service, f"c-{n}")
            # Every delivery to the healthy endpoint arrives while the stuck endpoint
            # still holds its first four requests (its concurrency) unanswered.
            await healthy.wait_for(12)
            await _wait_until(lambda: stuck.in_flight == 4)
            assert stuck.in_flight == 4 and len(stuck.received) == 4
            assert stuck.most_in_flight == 4
            async with asyncio.timeout(30):
                done = {DeliveryOutcome.DELIVERED: 12}
                while await _outcomes(database, healthy.url) != done:  # noqa: ASYNC110 (rows)
                    await asyncio.sleep(0.05)
            assert len(healthy.received) == 12
            assert await _outcomes(database, stuck.url) == {DeliveryOutcome.PENDING: 12}
        finally:
            await sender.stop()


async def _outcomes(database: Database, url: str) -> dict[DeliveryOutcome, int]:
    counts: dict[DeliveryOutcome, int] = {}
    for row in await deliveries(database):
        if row.endpoint == url:
            counts[row.outcome] = counts.get(row.outcome, 0) + 1
    return counts


async def test_the_ledger_writes_while_an_endpoint_hangs(database: Database, clock: Clock) -> None:
    stuck = Receiver(hang=True)
    async with receiving(stuck):
        service = no_bonus(clock, {"url": stuck.url, "secret": SECRET})
        sender = dispatcher(database, service, clock, timeout=120)
        sender.start()
        try:
            await enroll(database, service, "c-0")
            await stuck.wait_for(1)
            members = [await enroll(database, service, f"c-{n}") for n in range(1, 20)]
            assert len(members) == 19  # each write committed while the call hangs
            await _wait_until(lambda: stuck.in_flight == 4)
            assert stuck.most_in_flight == 4  # the endpoint's concurrency, never more
        finally:
            await sender.stop()


async def test_a_forgotten_member_is_not_named_in_deliveries_still_due(
    database: Database, clock: Clock
) -> None:
    async with receiving(Receiver()) as hook:
        service = no_bonus(clock, {"url": hook.url, "secret": SECRET})
        member = await enroll(database, service, "c-1")
        await run(database, service, ForgetMember("f-1", MemberRef(id=member)))
        await dispatcher(database, service, clock).run_due(clock.now)
    (received,) = hook.received  # member.forgotten is not a webhook topic
    assert received.payload["type"] == "member.enrolled"
    assert received.payload["data"]["customerId"] is None
    assert received.payload["data"]["memberId"] == str(member)
