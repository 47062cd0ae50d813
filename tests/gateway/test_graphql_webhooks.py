"""`webhookDeliveries` and `retryWebhookDelivery` over HTTP to a running gateway whose
dispatcher sends real deliveries to receivers on loopback, on both databases: exact
fields, keyset pages newest first, the direction and failed-only filters, program
isolation, and a dead delivery retried by hand reaching its receiver."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from ledger.models import DeliveryDirection, DeliveryOutcome, WebhookDelivery
from tests.support.gateway import Gateway, Response, running_gateway
from tests.support.ledger import T0
from tests.support.receiver import SECRET, Receiver, receiving

FIELDS = """
  id direction source url eventId webhookId topic outcome attemptCount lastStatus
  nextAttemptAt createdAt updatedAt
  attempts { at httpStatus latencyMs responseExcerpt error }
"""
LIST = (
    "query($first: Int, $after: String, $direction: WebhookDirection, $failedOnly: Boolean) {"
    " webhookDeliveries(first: $first, after: $after, direction: $direction,"
    " failedOnly: $failedOnly) { edges { cursor node { " + FIELDS + " } }"
    " pageInfo { hasNextPage endCursor } } }"
)
RETRY = (
    "mutation($i: RetryWebhookDeliveryInput!) { retryWebhookDelivery(input: $i) {"
    " delivery { " + FIELDS + " } userErrors { code message field } } }"
)
ENROLL = "mutation($i: EnrollMemberInput!) { enrollMember(input: $i) { member { id } userErrors { code } } }"
ADJUST = "mutation($i: AdjustPointsInput!) { adjustPoints(input: $i) { userErrors { code } } }"


def iso(moment: Any) -> str:
    return str(moment.isoformat())


@dataclass
class Hooks:
    gw: Gateway
    ok: Receiver  # answers 200 "ok"
    failing: Receiver  # answers 400 "no" three times, then 200
    enrolled: str  # delivery ids, oldest first
    adjusted_ok: str
    adjusted_failing: str
    inbound: str
    other_program: str


@pytest.fixture
async def hooks(database_url: str) -> AsyncIterator[Hooks]:
    ok = Receiver(body=b"ok")
    failing = Receiver(script=[400, 400, 400], then=200, body=b"no")
    async with receiving(ok), receiving(failing):
        # Credentials in an endpoint URL are a secret too: the list shows them replaced.
        failing_url = failing.url.replace("http://", "http://hookuser:hookpass@")
        async with running_gateway(
            database_url,
            other_programs=["other"],
            settings={"allow_private_webhooks": True},
            webhooks=[
                {"url": ok.url, "secret": SECRET, "events": ["member.enrolled", "points.adjusted"]},
                {"url": failing_url, "secret": SECRET, "events": ["points.adjusted"]},
            ],
        ) as gw:
            ada = (await gw.partner(ENROLL, {"i": {"idempotencyKey": "e", "customerId": "ada"}}))[
                "enrollMember"
            ]["member"]["id"]
            adjusted = await gw.partner(
                ADJUST,
                {"i": {"idempotencyKey": "a", "member": {"id": ada}, "points": 40, "reason": "r"}},
            )
            assert adjusted["adjustPoints"]["userErrors"] == []
            await ok.wait_for(2)
            await failing.wait_for(1)
            enrolled, adjusted_ok, adjusted_failing = await settled(
                gw, lambda rows: all(row.attempts == 1 for row in rows), 3
            )
            yield Hooks(
                gw,
                ok,
                failing,
                enrolled,
                adjusted_ok,
                adjusted_failing,
                inbound=await add_inbound(gw, "test", "shopify", "evt-1", "orders/paid"),
                other_program=await add_inbound(gw, "other", "stripe", "evt-2", "charge.refunded"),
            )


async def rows_of(gw: Gateway) -> list[WebhookDelivery]:
    async with gw.database.reading() as session:
        query = select(WebhookDelivery).order_by(WebhookDelivery.id)
        return list((await session.scalars(query)).all())


async def settled(
    gw: Gateway, done: Callable[[list[WebhookDelivery]], bool], count: int | None = None
) -> list[str]:
    """The ids of the deliveries once `done` holds for them (the dispatcher records each
    attempt right after its answer)."""
    async with asyncio.timeout(30):
        while True:
            rows = await rows_of(gw)
            if (count is None or len(rows) == count) and done(rows):
                return [str(row.id) for row in rows]
            await asyncio.sleep(0.05)


async def add_inbound(gw: Gateway, program: str, source: str, event: str, topic: str) -> str:
    """An inbound delivery as the inbound webhook handlers record one."""
    async with gw.database.transaction() as session:
        row = WebhookDelivery(
            direction=DeliveryDirection.IN,
            program_id=program,
            endpoint=source,
            event_id=event,
            topic=topic,
            outcome=DeliveryOutcome.DELIVERED,
            attempts=1,
            attempt_log=[],
            created_at=gw.clock.now,
            updated_at=gw.clock.now,
        )
        session.add(row)
        await session.flush()
        return str(row.id)


async def listing(gw: Gateway, token: str | None = None, **variables: Any) -> Response:
    token = token if token is not None else await gw.token({"webhooks:manage"})
    response = await gw.graphql(LIST, variables, token)
    assert SECRET not in json.dumps(response.body)
    return response


def ids(response: Response) -> list[str]:
    return [edge["node"]["id"] for edge in response.data["webhookDeliveries"]["edges"]]


async def test_each_delivery_with_exact_fields_newest_first(hooks: Hooks) -> None:
    gw, ok, failing = hooks.gw, hooks.ok, hooks.failing
    response = await listing(gw)
    nodes = [edge["node"] for edge in response.data["webhookDeliveries"]["edges"]]
    assert [n["id"] for n in nodes] == [
        hooks.inbound,
        hooks.adjusted_failing,
        hooks.adjusted_ok,
        hooks.enrolled,
    ]
    for node in nodes:
        for attempt in node["attempts"]:
            assert isinstance(attempt["latencyMs"], int) and attempt["latencyMs"] >= 0
            attempt["latencyMs"] = "ms"
    enrolled, adjusted = (r.payload for r in ok.received)
    (refused,) = failing.received
    assert refused.payload == adjusted  # one event, the same body to both endpoints
    delivered = {
        "direction": "OUT",
        "source": None,
        "url": ok.url,
        "outcome": "DELIVERED",
        "attemptCount": 1,
        "lastStatus": 200,
        "nextAttemptAt": None,
        "createdAt": iso(T0),
        "updatedAt": iso(T0),
        "attempts": [
            {
                "at": iso(T0),
                "httpStatus": 200,
                "latencyMs": "ms",
                "responseExcerpt": "ok",
                "error": None,
            }
        ],
    }
    assert nodes == [
        {
            "id": hooks.inbound,
            "direction": "IN",
            "source": "shopify",
            "url": None,
            "eventId": "evt-1",
            "webhookId": None,
            "topic": "orders/paid",
            "outcome": "DELIVERED",
            "attemptCount": 1,
            "lastStatus": None,
            "nextAttemptAt": None,
            "createdAt": iso(T0),
            "updatedAt": iso(T0),
            "attempts": [],
        },
        {
            "id": hooks.adjusted_failing,
            "direction": "OUT",
            "source": None,
            "url": f"http://***@127.0.0.1:{failing.port}/hook",
            "eventId": adjusted["data"]["eventId"],
            "webhookId": refused.message_id,
            "topic": "points.adjusted",
            "outcome": "PENDING",
            "attemptCount": 1,
            "lastStatus": 400,
            "nextAttemptAt": iso(T0.replace(second=5)),  # a refusing 4xx: again in 5 s
            "createdAt": iso(T0),
            "updatedAt": iso(T0),
            "attempts": [
                {
                    "at": iso(T0),
                    "httpStatus": 400,
                    "latencyMs": "ms",
                    "responseExcerpt": "no",
                    "error": None,
                }
            ],
        },
        {
            "id": hooks.adjusted_ok,
            "eventId": adjusted["data"]["eventId"],
            "webhookId": ok.received[1].message_id,
            "topic": "points.adjusted",
            **delivered,
        },
        {
            "id": hooks.enrolled,
            "eventId": enrolled["data"]["eventId"],
            "webhookId": ok.received[0].message_id,
            "topic": "member.enrolled",
            **delivered,
        },
    ]
    assert [r.message_id for r in ok.received] == [
        f"msg_test_{hooks.enrolled}",
        f"msg_test_{hooks.adjusted_ok}",
    ]


async def test_keyset_pages_and_filters(hooks: Hooks) -> None:
    gw = hooks.gw
    first = await listing(gw, first=3)
    assert ids(first) == [hooks.inbound, hooks.adjusted_failing, hooks.adjusted_ok]
    info = first.data["webhookDeliveries"]["pageInfo"]
    assert info["hasNextPage"] is True
    assert info["endCursor"] == first.data["webhookDeliveries"]["edges"][-1]["cursor"]
    rest = await listing(gw, first=3, after=info["endCursor"])
    assert ids(rest) == [hooks.enrolled]
    assert rest.data["webhookDeliveries"]["pageInfo"]["hasNextPage"] is False
    # A page that ends exactly at the last delivery says so.
    exact = await listing(gw, first=4)
    assert exact.data["webhookDeliveries"]["pageInfo"]["hasNextPage"] is False

    outbound = [hooks.adjusted_failing, hooks.adjusted_ok, hooks.enrolled]
    assert ids(await listing(gw, direction="OUT")) == outbound
    assert ids(await listing(gw, direction="IN")) == [hooks.inbound]
    # Waiting after a failed attempt counts as failed; delivered ones do not.
    assert ids(await listing(gw, failedOnly=True)) == [hooks.adjusted_failing]
    assert ids(await listing(gw, failedOnly=True, direction="IN")) == []
    page = await listing(gw, first=1, direction="OUT")
    after = page.data["webhookDeliveries"]["pageInfo"]["endCursor"]
    assert ids(await listing(gw, first=1, direction="OUT", after=after)) == [hooks.adjusted_ok]

    # Another program sees its own delivery only, and none of these.
    other = await listing(gw, await gw.token({"webhooks:manage"}, program="other"))
    assert ids(other) == [hooks.other_program]

    for bad in ({"first": 0}, {"first": 101}, {"after": "bm90LWEtY3Vyc29y"}, {"after": "%%"}):
        refused = await listing(gw, **bad)
        assert (refused.status, refused.codes) == (200, ["BAD_USER_INPUT"]), bad
    # A cursor of another list is not one of this list.
    rewards = await gw.partner("{ rewards(first: 1) { pageInfo { endCursor } } }")
    cursor = rewards["rewards"]["pageInfo"]["endCursor"]
    assert (await listing(gw, after=cursor)).codes == ["BAD_USER_INPUT"]


async def test_the_list_is_costed_like_the_others(hooks: Hooks) -> None:
    gw = hooks.gw
    token = await gw.token()
    deliveries = await gw.graphql(
        "{ webhookDeliveries(first: 3) { edges { node { id } } } }", token=token
    )
    rewards = await gw.graphql("{ rewards(first: 3) { edges { node { id } } } }", token=token)
    cost = deliveries.body["extensions"]["cost"]["requested"]
    assert cost == rewards.body["extensions"]["cost"]["requested"]
    wide = await gw.graphql(
        "{ webhookDeliveries(first: 100) { edges { cursor node { "
        + FIELDS
        + " } } pageInfo { hasNextPage } } }",
        token=token,
    )
    # Costed by the page asked for: 1 + 100 × (edges, cursor, node, its 14 fields, the
    # five of an attempt, pageInfo and hasNextPage).
    assert wide.body["extensions"]["cost"] == {"requested": 1 + 100 * 24, "limit": 5000}
    assert len(wide.data["webhookDeliveries"]["edges"]) == 4


async def retry(
    gw: Gateway, delivery: str, key: str | None = None, token: str | None = None
) -> Any:
    token = token if token is not None else await gw.token({"webhooks:manage"})
    variables = {"i": {"id": delivery, **({"idempotencyKey": key} if key else {})}}
    response = await gw.graphql(RETRY, variables, token)
    assert SECRET not in json.dumps(response.body)
    return response.data["retryWebhookDelivery"]


async def test_a_dead_delivery_retried_reaches_its_receiver(hooks: Hooks) -> None:
    gw, failing = hooks.gw, hooks.failing
    target = hooks.adjusted_failing
    # The schedule: 5 s, then 5 min; a refusing 4xx is dead after three attempts.
    # Each attempt is recorded as of the clock when its answer came: move the clock on
    # only once it is.
    gw.clock.advance(seconds=5)
    await failing.wait_for(2)
    await settled(gw, lambda rows: rows[2].attempts == 2)
    gw.clock.advance(minutes=5)
    await failing.wait_for(3)
    await settled(gw, lambda rows: rows[2].outcome == DeliveryOutcome.DEAD)
    assert ids(await listing(gw, failedOnly=True)) == [target]
    dead = (await listing(gw, first=1, direction="OUT")).data["webhookDeliveries"]["edges"][0]
    assert (dead["node"]["outcome"], dead["node"]["attemptCount"]) == ("DEAD", 3)
    assert dead["node"]["nextAttemptAt"] is None

    retried = await retry(gw, target, "r-1")
    assert retried["userErrors"] == []
    node = retried["delivery"]
    assert (node["id"], node["outcome"], node["attemptCount"]) == (target, "PENDING", 3)
    assert node["nextAttemptAt"] == iso(gw.clock.now)  # due now
    # The dispatcher sends it (the receiver now answers 200), under the same webhook-id.
    await failing.wait_for(4)
    assert len({r.message_id for r in failing.received}) == 1
    assert failing.received[3].body == failing.received[0].body
    assert all(r.verified[SECRET] for r in failing.received)
    await settled(gw, lambda rows: all(r.outcome == DeliveryOutcome.DELIVERED for r in rows[:3]))
    shown = (await listing(gw, first=1, direction="OUT")).data["webhookDeliveries"]["edges"][0]
    attempts = shown["node"]["attempts"]
    assert [(a["httpStatus"], a["responseExcerpt"]) for a in attempts] == [
        (400, "no"),
        (400, "no"),
        (400, "no"),
        (200, "no"),
    ]
    assert (shown["node"]["outcome"], shown["node"]["attemptCount"]) == ("DELIVERED", 4)
    assert ids(await listing(gw, failedOnly=True)) == []

    # The same key again: the first answer, not a second send (the delivery stays as the
    # dispatcher left it); the same key for another delivery is a conflict.
    again = await retry(gw, target, "r-1")
    assert again["userErrors"] == []
    assert (again["delivery"]["outcome"], again["delivery"]["attemptCount"]) == ("DELIVERED", 4)
    conflict = await retry(gw, hooks.adjusted_ok, "r-1")
    assert conflict["delivery"] is None
    assert [e["code"] for e in conflict["userErrors"]] == ["IDEMPOTENCY_CONFLICT"]
    assert len(failing.received) == 4


async def test_retry_without_a_key_sends_again_each_time(hooks: Hooks) -> None:
    gw, ok = hooks.gw, hooks.ok
    for sent in (3, 4):
        retried = await retry(gw, hooks.enrolled)
        assert retried["userErrors"] == []
        assert retried["delivery"]["outcome"] == "PENDING"
        await ok.wait_for(sent)
        assert ok.received[-1].message_id == f"msg_test_{hooks.enrolled}"
        await settled(gw, lambda rows: rows[0].outcome == DeliveryOutcome.DELIVERED)
    (row, *_) = await rows_of(gw)
    assert (row.attempts, row.last_status) == (3, 200)


async def test_retry_refusals_name_the_delivery_and_change_nothing(hooks: Hooks) -> None:
    gw = hooks.gw
    before = [(r.id, r.outcome, r.attempts, r.next_attempt_at) for r in await rows_of(gw)]
    cases = [
        (hooks.inbound, "INVALID_STATE"),  # inbound deliveries are not sent again
        (hooks.other_program, "UNKNOWN_DELIVERY"),  # another program's: not found
        ("999999", "UNKNOWN_DELIVERY"),
        ("not-an-id", "UNKNOWN_DELIVERY"),
    ]
    for delivery, code in cases:
        for key in (None, f"k-{delivery}"):
            refused = await retry(gw, delivery, key)
            assert refused["delivery"] is None
            assert refused["userErrors"] == [
                {"code": code, "message": refused["userErrors"][0]["message"], "field": ["id"]}
            ], (delivery, key)
    # Another program's token cannot retry this program's delivery either.
    other = await gw.token({"webhooks:manage"}, program="other")
    refused = await retry(gw, hooks.adjusted_failing, token=other)
    assert [e["code"] for e in refused["userErrors"]] == ["UNKNOWN_DELIVERY"]
    after = [(r.id, r.outcome, r.attempts, r.next_attempt_at) for r in await rows_of(gw)]
    assert after == before
    assert (len(hooks.ok.received), len(hooks.failing.received)) == (2, 1)
