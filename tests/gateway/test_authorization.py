"""The authorization matrix: every mutation and protected query as anonymous, with a
token lacking the scope, with a token of another program, as another member, and as an
allowed caller. A denial changes nothing (the program's rows compared before and
after); the allowed call succeeds.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select

from auth import scopes
from ledger.models import (
    Account,
    Entry,
    Hold,
    IdempotencyRecord,
    Member,
    Order,
    OutboxEvent,
    Redemption,
    Reward,
    WebhookDelivery,
)
from tests.support.gateway import Gateway, running_gateway
from tests.support.receiver import SECRET, Receiver, receiving
from tests.support.rows import BACKGROUND_COLUMNS

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

TABLES = [
    Member,
    Account,
    Entry,
    Order,
    Hold,
    Redemption,
    Reward,
    IdempotencyRecord,
    OutboxEvent,
    WebhookDelivery,
]


@dataclass
class Setup:
    ada: str  # member id of the victim
    hold: str
    redemption: str
    code: str
    delivery: str  # the webhook delivery of Ada's enrolment, delivered
    hook: Receiver


@dataclass(frozen=True)
class Operation:
    name: str
    document: str
    variables: Any  # Setup -> dict
    scope: str
    member_self: bool = False  # "or the member itself"
    query: bool = False
    other_member: Any = None  # Setup -> variables naming ada, for a member token of bob
    result_path: list[str] = field(default_factory=list)


def ref(s: Setup) -> dict[str, str]:
    return {"id": s.ada}


OPERATIONS = [
    Operation(
        "enrollMember",
        "mutation($i: EnrollMemberInput!) { enrollMember(input: $i) { member { id } userErrors { code } } }",
        lambda s: {"i": {"idempotencyKey": "k", "customerId": "new"}},
        scopes.MEMBERS_WRITE,
    ),
    Operation(
        "updateMember",
        "mutation($i: UpdateMemberInput!) { updateMember(input: $i) { member { id } userErrors { code } } }",
        lambda s: {"i": {"idempotencyKey": "k", "member": ref(s), "name": "X"}},
        scopes.MEMBERS_WRITE,
        member_self=True,
    ),
    Operation(
        "forgetMember",
        "mutation($i: ForgetMemberInput!) { forgetMember(input: $i) { member { id } userErrors { code } } }",
        lambda s: {"i": {"idempotencyKey": "k", "member": ref(s)}},
        scopes.MEMBERS_WRITE,
    ),
    Operation(
        "recordPurchase",
        "mutation($i: PurchaseInput!) { recordPurchase(input: $i) { transaction { id } userErrors { code } } }",
        lambda s: {
            "i": {
                "idempotencyKey": "k",
                "member": ref(s),
                "orderId": "O2",
                "currency": "USD",
                "lines": [{"quantity": 1, "unitPrice": "10.00"}],
            }
        },
        scopes.POINTS_WRITE,
    ),
    Operation(
        "recordPurchases",
        "mutation($i: [PurchaseInput!]!) { recordPurchases(inputs: $i) { transaction { id } userErrors { code } } }",
        lambda s: {
            "i": [
                {
                    "idempotencyKey": "k",
                    "member": ref(s),
                    "orderId": "O2",
                    "currency": "USD",
                    "lines": [{"quantity": 1, "unitPrice": "10.00"}],
                }
            ]
        },
        scopes.POINTS_WRITE,
    ),
    Operation(
        "recordAction",
        "mutation($i: ActionInput!) { recordAction(input: $i) { transaction { id } userErrors { code } } }",
        lambda s: {"i": {"idempotencyKey": "k", "member": ref(s), "type": "product_review"}},
        scopes.POINTS_WRITE,
    ),
    Operation(
        "refundPurchase",
        "mutation($i: RefundInput!) { refundPurchase(input: $i) { transaction { id } userErrors { code } } }",
        lambda s: {"i": {"idempotencyKey": "k", "orderId": "O1", "amount": "10.00"}},
        scopes.POINTS_WRITE,
    ),
    Operation(
        "adjustPoints",
        "mutation($i: AdjustPointsInput!) { adjustPoints(input: $i) { transaction { id } userErrors { code } } }",
        lambda s: {"i": {"idempotencyKey": "k", "member": ref(s), "points": 5, "reason": "r"}},
        scopes.POINTS_ADJUST,
    ),
    Operation(
        "redeemReward",
        "mutation($i: RedeemRewardInput!) { redeemReward(input: $i) { redemption { id } userErrors { code } } }",
        lambda s: {"i": {"idempotencyKey": "k", "member": ref(s), "rewardId": "five-off"}},
        scopes.REWARDS_REDEEM,
        member_self=True,
    ),
    Operation(
        "useRedemption",
        "mutation($i: UseRedemptionInput!) { useRedemption(input: $i) { redemption { id } userErrors { code } } }",
        lambda s: {"i": {"idempotencyKey": "k", "code": s.code}},
        scopes.REWARDS_REDEEM,
    ),
    Operation(
        "cancelRedemption",
        "mutation($i: CancelRedemptionInput!) { cancelRedemption(input: $i) { redemption { id } userErrors { code } } }",
        lambda s: {"i": {"idempotencyKey": "k", "redemptionId": s.redemption}},
        scopes.REWARDS_REDEEM,
    ),
    Operation(
        "holdPoints",
        "mutation($i: HoldPointsInput!) { holdPoints(input: $i) { hold { id } userErrors { code } } }",
        lambda s: {"i": {"idempotencyKey": "k", "member": ref(s), "points": 10, "orderId": "cart"}},
        scopes.REWARDS_REDEEM,
        member_self=True,
    ),
    Operation(
        "capturePoints",
        "mutation($i: CapturePointsInput!) { capturePoints(input: $i) { hold { id } userErrors { code } } }",
        lambda s: {"i": {"idempotencyKey": "k", "holdId": s.hold}},
        scopes.REWARDS_REDEEM,
    ),
    Operation(
        "releasePoints",
        "mutation($i: ReleasePointsInput!) { releasePoints(input: $i) { hold { id } userErrors { code } } }",
        lambda s: {"i": {"idempotencyKey": "k", "holdId": s.hold}},
        scopes.REWARDS_REDEEM,
        member_self=True,
    ),
    Operation(
        "upsertReward",
        "mutation($i: RewardInput!) { upsertReward(input: $i) { reward { id } userErrors { code } } }",
        lambda s: {"i": {"id": "five-off", "name": "Changed", "cost": 1}},
        scopes.REWARDS_MANAGE,
    ),
    Operation(
        "member",
        "query($r: MemberRef!) { member(ref: $r) { id points { available } } }",
        lambda s: {"r": ref(s)},
        scopes.MEMBERS_READ,
        member_self=True,
        query=True,
    ),
    Operation(
        "members",
        "{ members { edges { node { id } } } }",
        lambda s: {},
        scopes.MEMBERS_READ,
        query=True,
    ),
    Operation(
        "programStats",
        "{ programStats { members } }",
        lambda s: {},
        scopes.ANALYTICS_READ,
        query=True,
    ),
    Operation(
        "pointsSeries",
        "query($f: DateTime!, $t: DateTime!) { pointsSeries(from: $f, to: $t) { start issued redeemed } }",
        lambda s: {"f": "2026-03-02T05:00:00Z", "t": "2026-03-03T05:00:00Z"},
        scopes.ANALYTICS_READ,
        query=True,
    ),
    Operation(
        "exportMember",
        "query($r: MemberRef!) { exportMember(ref: $r) }",
        lambda s: {"r": ref(s)},
        scopes.MEMBERS_PII,
        query=True,
    ),
    Operation(
        "rewards",
        "{ rewards { edges { node { id } } } }",
        lambda s: {},
        scopes.REWARDS_READ,
        member_self=True,
        query=True,
    ),
    Operation(
        "webhookDeliveries",
        "{ webhookDeliveries { edges { node { id topic outcome attemptCount } } } }",
        lambda s: {},
        scopes.WEBHOOKS_MANAGE,
        query=True,
    ),
    Operation(
        "retryWebhookDelivery",
        "mutation($i: RetryWebhookDeliveryInput!) { retryWebhookDelivery(input: $i) { delivery { id outcome } userErrors { code } } }",
        lambda s: {"i": {"idempotencyKey": "k", "id": s.delivery}},
        scopes.WEBHOOKS_MANAGE,
    ),
]


async def snapshot(gw: Gateway) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the test program, every column."""
    rows: dict[str, list[tuple[Any, ...]]] = {}
    async with gw.database.reading() as session:
        for model in TABLES:
            table: Any = model.__table__
            columns = [c for c in table.c if (table.name, c.name) not in BACKGROUND_COLUMNS]
            query = select(*columns)
            if "program_id" in table.c:
                query = query.where(table.c.program_id == "test")
            result = await session.execute(query)
            rows[table.name] = sorted(tuple(map(repr, row)) for row in result)
    return rows


@pytest.fixture
async def hook() -> AsyncIterator[Receiver]:
    async with receiving(Receiver()) as receiver:
        yield receiver


@pytest.fixture
async def gw(database_url: str, hook: Receiver) -> AsyncIterator[Gateway]:
    # Enrolments go out to a receiver on loopback, for the webhook operations' rows.
    async with running_gateway(
        database_url,
        other_programs=["other"],
        settings={"allow_private_webhooks": True},
        webhooks=[{"url": hook.url, "secret": SECRET, "events": ["member.enrolled"]}],
    ) as gateway:
        yield gateway


async def deliveries(gw: Gateway) -> list[WebhookDelivery]:
    async with gw.database.reading() as session:
        query = select(WebhookDelivery).order_by(WebhookDelivery.id)
        return list((await session.scalars(query)).all())


async def delivered(gw: Gateway, count: int) -> list[WebhookDelivery]:
    """The deliveries once `count` of them have been delivered (the dispatcher records
    each attempt right after its answer)."""
    async with asyncio.timeout(30):
        while True:
            rows = await deliveries(gw)
            if sum(row.outcome == "DELIVERED" for row in rows) == count:
                return rows
            await asyncio.sleep(0.05)


async def prepare(gw: Gateway, hook: Receiver) -> Setup:
    async def run(document: str, variables: dict[str, Any]) -> Any:
        data = await gw.partner(document, variables)
        payload = next(iter(data.values()))
        assert payload["userErrors"] == [], payload
        return payload

    ada = (await run(OPERATIONS[0].document, {"i": {"idempotencyKey": "s1", "customerId": "ada"}}))[
        "member"
    ]["id"]
    await run(OPERATIONS[0].document, {"i": {"idempotencyKey": "s2", "customerId": "bob"}})
    await run(
        OPERATIONS[7].document,
        {"i": {"idempotencyKey": "s3", "member": {"id": ada}, "points": 2000, "reason": "r"}},
    )
    await run(
        OPERATIONS[3].document,
        {
            "i": {
                "idempotencyKey": "s4",
                "member": {"id": ada},
                "orderId": "O1",
                "currency": "USD",
                "lines": [{"quantity": 1, "unitPrice": "50.00"}],
            }
        },
    )
    hold = (
        await run(
            OPERATIONS[11].document,
            {"i": {"idempotencyKey": "s5", "member": {"id": ada}, "points": 10, "orderId": "c1"}},
        )
    )["hold"]["id"]
    redeemed = await gw.partner(
        "mutation($i: RedeemRewardInput!) { redeemReward(input: $i) { redemption { id code } userErrors { code } } }",
        {"i": {"idempotencyKey": "s6", "member": {"id": ada}, "rewardId": "five-off"}},
    )
    redemption = redeemed["redeemReward"]["redemption"]
    await hook.wait_for(2)  # Ada's enrolment and Bob's
    enrolled = await delivered(gw, 2)
    return Setup(ada, hold, redemption["id"], redemption["code"], str(enrolled[0].id), hook)


def outcome(response: Any) -> tuple[list[str], Any]:
    """Top-level error codes, and the operation's data."""
    data = response.body.get("data") or {}
    return response.codes, next(iter(data.values()), None) if data else None


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.name)
async def test_authorization_matrix(gw: Gateway, hook: Receiver, operation: Operation) -> None:
    setup = await prepare(gw, hook)
    variables = operation.variables(setup)
    before = await snapshot(gw)

    async def denied(token: str | None, expected_codes: list[str]) -> Any:
        response = await gw.graphql(operation.document, variables, token)
        codes, data = outcome(response)
        assert response.status == 200, response.body
        assert codes == expected_codes, response.body
        assert await snapshot(gw) == before, "a denied call changed the ledger"
        return data

    # No token at all.
    await denied(None, ["UNAUTHENTICATED"])
    # Every scope but the one needed.
    await denied(await gw.token(scopes.ALL - {operation.scope}), ["FORBIDDEN"])
    # Bob's member token, naming Ada (or, where members may not go, anything).
    bob = gw.member_token("bob")
    if operation.member_self and operation.name not in {"rewards"}:
        if operation.name == "releasePoints":
            # Ada's hold is answered as a missing one is: the same error, and the same
            # idempotency record of Bob's key (tests/gateway/test_hold_ownership.py).
            response = await gw.graphql(operation.document, variables, bob)
            codes, data = outcome(response)
            assert codes == [] and data["userErrors"] == [{"code": "UNKNOWN_HOLD"}]
            after = await snapshot(gw)
            keys = after.pop("idempotency_keys")
            assert after == {k: v for k, v in before.items() if k != "idempotency_keys"}
            assert len(keys) == len(before["idempotency_keys"]) + 1
            before = after | {"idempotency_keys": keys}
        else:
            await denied(bob, ["FORBIDDEN"])
    elif not operation.member_self:
        await denied(bob, ["FORBIDDEN"])
    # A partner of another program with every scope: Ada's ids resolve as not found.
    response = await gw.graphql(
        operation.document, variables, await gw.token(scopes.ALL, program="other")
    )
    codes, data = outcome(response)
    assert await snapshot(gw) == before, "another program's token changed this program"
    if operation.query:
        if operation.name == "exportMember":
            assert codes == ["UNKNOWN_MEMBER"]
        elif operation.name == "member":
            assert (codes, data) == ([], None)
        elif operation.name in {"members", "webhookDeliveries"}:
            assert data == {"edges": []}
        elif operation.name == "programStats":
            assert data == {"members": 0}
        elif operation.name == "pointsSeries":
            assert data == [{"start": "2026-03-02T00:00:00-05:00", "issued": 0, "redeemed": 0}]
    elif operation.name not in {"enrollMember", "upsertReward"}:
        # Writes on Ada's ids or codes from another program: not found, nothing written.
        assert codes == [], response.body
        errors = data[0]["userErrors"] if isinstance(data, list) else data["userErrors"]
        assert [e["code"] for e in errors] and errors[0]["code"].startswith("UNKNOWN"), data

    # Allowed: exactly the scope needed, with exactly its effect.
    assert await ada_state(gw, setup) == ADA_BEFORE
    response = await gw.graphql(operation.document, variables, await gw.token({operation.scope}))
    codes, data = outcome(response)
    assert codes == [], response.body
    if not operation.query:
        payload = data[0] if isinstance(data, list) else data
        assert payload["userErrors"] == [], payload
    await EFFECTS[operation.name](gw, setup, data)
    if operation.member_self and operation.name not in {"rewards"}:
        ada = await gw.partner(
            "query($r: MemberRef!) { member(ref: $r) { customerId } }", {"r": {"id": setup.ada}}
        )
        own = {**variables}
        if operation.name == "member":
            own = {"r": {"customerId": "ada"}}
        response = await gw.graphql(
            operation.document, own, gw.member_token(ada["member"]["customerId"])
        )
        assert response.codes == [], response.body
        if not operation.query:
            # The partner already released the hold: it resolves once.
            errors = [] if operation.name != "releasePoints" else [{"code": "INVALID_STATE"}]
            assert next(iter(response.data.values()))["userErrors"] == errors, response.body


ADA = "query($r: MemberRef!) { member(ref: $r) { customerId name email points { available pending held } redemptions { edges { node { status reward { id } } } } } }"
# Ada after `prepare`: 100 signup + 2000 adjusted, 50 pending from order O1, 10 held,
# 500 spent on a five-off redemption.
ADA_BEFORE = {
    "customerId": "ada",
    "name": None,
    "points": (1590, 50, 10),
    "redemptions": ["five-off:ISSUED"],
}


async def ada_state(gw: Gateway, setup: Setup) -> dict[str, Any]:
    member = (await gw.partner(ADA, {"r": {"id": setup.ada}}))["member"]
    points = member["points"]
    return {
        "customerId": member["customerId"],
        "name": member["name"],
        "points": (points["available"], points["pending"], points["held"]),
        "redemptions": sorted(
            f"{e['node']['reward']['id']}:{e['node']['status']}"
            for e in member["redemptions"]["edges"]
        ),
    }


def ada_becomes(**changes: Any) -> Any:
    """An effect: Ada's state is `ADA_BEFORE` with `changes`, nothing else."""

    async def check(gw: Gateway, setup: Setup, data: Any) -> None:
        assert await ada_state(gw, setup) == {**ADA_BEFORE, **changes}

    return check


async def enrolled(gw: Gateway, setup: Setup, data: Any) -> None:
    new = (await gw.partner(ADA, {"r": {"customerId": "new"}}))["member"]
    assert new["points"] == {"available": 100, "pending": 0, "held": 0}  # the signup bonus
    assert await ada_state(gw, setup) == ADA_BEFORE


async def forgotten(gw: Gateway, setup: Setup, data: Any) -> None:
    assert (await gw.partner(ADA, {"r": {"id": setup.ada}}))["member"] is None
    async with gw.database.reading() as session:
        member = await session.get(Member, int(setup.ada))
    assert member is not None and member.customer_id.startswith("forgotten-")
    assert (member.email, member.name) == (None, None)


async def reward_changed(gw: Gateway, setup: Setup, data: Any) -> None:
    rewards = await gw.partner("{ rewards { edges { node { id name cost } } } }")
    nodes = {e["node"]["id"]: e["node"] for e in rewards["rewards"]["edges"]}
    assert nodes["five-off"] == {"id": "five-off", "name": "Changed", "cost": 1}
    assert await ada_state(gw, setup) == ADA_BEFORE


def answers(expected: Any) -> Any:
    """An effect of a query: exactly this answer, and nothing written."""

    async def check(gw: Gateway, setup: Setup, data: Any) -> None:
        assert data == (expected(setup) if callable(expected) else expected)
        assert await ada_state(gw, setup) == ADA_BEFORE

    return check


ENROLMENT = {"topic": "member.enrolled", "outcome": "DELIVERED", "attemptCount": 1}


async def sent_again(gw: Gateway, setup: Setup, data: Any) -> None:
    """Ada's enrolment is due at once and reaches the receiver again, nothing else."""
    assert data == {"delivery": {"id": setup.delivery, "outcome": "PENDING"}, "userErrors": []}
    await setup.hook.wait_for(3)
    again = setup.hook.received[2]
    assert again.message_id == f"msg_test_{setup.delivery}"
    assert again.body == setup.hook.received[0].body
    rows = await delivered(gw, 2)
    assert [(str(r.id), r.attempts, r.last_status) for r in rows] == [
        (setup.delivery, 2, 200),
        (str(int(setup.delivery) + 1), 1, 200),
    ]
    assert await ada_state(gw, setup) == ADA_BEFORE


async def exported(gw: Gateway, setup: Setup, data: Any) -> None:
    assert data["member"]["id"] == setup.ada and data["member"]["customerId"] == "ada"
    assert data["points"]["available"] == 1590
    assert await ada_state(gw, setup) == ADA_BEFORE


EFFECTS: dict[str, Any] = {
    "enrollMember": enrolled,
    "updateMember": ada_becomes(name="X"),
    "forgetMember": forgotten,
    "recordPurchase": ada_becomes(points=(1590, 60, 10)),
    "recordPurchases": ada_becomes(points=(1590, 60, 10)),
    "recordAction": ada_becomes(points=(1640, 50, 10)),
    "refundPurchase": ada_becomes(points=(1590, 40, 10)),
    "adjustPoints": ada_becomes(points=(1595, 50, 10)),
    "redeemReward": ada_becomes(
        points=(1090, 50, 10), redemptions=["five-off:ISSUED", "five-off:ISSUED"]
    ),
    "useRedemption": ada_becomes(redemptions=["five-off:USED"]),
    "cancelRedemption": ada_becomes(points=(2090, 50, 10), redemptions=["five-off:CANCELLED"]),
    "holdPoints": ada_becomes(points=(1580, 50, 20)),
    "capturePoints": ada_becomes(points=(1590, 50, 0)),
    "releasePoints": ada_becomes(points=(1600, 50, 0)),
    "upsertReward": reward_changed,
    "member": answers(lambda s: {"id": s.ada, "points": {"available": 1590}}),
    "members": answers({"edges": [{"node": {"id": "1"}}, {"node": {"id": "2"}}]}),
    "programStats": answers({"members": 2}),
    # 2 March in New York: two signups of 100 and Ada's 2000; the five-off's 500 (the
    # order's points are pending, the hold is not spent).
    "pointsSeries": answers(
        [{"start": "2026-03-02T00:00:00-05:00", "issued": 2200, "redeemed": 500}]
    ),
    "exportMember": exported,
    "rewards": answers({"edges": [{"node": {"id": i}} for i in ("five-off", "lounge", "tote")]}),
    "webhookDeliveries": answers(
        lambda s: {
            "edges": [
                {"node": {"id": str(int(s.delivery) + 1), **ENROLMENT}},  # Bob's, newest first
                {"node": {"id": s.delivery, **ENROLMENT}},
            ]
        }
    ),
    "retryWebhookDelivery": sent_again,
}
