"""Delivery rows: written with the change, one per matching endpoint; listed, fetched
and retried by the operations the GraphQL layer calls."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from ledger import deliveries_repository, webhooks
from ledger.commands import AdjustPoints, MemberRef
from ledger.db import Database
from ledger.errors import InvalidState, ProgramFileError
from ledger.models import DeliveryDirection, DeliveryOutcome, WebhookDelivery
from ledger.service import LoyaltyService
from tests.support.ledger import Clock, enroll, item, make_program, purchase, run

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OLD_SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"


def _program(**overrides: Any) -> Any:
    hooks = [
        {"url": "https://a.example/hook", "secret": SECRET},
        {
            "url": "https://b.example/hook",
            "secrets": [SECRET, OLD_SECRET],
            "events": ["tier.changed"],
        },
    ]
    return make_program(webhooks=hooks, **overrides)


@pytest.fixture
async def hooked(database: Database, clock: Clock) -> LoyaltyService:
    program = _program(pending_days=0)
    svc = LoyaltyService({program.id: program}, clock=clock)
    async with database.transaction() as session:
        await svc.seed_rewards(session, program.id)
    return svc


async def _deliveries(database: Database) -> list[WebhookDelivery]:
    async with database.reading() as session:
        return list(
            (await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id))).all()
        )


async def test_a_change_writes_one_delivery_per_endpoint_that_takes_its_topic(
    database: Database, hooked: LoyaltyService, clock: Clock
) -> None:
    member = await enroll(database, hooked, "c-1")  # member.enrolled + signup points.earned
    rows = await _deliveries(database)
    assert [(row.endpoint, row.topic) for row in rows] == [
        ("https://a.example/hook", "member.enrolled"),
        ("https://a.example/hook", "points.earned"),
    ]
    assert {row.outcome for row in rows} == {DeliveryOutcome.PENDING}
    assert {row.next_attempt_at for row in rows} == {clock.now}
    assert {row.direction for row in rows} == {DeliveryDirection.OUT}
    # 1000 points cross Silver: points.earned to a, tier.changed to a and b.
    await run(database, hooked, purchase("p-1", "c-1", "o-1", item("1000.00")))
    await run(database, hooked, AdjustPoints("adj-1", MemberRef(id=member), -5, "goodwill"))
    topics = [(row.endpoint, row.topic) for row in (await _deliveries(database))[2:]]
    assert sorted(topics) == [
        ("https://a.example/hook", "points.adjusted"),
        ("https://a.example/hook", "points.earned"),
        ("https://a.example/hook", "tier.changed"),
        ("https://b.example/hook", "tier.changed"),
    ]


async def test_a_program_without_webhooks_writes_no_delivery(
    database: Database, service: LoyaltyService
) -> None:
    await enroll(database, service, "c-1")
    assert await _deliveries(database) == []


async def test_pages_filters_fetch_and_retry(
    database: Database, hooked: LoyaltyService, clock: Clock
) -> None:
    for n in range(3):
        await enroll(database, hooked, f"c-{n}")  # 2 deliveries each
    rows = await _deliveries(database)
    assert len(rows) == 6
    async with database.transaction() as session:
        first = await webhooks.list_deliveries(session, "test", first=4)
        assert [d.id for d in first.deliveries] == [r.id for r in reversed(rows)][:4]
        assert first.has_next_page
        rest = await webhooks.list_deliveries(
            session, "test", first=4, after=first.deliveries[-1].id
        )
        assert [d.id for d in rest.deliveries] == [rows[1].id, rows[0].id]
        assert not rest.has_next_page
        assert (
            await webhooks.list_deliveries(session, "test", first=10, failed_only=True)
        ).deliveries == []
        inbound = await webhooks.list_deliveries(
            session, "test", first=10, direction=DeliveryDirection.IN
        )
        assert inbound.deliveries == []
        assert (await webhooks.list_deliveries(session, "other", first=10)).deliveries == []
        # One dead, one refused: those two are the failed ones.
        dead = await session.get(WebhookDelivery, rows[0].id)
        refused = await session.get(WebhookDelivery, rows[3].id)
        assert dead is not None and refused is not None
        dead.outcome, dead.attempts, dead.next_attempt_at = DeliveryOutcome.DEAD, 7, None
        refused.outcome, refused.next_attempt_at = DeliveryOutcome.REFUSED, None
    async with database.transaction() as session:
        failed = await webhooks.list_deliveries(session, "test", first=10, failed_only=True)
        assert [d.id for d in failed.deliveries] == [rows[3].id, rows[0].id]
        assert (
            await webhooks.delivery(session, "test", rows[0].id)
        ).outcome == DeliveryOutcome.DEAD
        with pytest.raises(webhooks.UnknownDelivery):
            await webhooks.delivery(session, "other", rows[0].id)
        with pytest.raises(webhooks.UnknownDelivery):
            await webhooks.retry_delivery(session, "other", rows[0].id, clock.now)
    clock.advance(hours=30)
    async with database.transaction() as session:
        await deliveries_repository.disable_endpoint(
            session, "test", "https://a.example/hook", clock.now, "410 Gone"
        )
    assert {row.outcome for row in await _deliveries(database)} == {
        DeliveryOutcome.DEAD,
        DeliveryOutcome.REFUSED,
        DeliveryOutcome.DISABLED,
    }
    async with database.transaction() as session:
        retried = await webhooks.retry_delivery(session, "test", rows[0].id, clock.now)
        assert (retried.outcome, retried.next_attempt_at, retried.attempts) == (
            DeliveryOutcome.PENDING,
            clock.now,
            7,
        )
        assert await deliveries_repository.disabled_endpoints(session) == set()
        assert webhooks.message_id(retried) == f"msg_test_{rows[0].id}"


async def test_only_outbound_deliveries_are_retried(database: Database, clock: Clock) -> None:
    async with database.transaction() as session:
        session.add(
            WebhookDelivery(
                direction=DeliveryDirection.IN,
                program_id="test",
                endpoint="shopify",
                event_id="evt-1",
                topic="orders/paid",
                outcome=DeliveryOutcome.DEAD,
                attempts=1,
                attempt_log=[],
                created_at=clock.now,
                updated_at=clock.now,
            )
        )
    (row,) = await _deliveries(database)
    async with database.transaction() as session:
        with pytest.raises(InvalidState):
            await webhooks.retry_delivery(session, "test", row.id, clock.now)
        page = await webhooks.list_deliveries(
            session, "test", first=5, direction=DeliveryDirection.IN
        )
        assert [d.id for d in page.deliveries] == [row.id]


@pytest.mark.parametrize(
    ("hook", "key", "reason"),
    [
        ({"url": "https://a.example/"}, "webhooks.0", "give `secret`"),
        ({"url": "https://a.example/", "secret": "not base64!"}, "webhooks.0.secret", "base64"),
        ({"url": "https://a.example/", "secret": "whsec_QUJD"}, "webhooks.0.secret", "24 to 64"),
        (
            {"url": "https://a.example/", "secret": SECRET, "events": ["points.held"]},
            "webhooks.0.events",
            "unknown event 'points.held'",
        ),
        ({"url": "ftp://a.example/", "secret": SECRET}, "webhooks.0.url", "pattern"),
    ],
)
def test_bad_endpoints_stop_start_up(hook: dict[str, Any], key: str, reason: str) -> None:
    with pytest.raises(ProgramFileError) as caught:
        make_program(webhooks=[hook])
    assert caught.value.key == key
    assert reason in caught.value.reason


def test_rotation_signs_with_every_secret_once() -> None:
    program = _program()
    assert program.webhooks[0].signing_secrets == (SECRET,)
    assert program.webhooks[1].signing_secrets == (SECRET, OLD_SECRET)
    with pytest.raises(ProgramFileError) as caught:
        make_program(webhooks=[{"url": "https://a.example/", "secret": SECRET}] * 2)
    assert caught.value.key == "webhooks"


async def test_a_claim_leases_due_deliveries_with_their_payload_and_none_of_a_disabled_endpoint(
    database: Database, hooked: LoyaltyService, clock: Clock
) -> None:
    url = "https://a.example/hook"
    member = await enroll(database, hooked, "c-1")  # member.enrolled + points.earned to a
    rows = await _deliveries(database)
    until = clock.now + timedelta(seconds=15)
    async with database.transaction() as session:
        claimed = await deliveries_repository.claim_due(
            session, "test", url, clock.now, 10, lease="L1", lease_until=until, skip_locked=False
        )
    assert [(c.id, c.topic, c.attempts, c.customer_id) for c in claimed] == [
        (rows[0].id, "member.enrolled", 0, "c-1"),
        (rows[1].id, "points.earned", 0, "c-1"),
    ]
    assert [c.event_id for c in claimed] == [rows[0].outbox_id, rows[1].outbox_id]
    assert {c.member_id for c in claimed} == {member}
    leased = await _deliveries(database)
    assert [(row.lease, row.next_attempt_at) for row in leased] == [("L1", until)] * 2
    # Leased: not due again before the lease runs out.
    async with database.transaction() as session:
        again = await deliveries_repository.claim_due(
            session, "test", url, clock.now, 10, lease="L2", lease_until=until, skip_locked=False
        )
        assert again == []
        await deliveries_repository.disable_endpoint(session, "test", url, clock.now, "410 Gone")
    # A change after the endpoint was disabled writes a pending delivery, never claimed.
    await run(database, hooked, AdjustPoints("adj-1", MemberRef(id=member), 5, "goodwill"))
    written = (await _deliveries(database))[-1]
    assert (written.topic, written.outcome) == ("points.adjusted", DeliveryOutcome.PENDING)
    async with database.transaction() as session:
        none = await deliveries_repository.claim_due(
            session, "test", url, clock.now, 10, lease="L3", lease_until=until, skip_locked=False
        )
    assert none == []
    assert (await _deliveries(database))[-1].lease is None


async def test_recording_appends_to_a_bounded_log_only_under_the_lease(
    database: Database, hooked: LoyaltyService, clock: Clock
) -> None:
    url = "https://a.example/hook"
    await enroll(database, hooked, "c-1")  # two deliveries to a
    until = clock.now + timedelta(seconds=15)
    async with database.transaction() as session:
        first, second = await deliveries_repository.claim_due(
            session, "test", url, clock.now, 10, lease="L1", lease_until=until, skip_locked=False
        )
    limit = webhooks.ATTEMPT_LOG_LIMIT
    retry_at = clock.now + timedelta(seconds=5)

    def attempt(delivery_id: int, lease: str, number: int) -> Any:
        return deliveries_repository.AttemptRecord(
            delivery_id,
            lease,
            DeliveryOutcome.PENDING,
            retry_at,
            503,
            7,
            {"at": clock.now.isoformat(), "status": 503, "latencyMs": number, "body": "ü"},
        )

    for number in range(limit + 2):
        async with database.transaction() as session:
            recorded = await deliveries_repository.record_attempts(
                session,
                [attempt(first.id, "L1", number), attempt(second.id, "other", number)],
                log_limit=limit,
                at=clock.now,
            )
            assert [r.delivery_id for r in recorded] == [first.id]
            # Held again by the same lease for the next round.
            await session.execute(
                update(WebhookDelivery).where(WebhookDelivery.id == first.id).values(lease="L1")
            )
    kept, untouched = await _deliveries(database)
    assert (kept.attempts, kept.outcome, kept.last_status, kept.sequence) == (
        limit + 2,
        DeliveryOutcome.PENDING,
        503,
        7,
    )
    assert kept.next_attempt_at == retry_at
    assert [entry["latencyMs"] for entry in kept.attempt_log] == list(range(2, limit + 2))
    assert kept.attempt_log[-1] == {
        "at": clock.now.isoformat(),
        "status": 503,
        "latencyMs": limit + 1,
        "body": "ü",
    }
    # The other lease recorded nothing: the delivery is as the claim left it.
    assert (untouched.attempts, untouched.attempt_log, untouched.lease) == (0, [], "L1")
    assert untouched.next_attempt_at == until
    # Due again when the retry comes, not a moment before: the instant is stored as the
    # claim compares it.
    for moment, due in ((retry_at - timedelta(microseconds=1), []), (retry_at, [kept.id])):
        async with database.transaction() as session:
            claimed = await deliveries_repository.claim_due(
                session, "test", url, moment, 10, lease="L2", lease_until=until, skip_locked=False
            )
        assert [c.id for c in claimed] == due
