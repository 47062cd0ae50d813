"""`POST /webhooks/{program}/{source}`: the common flow over real HTTP, on both
databases, through the `events` source: 404s, the body cap, signatures refused with
nothing stored, dedupe, ignored topics, payloads that never apply, the delivery records,
the rate limit."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ledger.models import DeliveryOutcome
from tests.conftest import sqlite_url
from tests.support.gateway import Gateway, running_gateway
from tests.support.inbound import (
    EVENTS_OLD_SECRET,
    SECRETS,
    Points,
    counts,
    encode,
    events_headers,
    inbound_deliveries,
    points,
    post,
    purchase_data,
    send_event,
)

NO_SIGNUP = {"signup": 0, "referrer": 0, "referee": 0}


@pytest.fixture
async def gw(database_url: str) -> AsyncIterator[Gateway]:
    async with running_gateway(
        database_url, webhook_secrets=SECRETS, bonuses=NO_SIGNUP, other_programs=["bare"]
    ) as gateway:
        yield gateway


async def test_a_purchase_event_earns_once_and_a_repeat_changes_nothing(gw: Gateway) -> None:
    first = await send_event(gw, "purchase.completed", purchase_data("o-1"), "msg_1")
    assert first.status == 200, first.body
    assert first.body["outcome"] == "APPLIED"
    assert await points(gw, "cust-1") == Points(available=0, pending=50)
    before = await counts(gw)

    again = await send_event(gw, "purchase.completed", purchase_data("o-1"), "msg_1")
    assert again.status == 200
    assert again.body == {"outcome": "APPLIED", "delivery": first.body["delivery"], "repeat": True}
    assert await points(gw, "cust-1") == Points(available=0, pending=50)
    assert await counts(gw) == before

    [row] = await inbound_deliveries(gw)
    assert (row.endpoint, row.event_id, row.topic) == ("events", "msg_1", "purchase.completed")
    assert row.outcome == DeliveryOutcome.APPLIED
    assert row.attempts == 2
    assert [a["outcome"] for a in row.attempt_log] == ["APPLIED", "DUPLICATE"]


async def test_the_same_order_under_another_delivery_id_is_a_duplicate(gw: Gateway) -> None:
    assert (await send_event(gw, "purchase.completed", purchase_data("o-1"), "msg_1")).status == 200
    other = await send_event(
        gw, "purchase.completed", purchase_data("o-1", idempotencyKey="k-2"), "msg_2"
    )
    assert other.status == 200
    assert other.body["outcome"] == "DUPLICATE"
    assert await points(gw, "cust-1") == Points(available=0, pending=50)
    outcomes = [(row.event_id, row.outcome) for row in await inbound_deliveries(gw)]
    assert outcomes == [("msg_1", "APPLIED"), ("msg_2", "DUPLICATE")]


@pytest.mark.parametrize("case", ["tampered", "wrong secret", "stale", "missing", "reserialized"])
async def test_a_bad_signature_is_401_and_nothing_is_stored(gw: Gateway, case: str) -> None:
    body = encode({"type": "purchase.completed", "data": purchase_data("o-9")})
    headers = events_headers(body, "msg_9")
    sent = body
    if case == "tampered":
        sent = body.replace(b'"25.00"', b'"95.00"')
    elif case == "wrong secret":
        headers = events_headers(body, "msg_9", "whsec_" + "QkFE" * 8)
    elif case == "stale":
        headers = events_headers(body, "msg_9", at=datetime.now(UTC) - timedelta(seconds=301))
    elif case == "missing":
        del headers["webhook-signature"]
    else:  # the same JSON, spaced differently: the signature covers the bytes
        sent = body.replace(b",", b", ")
    before = await counts(gw)

    answer = await post(gw, "events", sent, headers)

    assert answer.status == 401
    assert answer.body["error"] == "INVALID_SIGNATURE"
    assert await counts(gw) == before
    assert await inbound_deliveries(gw) == []
    assert await points(gw, "cust-1") is None


async def test_the_previous_secret_is_accepted_during_a_rotation(gw: Gateway) -> None:
    answer = await send_event(
        gw, "purchase.completed", purchase_data("o-1"), "msg_1", secret=EVENTS_OLD_SECRET
    )
    assert answer.status == 200, answer.body
    assert await points(gw, "cust-1") == Points(available=0, pending=50)


async def test_an_unknown_type_is_200_and_recorded_ignored(gw: Gateway) -> None:
    before = await counts(gw)
    answer = await send_event(gw, "loyalty.something", {"x": 1}, "msg_1")
    assert answer.status == 200
    assert answer.body["outcome"] == "IGNORED"
    assert await counts(gw) == before
    [row] = await inbound_deliveries(gw)
    assert (row.topic, row.outcome, row.attempts) == ("loyalty.something", "IGNORED", 1)


@pytest.mark.parametrize(
    ("data", "code", "reason"),
    [
        (
            purchase_data("o-1", currency="EUR"),
            "CURRENCY_MISMATCH",
            "this program counts in USD, not EUR",
        ),
        (
            purchase_data("o-1", "c", {"sku": "A", "quantity": 1, "unitPrice": 12.5}),
            "INVALID_PAYLOAD",
            'data.lines.0.unitPrice: a decimal is a string, e.g. "12.50"',
        ),
        (
            purchase_data("o-1", "c", {"sku": "A", "quantity": 0, "unitPrice": "1"}),
            "INVALID_AMOUNT",
            "lines.0.quantity: must be between 1 and 1000000",
        ),
        (
            purchase_data("o-1", "c", {"sku": "A", "qty": 1, "unitPrice": "1"}),
            "INVALID_PAYLOAD",
            "data.lines.0.qty is not a field of this input",
        ),
        (
            {"orderId": "o-1", "currency": "USD", "lines": []},
            "INVALID_PAYLOAD",
            "data.member must be an object",
        ),
    ],
)
async def test_a_payload_that_can_never_apply_is_422_with_a_reason_and_writes_nothing(
    gw: Gateway, data: dict[str, object], code: str, reason: str
) -> None:
    before = await counts(gw)
    answer = await send_event(gw, "purchase.completed", data, "msg_1")
    assert answer.status == 422
    assert (answer.body["error"], answer.body["reason"]) == (code, reason)
    assert await counts(gw) == before  # not even the member an auto-enrolment would add
    [row] = await inbound_deliveries(gw)
    assert (row.outcome, row.last_status, row.attempts) == ("REJECTED", 422, 1)
    assert row.attempt_log[0]["reason"] == f"{code}: {reason}"


async def test_a_refused_delivery_runs_again_when_repeated(gw: Gateway) -> None:
    bad = purchase_data("o-1", currency="EUR")
    assert (await send_event(gw, "purchase.completed", bad, "msg_1")).status == 422
    assert (await send_event(gw, "purchase.completed", bad, "msg_1")).status == 422
    [row] = await inbound_deliveries(gw)
    assert (row.outcome, row.attempts) == ("REJECTED", 2)


async def test_unknown_program_source_or_secret_is_404(gw: Gateway) -> None:
    body = encode({"type": "purchase.completed", "data": purchase_data("o-1")})
    headers = events_headers(body, "msg_1")
    for program, source in (("nope", "events"), ("test", "nope"), ("bare", "events")):
        answer = await post(gw, source, body, headers, program=program)
        assert answer.status == 404, (program, source)
        assert answer.body == {"error": "NOT_FOUND", "reason": "no such webhook endpoint"}
    assert await inbound_deliveries(gw) == []


async def test_a_body_over_one_mebibyte_is_413(gw: Gateway) -> None:
    body = b"{" + b" " * (1024 * 1024) + b"}"
    answer = await post(gw, "events", body, events_headers(body, "msg_1"))
    assert answer.status == 413
    assert answer.body["error"] == "PAYLOAD_TOO_LARGE"
    assert await inbound_deliveries(gw) == []


async def test_the_rate_limit_is_per_program_and_source(database_url: str) -> None:
    async with running_gateway(
        database_url,
        webhook_secrets=SECRETS,
        other_programs=[],
        settings={"webhook_rate_limit": "2/minute"},
    ) as gw:
        statuses = []
        for index in range(3):
            answer = await send_event(gw, "other.type", {}, f"msg_{index}")
            statuses.append(answer.status)
        assert statuses == [200, 200, 429]
        assert answer.body["error"] == "RATE_LIMITED"
        assert int(answer.headers["retry-after"]) > 0
        assert [row.event_id for row in await inbound_deliveries(gw)] == ["msg_0", "msg_1"]


async def test_a_locked_database_is_503_with_retry_after_and_the_retry_lands_once(
    sqlite_template: Path, tmp_path: Path
) -> None:
    url = sqlite_url(sqlite_template, tmp_path)
    async with running_gateway(
        url, webhook_secrets=SECRETS, bonuses=NO_SIGNUP, operation_timeout=1.0
    ) as gw:
        blocker = sqlite3.connect(url.removeprefix("sqlite+aiosqlite:///"), isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")  # another writer, never done in time
            locked = await send_event(gw, "purchase.completed", purchase_data("o-1"), "msg_1")
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert locked.status == 503
        assert locked.body["error"] == "SERVICE_UNAVAILABLE"
        assert locked.headers["retry-after"] == "5"
        assert await inbound_deliveries(gw) == []  # nothing could be written

        retried = await send_event(gw, "purchase.completed", purchase_data("o-1"), "msg_1")
        assert (retried.status, retried.body["outcome"]) == (200, "APPLIED")
        again = await send_event(gw, "purchase.completed", purchase_data("o-1"), "msg_1")
        assert again.body.get("repeat") is True
        assert await points(gw, "cust-1") == Points(available=0, pending=50)
        [row] = await inbound_deliveries(gw)
        assert (row.outcome, row.attempts) == ("APPLIED", 2)


async def test_ids_and_types_no_database_can_store_are_kept_by_hash(gw: Gateway) -> None:
    long_id = "msg_" + "x" * 300
    first = await send_event(gw, "purchase.completed", purchase_data("o-1"), long_id)
    assert (first.status, first.body["outcome"]) == (200, "APPLIED")
    again = await send_event(gw, "purchase.completed", purchase_data("o-1"), long_id)
    assert again.body.get("repeat") is True
    odd = await send_event(gw, "odd\u0000type", {}, "msg_2")
    assert (odd.status, odd.body["outcome"]) == (200, "IGNORED")
    rows = await inbound_deliveries(gw)
    assert [((row.event_id or "")[:7], row.topic, row.attempts) for row in rows] == [
        ("sha256:", "purchase.completed", 2),
        ("msg_2", "'odd\\x00type'", 1),
    ]


async def test_the_same_delivery_sent_at_once_applies_once(gw: Gateway) -> None:
    answers = await asyncio.gather(
        *(send_event(gw, "purchase.completed", purchase_data("o-1"), "msg_1") for _ in range(6))
    )
    assert [answer.status for answer in answers] == [200] * 6
    assert sum(1 for answer in answers if not answer.body.get("repeat")) == 1
    assert await points(gw, "cust-1") == Points(available=0, pending=50)
    [row] = await inbound_deliveries(gw)
    assert (row.outcome, row.attempts) == ("APPLIED", 6)


async def test_a_refund_racing_its_purchase_is_applied_exactly_once(gw: Gateway) -> None:
    for round_ in range(5):
        order = f"o-{round_}"
        refund = {"orderId": order, "amount": "10.00"}
        await asyncio.gather(
            send_event(gw, "purchase.refunded", refund, f"r-{round_}"),
            send_event(gw, "purchase.completed", purchase_data(order, "ada"), f"p-{round_}"),
        )
    # Each order: 50 points, less floor(50 × 10 / 50) = 10 for its refund.
    assert await points(gw, "ada") == Points(available=0, pending=5 * 40)


INBOUND = """query($failed: Boolean) {
  webhookDeliveries(first: 10, direction: IN, failedOnly: $failed) { edges { node {
    direction source eventId topic outcome attemptCount attempts { httpStatus }
  } } } }"""


async def test_inbound_deliveries_are_listed_over_graphql_with_their_outcomes(
    gw: Gateway,
) -> None:
    assert (await send_event(gw, "purchase.completed", purchase_data("o-1"), "msg_1")).status == 200
    assert (await send_event(gw, "purchase.completed", purchase_data("o-1"), "msg_1")).status == 200
    never = purchase_data("o-2", currency="EUR")  # the program counts in USD
    assert (await send_event(gw, "purchase.completed", never, "msg_2")).status == 422
    assert (await send_event(gw, "member.updated", {}, "msg_3")).status == 200
    token = await gw.token()

    listed = await gw.graphql(INBOUND, {"failed": False}, token)
    nodes = [edge["node"] for edge in listed.data["webhookDeliveries"]["edges"]]
    assert [(n["eventId"], n["outcome"], n["attemptCount"]) for n in nodes] == [
        ("msg_3", "IGNORED", 1),
        ("msg_2", "REJECTED", 1),
        ("msg_1", "APPLIED", 2),
    ]
    assert {(n["direction"], n["source"]) for n in nodes} == {("IN", "events")}
    assert nodes[0]["topic"] == "member.updated"

    failed = await gw.graphql(INBOUND, {"failed": True}, token)
    assert [e["node"]["eventId"] for e in failed.data["webhookDeliveries"]["edges"]] == ["msg_2"]
