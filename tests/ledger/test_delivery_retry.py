"""The retry of a webhook delivery as a ledger command: with a key it runs once and
replays, without one it runs every time; and what an operator is shown of a delivery."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from ledger import webhooks
from ledger.commands import RetryWebhookDelivery
from ledger.db import Database
from ledger.models import DeliveryOutcome, IdempotencyRecord, WebhookDelivery
from ledger.service import LoyaltyService
from tests.support.ledger import Clock, enroll, make_program
from tests.support.receiver import SECRET

HOOK = {"url": "https://hooks.example/loyalty", "secret": SECRET, "events": ["member.enrolled"]}


@pytest.fixture
def service(clock: Clock) -> LoyaltyService:
    program = make_program(webhooks=[HOOK])
    return LoyaltyService({program.id: program}, clock=clock)


async def delivery(database: Database) -> WebhookDelivery:
    async with database.reading() as session:
        return (await session.scalars(select(WebhookDelivery))).one()


async def dead(database: Database) -> None:
    async with database.transaction() as session:
        row = (await session.scalars(select(WebhookDelivery))).one()
        row.outcome, row.next_attempt_at, row.attempts = DeliveryOutcome.DEAD, None, 7


async def retry(
    database: Database, service: LoyaltyService, command: RetryWebhookDelivery
) -> tuple[str | None, int | None]:
    async with database.transaction() as session:
        outcome = await service.execute(session, "test", "ops", command)
    return (outcome.problem.code if outcome.problem else None), outcome.delivery_id


async def test_with_a_key_it_runs_once_and_replays(
    database: Database, service: LoyaltyService, clock: Clock
) -> None:
    await enroll(database, service, "c-1")
    await dead(database)
    row = await delivery(database)
    clock.advance(hours=1)
    assert await retry(database, service, RetryWebhookDelivery("k", row.id)) == (None, row.id)
    retried = await delivery(database)
    assert (retried.outcome, retried.next_attempt_at) == (DeliveryOutcome.PENDING, clock.now)
    # Dead again; the same key replays the first answer and schedules nothing.
    await dead(database)
    clock.advance(hours=1)
    assert await retry(database, service, RetryWebhookDelivery("k", row.id)) == (None, row.id)
    assert (await delivery(database)).outcome == DeliveryOutcome.DEAD
    assert await retry(database, service, RetryWebhookDelivery("k", 999)) == (
        "IDEMPOTENCY_CONFLICT",
        None,
    )


async def test_without_a_key_it_runs_each_time_and_keeps_no_record(
    database: Database, service: LoyaltyService, clock: Clock
) -> None:
    await enroll(database, service, "c-1")
    row = await delivery(database)
    for _ in range(2):
        await dead(database)
        clock.advance(minutes=1)
        assert await retry(database, service, RetryWebhookDelivery(None, row.id)) == (
            None,
            row.id,
        )
        again = await delivery(database)
        assert (again.outcome, again.next_attempt_at) == (DeliveryOutcome.PENDING, clock.now)
    assert await retry(database, service, RetryWebhookDelivery(None, 999)) == (
        "UNKNOWN_DELIVERY",
        None,
    )
    async with database.reading() as session:
        keys = (await session.scalars(select(IdempotencyRecord.key))).all()
    assert list(keys) == ["enroll-c-1"]


async def test_an_empty_key_is_refused_not_taken_for_none(
    database: Database, service: LoyaltyService
) -> None:
    await enroll(database, service, "c-1")
    row = await delivery(database)
    assert await retry(database, service, RetryWebhookDelivery("", row.id)) == (
        "INVALID_INPUT",
        None,
    )


async def test_an_endpoint_no_longer_configured_is_not_retried(
    database: Database, service: LoyaltyService, clock: Clock
) -> None:
    await enroll(database, service, "c-1")
    await dead(database)
    row = await delivery(database)
    program = make_program(webhooks=[{**HOOK, "url": "https://hooks.example/new"}])
    moved = LoyaltyService({program.id: program}, clock=clock)
    assert await retry(database, moved, RetryWebhookDelivery(None, row.id)) == (
        "INVALID_STATE",
        None,
    )
    assert (await delivery(database)).outcome == DeliveryOutcome.DEAD


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.example/loyalty?x=1", "https://hooks.example/loyalty?x=1"),
        ("https://user:pass@hooks.example:8443/in", "https://***@hooks.example:8443/in"),
        ("http://token@[::1]:9/h", "http://***@[::1]:9/h"),
        ("https://a@b@hooks.example/", "https://***@hooks.example/"),
    ],
)
def test_credentials_in_an_endpoint_url_are_not_shown(url: str, shown: str) -> None:
    assert webhooks.shown_url(url) == shown


async def test_attempts_as_recorded(database: Database, service: LoyaltyService) -> None:
    await enroll(database, service, "c-1")
    row = await delivery(database)
    at = row.created_at + timedelta(seconds=1)
    row.attempt_log = [
        {"at": at.isoformat(), "status": None, "latencyMs": 5, "error": "timed out", "body": None}
    ]
    assert webhooks.attempt_records(row) == [webhooks.AttemptRecord(at, None, 5, None, "timed out")]
    assert webhooks.webhook_id(row) == f"msg_test_{row.id}"
    assert webhooks.event_id(row) == str(row.outbox_id)
