"""Every query and mutation through a running gateway over real HTTP, with exact results.

The test program: 100 signup points, purchase points pending 14 days, shoes earn double,
gift cards nothing, tiers Bronze / Silver (1000) / Gold (5000). The clock starts on
Monday 2026-03-02 15:00 UTC.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from auth import scopes
from tests.support.gateway import Gateway, running_gateway
from tests.support.ledger import T0


@pytest.fixture
async def gw(database_url: str) -> AsyncIterator[Gateway]:
    async with running_gateway(database_url) as gateway:
        yield gateway


ENROLL = """
mutation Enroll($input: EnrollMemberInput!) {
  enrollMember(input: $input) {
    member { id customerId email name referralCode
             points { available pending held lifetimeEarned }
             tier { current { name } next { name threshold } qualifyingValue toNext } }
    userErrors { code message field }
  }
}"""

PURCHASE = """
mutation Buy($input: PurchaseInput!) {
  recordPurchase(input: $input) {
    transaction { id kind points status orderId occurredAt availableAt expiresAt }
    member { points { available pending } }
    userErrors { code field }
  }
}"""

MEMBER = """
query Member($ref: MemberRef!) {
  member(ref: $ref) {
    id customerId
    points { available pending held lifetimeEarned expiringSoon { points expiresAt } }
    tier { current { name earnMultiplier } qualifyingValue toNext }
  }
}"""


async def enroll(
    gw: Gateway, customer: str, key: str | None = None, **extra: Any
) -> dict[str, Any]:
    data = await gw.partner(
        ENROLL,
        {"input": {"idempotencyKey": key or f"enroll-{customer}", "customerId": customer, **extra}},
    )
    payload: dict[str, Any] = data["enrollMember"]
    assert payload["userErrors"] == [], payload
    return payload["member"]  # type: ignore[no-any-return]


def line(
    price: str, quantity: int = 1, category: str | None = None, sku: str | None = None
) -> dict[str, Any]:
    return {"sku": sku, "category": category, "quantity": quantity, "unitPrice": price}


async def buy(gw: Gateway, customer: str, order: str, *lines: dict[str, Any]) -> dict[str, Any]:
    data = await gw.partner(
        PURCHASE,
        {
            "input": {
                "idempotencyKey": f"buy-{order}",
                "member": {"customerId": customer},
                "orderId": order,
                "currency": "USD",
                "lines": list(lines),
            }
        },
    )
    return data["recordPurchase"]  # type: ignore[no-any-return]


async def run_jobs(gw: Gateway) -> None:
    async with gw.database.transaction() as session:
        await gw.app.state.service.run_jobs(session, "test", gw.clock.now)


async def test_enrolment_answers_the_member_and_replays_its_key(gw: Gateway) -> None:
    member = await enroll(gw, "ada", email="ada@example.com", name="Ada")
    assert member["customerId"] == "ada"
    assert (member["email"], member["name"]) == ("ada@example.com", "Ada")
    assert member["points"] == {"available": 100, "pending": 0, "held": 0, "lifetimeEarned": 100}
    assert member["tier"] == {
        "current": {"name": "Bronze"},
        "next": {"name": "Silver", "threshold": 1000},
        "qualifyingValue": 0,
        "toNext": 1000,
    }

    again = await enroll(gw, "ada", email="ada@example.com", name="Ada")
    assert again == member  # the same key and input: the first answer, nothing new

    changed = await gw.partner(
        ENROLL, {"input": {"idempotencyKey": "enroll-ada", "customerId": "ada", "name": "Eve"}}
    )
    assert changed["enrollMember"]["member"] is None
    assert changed["enrollMember"]["userErrors"] == [
        {
            "code": "IDEMPOTENCY_CONFLICT",
            "message": "this key was used with a different input",
            "field": ["idempotencyKey"],
        }
    ]
    twice = await gw.partner(ENROLL, {"input": {"idempotencyKey": "other", "customerId": "ada"}})
    assert [e["code"] for e in twice["enrollMember"]["userErrors"]] == ["ALREADY_ENROLLED"]
    stats = await gw.partner("{ programStats { members pointsIssued outstandingPoints } }")
    assert stats["programStats"] == {"members": 1, "pointsIssued": 100, "outstandingPoints": 100}


async def test_a_purchase_earns_pending_points_that_become_available(gw: Gateway) -> None:
    await enroll(gw, "ada")
    bought = await buy(
        gw,
        "ada",
        "1001",
        line("30.00", 2, "shoes", "SHOE"),  # 60 × 2
        line("25.00", 1, "gift-cards"),  # earns nothing
        line("10.49", 1, "socks"),
    )
    assert bought["userErrors"] == []
    assert bought["transaction"] == {
        "id": bought["transaction"]["id"],
        "kind": "EARN",
        "points": 130,  # floor(120 + 10.49)
        "status": "PENDING",
        "orderId": "1001",
        "occurredAt": "2026-03-02T15:00:00+00:00",
        "availableAt": "2026-03-16T15:00:00+00:00",
        "expiresAt": "2027-03-16T15:00:00+00:00",
    }
    assert bought["member"] == {"points": {"available": 100, "pending": 130}}

    duplicate = await gw.partner(
        PURCHASE,
        {
            "input": {
                "idempotencyKey": "another-channel",
                "member": {"customerId": "ada"},
                "orderId": "1001",
                "currency": "USD",
                "lines": [line("5.00")],
            }
        },
    )
    assert duplicate["recordPurchase"]["userErrors"] == [
        {"code": "DUPLICATE_ORDER", "field": ["orderId"]}
    ]

    gw.clock.advance(days=15)
    await run_jobs(gw)
    member = (await gw.partner(MEMBER, {"ref": {"customerId": "ada"}}))["member"]
    assert member["points"] == {
        "available": 230,
        "pending": 0,
        "held": 0,
        "lifetimeEarned": 230,
        "expiringSoon": [],
    }
    assert member["tier"] == {
        "current": {"name": "Bronze", "earnMultiplier": "1"},
        "qualifyingValue": 130,
        "toNext": 870,
    }

    refund = await gw.partner(
        """mutation($input: RefundInput!) { refundPurchase(input: $input) {
             transaction { kind points orderId } member { points { available } } userErrors { code } } }""",
        {
            "input": {
                "idempotencyKey": "refund-1",
                "orderId": "1001",
                "lines": [{"sku": "SHOE", "quantity": 1}],
            }
        },
    )
    assert refund["refundPurchase"] == {
        "transaction": {
            "kind": "REFUND",
            "points": -59,
            "orderId": "1001",
        },  # floor(130 × 60 / 130.49)
        "member": {"points": {"available": 171}},
        "userErrors": [],
    }


async def test_history_pages_newest_first_across_pages(gw: Gateway) -> None:
    member = await enroll(gw, "ada")
    adjust = """mutation($input: AdjustPointsInput!) { adjustPoints(input: $input) {
                  transaction { id points reason } userErrors { code } } }"""
    for i in range(1, 6):
        await gw.partner(
            adjust,
            {
                "input": {
                    "idempotencyKey": f"adj-{i}",
                    "member": {"id": member["id"]},
                    "points": i,
                    "reason": f"goodwill {i}",
                }
            },
        )
    history = """query($ref: MemberRef!, $after: String, $kinds: [TransactionKind!]) {
      member(ref: $ref) { transactions(first: 2, after: $after, kinds: $kinds) {
        edges { cursor node { kind points reason } } pageInfo { hasNextPage endCursor } } } }"""
    seen: list[tuple[str, int]] = []
    after = None
    pages = 0
    while True:
        data = await gw.partner(history, {"ref": {"id": member["id"]}, "after": after})
        connection = data["member"]["transactions"]
        seen += [(e["node"]["kind"], e["node"]["points"]) for e in connection["edges"]]
        assert connection["pageInfo"]["endCursor"] == connection["edges"][-1]["cursor"]
        pages += 1
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert pages == 3
    assert seen == [
        ("ADJUST", 5),
        ("ADJUST", 4),
        ("ADJUST", 3),
        ("ADJUST", 2),
        ("ADJUST", 1),
        ("BONUS", 100),
    ]

    none = await gw.partner(history, {"ref": {"id": member["id"]}, "kinds": []})
    assert none["member"]["transactions"] == {
        "edges": [],
        "pageInfo": {"hasNextPage": False, "endCursor": None},
    }
    bonuses = await gw.partner(history, {"ref": {"id": member["id"]}, "kinds": ["BONUS"]})
    edges = bonuses["member"]["transactions"]["edges"]
    assert [(e["node"]["kind"], e["node"]["points"], e["node"]["reason"]) for e in edges] == [
        ("BONUS", 100, "Signup bonus")
    ]


async def test_members_page_by_enrolment_and_filter_by_tier(gw: Gateway) -> None:
    for name in ["a", "b", "c", "d", "e"]:
        await enroll(gw, name)
    await gw.partner(
        """mutation { adjustPoints(input: {idempotencyKey: "x", member: {customerId: "c"},
             points: 5, reason: "r"}) { userErrors { code } } }"""
    )
    query = """query($after: String, $tier: String) { members(first: 2, after: $after, tier: $tier) {
                 edges { node { customerId points { available } } } pageInfo { hasNextPage endCursor } } }"""
    first = (await gw.partner(query))["members"]
    assert [e["node"]["customerId"] for e in first["edges"]] == ["a", "b"]
    second = (await gw.partner(query, {"after": first["pageInfo"]["endCursor"]}))["members"]
    assert [e["node"] for e in second["edges"]] == [
        {"customerId": "c", "points": {"available": 105}},
        {"customerId": "d", "points": {"available": 100}},
    ]
    third = (await gw.partner(query, {"after": second["pageInfo"]["endCursor"]}))["members"]
    assert [e["node"]["customerId"] for e in third["edges"]] == ["e"]
    assert third["pageInfo"]["hasNextPage"] is False
    silver = (await gw.partner(query, {"tier": "Silver"}))["members"]
    assert silver == {"edges": [], "pageInfo": {"hasNextPage": False, "endCursor": None}}


async def test_rewards_redemption_use_and_cancel(gw: Gateway) -> None:
    member = await enroll(gw, "ada")
    await gw.partner(
        """mutation { adjustPoints(input: {idempotencyKey: "top", member: {customerId: "ada"},
             points: 900, reason: "welcome"}) { userErrors { code } } }"""
    )
    catalog = await gw.partner(
        "{ rewards(first: 2) { edges { node { id cost stock perMemberLimit minTier } } pageInfo { hasNextPage endCursor } } }"
    )
    assert [e["node"]["id"] for e in catalog["rewards"]["edges"]] == ["five-off", "lounge"]
    rest = await gw.partner(
        "query($a: String) { rewards(first: 2, after: $a) { edges { node { id cost stock perMemberLimit } } } }",
        {"a": catalog["rewards"]["pageInfo"]["endCursor"]},
    )
    assert rest["rewards"]["edges"] == [
        {"node": {"id": "tote", "cost": 300, "stock": 2, "perMemberLimit": 1}}
    ]

    available = await gw.partner(
        "query($r: MemberRef!) { member(ref: $r) { availableRewards { id } } }",
        {"r": {"id": member["id"]}},
    )
    assert [r["id"] for r in available["member"]["availableRewards"]] == [
        "five-off",
        "tote",
    ]  # lounge: Silver

    redeem = """mutation($input: RedeemRewardInput!) { redeemReward(input: $input) {
                  redemption { id points code status reward { id name } }
                  member { points { available } } userErrors { code field } } }"""
    tote = await gw.partner(
        redeem,
        {"input": {"idempotencyKey": "r1", "member": {"customerId": "ada"}, "rewardId": "tote"}},
    )
    redemption = tote["redeemReward"]["redemption"]
    assert (redemption["points"], redemption["status"], redemption["reward"]) == (
        300,
        "ISSUED",
        {"id": "tote", "name": "Tote bag"},
    )
    assert len(redemption["code"]) >= 10
    assert tote["redeemReward"]["member"] == {"points": {"available": 700}}
    again = await gw.partner(
        redeem,
        {"input": {"idempotencyKey": "r2", "member": {"customerId": "ada"}, "rewardId": "tote"}},
    )
    assert again["redeemReward"]["userErrors"] == [{"code": "LIMIT_REACHED", "field": ["rewardId"]}]

    used = await gw.partner(
        """mutation($input: UseRedemptionInput!) { useRedemption(input: $input) {
             redemption { id status } userErrors { code } } }""",
        {"input": {"idempotencyKey": "u1", "code": redemption["code"], "orderId": "2001"}},
    )
    assert used["useRedemption"] == {
        "redemption": {"id": redemption["id"], "status": "USED"},
        "userErrors": [],
    }

    cancel = """mutation($input: CancelRedemptionInput!) { cancelRedemption(input: $input) {
                  redemption { status } member { points { available } } userErrors { code } } }"""
    refused = await gw.partner(
        cancel, {"input": {"idempotencyKey": "c1", "redemptionId": redemption["id"]}}
    )
    assert refused["cancelRedemption"]["userErrors"] == [{"code": "INVALID_STATE"}]

    five = await gw.partner(
        redeem,
        {
            "input": {
                "idempotencyKey": "r3",
                "member": {"customerId": "ada"},
                "rewardId": "five-off",
            }
        },
    )
    five_id = five["redeemReward"]["redemption"]["id"]
    cancelled = await gw.partner(
        cancel, {"input": {"idempotencyKey": "c2", "redemptionId": five_id}}
    )
    assert cancelled["cancelRedemption"] == {
        "redemption": {"status": "CANCELLED"},
        "member": {"points": {"available": 700}},
        "userErrors": [],
    }
    history = await gw.partner(
        "query($r: MemberRef!) { member(ref: $r) { redemptions { edges { node { status reward { id } } } } } }",
        {"r": {"customerId": "ada"}},
    )
    assert [
        (e["node"]["status"], e["node"]["reward"]["id"])
        for e in history["member"]["redemptions"]["edges"]
    ] == [
        ("CANCELLED", "five-off"),
        ("USED", "tote"),
    ]


async def test_checkout_holds_with_a_member_token_and_a_till(gw: Gateway) -> None:
    await enroll(gw, "ada")
    shopper = gw.member_token("ada")
    hold = """mutation($input: HoldPointsInput!) { holdPoints(input: $input) {
                hold { id points discount status expiresAt } member { points { available held } }
                userErrors { code } } }"""
    first = (
        await gw.graphql(
            hold, {"input": {"idempotencyKey": "h1", "points": 60, "orderId": "cart-1"}}, shopper
        )
    ).data
    assert first["holdPoints"]["hold"] == {
        "id": first["holdPoints"]["hold"]["id"],
        "points": 60,
        "discount": "0.60",
        "status": "HELD",
        "expiresAt": "2026-03-02T15:15:00+00:00",
    }
    assert first["holdPoints"]["member"] == {"points": {"available": 40, "held": 60}}
    too_much = (
        await gw.graphql(
            hold, {"input": {"idempotencyKey": "h2", "points": 41, "orderId": "cart-2"}}, shopper
        )
    ).data
    assert too_much["holdPoints"]["userErrors"] == [{"code": "INSUFFICIENT_POINTS"}]

    capture = await gw.partner(
        """mutation($input: CapturePointsInput!) { capturePoints(input: $input) {
             hold { status } member { points { available held } } userErrors { code } } }""",
        {"input": {"idempotencyKey": "cap-1", "holdId": first["holdPoints"]["hold"]["id"]}},
    )
    assert capture["capturePoints"] == {
        "hold": {"status": "CAPTURED"},
        "member": {"points": {"available": 40, "held": 0}},
        "userErrors": [],
    }
    second = (
        await gw.graphql(
            hold, {"input": {"idempotencyKey": "h3", "points": 40, "orderId": "cart-3"}}, shopper
        )
    ).data
    release = """mutation($input: ReleasePointsInput!) { releasePoints(input: $input) {
                   hold { status } member { points { available held } } userErrors { code } } }"""
    released = (
        await gw.graphql(
            release,
            {"input": {"idempotencyKey": "rel-1", "holdId": second["holdPoints"]["hold"]["id"]}},
            shopper,
        )
    ).data
    assert released["releasePoints"] == {
        "hold": {"status": "RELEASED"},
        "member": {"points": {"available": 40, "held": 0}},
        "userErrors": [],
    }


async def test_offline_batch_each_purchase_with_its_own_result(gw: Gateway) -> None:
    await enroll(gw, "ada")
    inputs = [
        {
            "idempotencyKey": f"pos-{i}",
            "member": {"customerId": "ada"},
            "orderId": order,
            "currency": "USD",
            "channel": "POS",
            "lines": [line("10.00")],
        }
        for i, order in enumerate(["P1", "P2", "P1"])
    ]
    inputs.append({**inputs[0], "idempotencyKey": "pos-eur", "orderId": "P9", "currency": "EUR"})
    data = await gw.partner(
        """mutation($inputs: [PurchaseInput!]!) { recordPurchases(inputs: $inputs) {
             transaction { points orderId } userErrors { code } } }""",
        {"inputs": inputs},
    )
    assert data["recordPurchases"] == [
        {"transaction": {"points": 10, "orderId": "P1"}, "userErrors": []},
        {"transaction": {"points": 10, "orderId": "P2"}, "userErrors": []},
        {"transaction": None, "userErrors": [{"code": "DUPLICATE_ORDER"}]},
        {"transaction": None, "userErrors": [{"code": "CURRENCY_MISMATCH"}]},
    ]
    too_many = await gw.graphql(
        "mutation($inputs: [PurchaseInput!]!) { recordPurchases(inputs: $inputs) { userErrors { code } } }",
        {
            "inputs": [
                {**inputs[0], "idempotencyKey": f"k{i}", "orderId": f"o{i}"} for i in range(501)
            ]
        },
        await gw.token(),
    )
    assert too_many.codes == ["BAD_USER_INPUT"]
    member = (await gw.partner(MEMBER, {"ref": {"customerId": "ada"}}))["member"]
    assert member["points"]["pending"] == 20


async def test_actions_and_their_limits(gw: Gateway) -> None:
    await enroll(gw, "ada")
    action = """mutation($input: ActionInput!) { recordAction(input: $input) {
                  transaction { kind points reason } userErrors { code } } }"""
    review = {"member": {"customerId": "ada"}, "type": "product_review"}
    first = await gw.partner(
        action, {"input": {"idempotencyKey": "a1", "reference": "sku-1", **review}}
    )
    assert first["recordAction"]["transaction"]["kind"] == "BONUS"
    assert first["recordAction"]["transaction"]["points"] == 50
    second = await gw.partner(
        action, {"input": {"idempotencyKey": "a2", "reference": "sku-2", **review}}
    )
    assert second["recordAction"] == {
        "transaction": None,
        "userErrors": [{"code": "LIMIT_REACHED"}],
    }
    unknown = await gw.partner(
        action,
        {"input": {"idempotencyKey": "a3", "member": {"customerId": "ada"}, "type": "tweet"}},
    )
    assert unknown["recordAction"]["userErrors"] == [{"code": "UNKNOWN_ACTION"}]


async def test_member_token_sees_itself_partner_needs_pii(gw: Gateway) -> None:
    await enroll(gw, "ada", email="ada@example.com", name="Ada")
    me = await gw.graphql(
        "{ me { customerId email name points { available } } }", token=gw.member_token("ada")
    )
    assert me.data == {
        "me": {
            "customerId": "ada",
            "email": "ada@example.com",
            "name": "Ada",
            "points": {"available": 100},
        }
    }
    reader = await gw.token({scopes.MEMBERS_READ})
    hidden = await gw.graphql(
        '{ member(ref: {customerId: "ada"}) { customerId email } }', token=reader
    )
    assert hidden.body["data"] == {"member": {"customerId": "ada", "email": None}}
    assert hidden.codes == ["FORBIDDEN"]
    stranger = await gw.graphql("{ me { customerId } }", token=gw.member_token("nobody"))
    assert stranger.data == {"me": None}


async def test_update_export_and_forget(gw: Gateway) -> None:
    member = await enroll(gw, "ada", email="ada@example.com")
    update = await gw.graphql(
        """mutation { updateMember(input: {idempotencyKey: "u1", name: "Ada L.", birthday: "1990-12-10"}) {
             member { name email } userErrors { code } } }""",
        token=gw.member_token("ada"),
    )
    assert update.data["updateMember"] == {
        "member": {"name": "Ada L.", "email": "ada@example.com"},
        "userErrors": [],
    }
    exported = await gw.partner('{ exportMember(ref: {customerId: "ada"}) }')
    assert exported["exportMember"]["member"]["name"] == "Ada L."
    assert exported["exportMember"]["member"]["birthday"] == "1990-12-10"
    assert [t["points"] for t in exported["exportMember"]["transactions"]] == [100]

    forget = await gw.partner(
        """mutation($id: ID!) { forgetMember(input: {idempotencyKey: "f1", member: {id: $id}}) {
             member { id customerId } userErrors { code } } }""",
        {"id": member["id"]},
    )
    assert forget["forgetMember"] == {
        "member": {"id": member["id"], "customerId": f"forgotten-{member['id']}"},
        "userErrors": [],
    }
    gone = await gw.partner('{ member(ref: {customerId: "ada"}) { id } }')
    assert gone == {"member": None}
    missing = await gw.graphql('{ exportMember(ref: {customerId: "ada"}) }', token=await gw.token())
    assert missing.codes == ["UNKNOWN_MEMBER"]


async def test_catalog_upsert_and_program_stats(gw: Gateway) -> None:
    await enroll(gw, "ada")
    upsert = """mutation($input: RewardInput!) { upsertReward(input: $input) {
                  reward { id name cost stock minTier } userErrors { code field } } }"""
    made = await gw.partner(upsert, {"input": {"id": "mug", "name": "Mug", "cost": 80, "stock": 5}})
    assert made["upsertReward"] == {
        "reward": {"id": "mug", "name": "Mug", "cost": 80, "stock": 5, "minTier": None},
        "userErrors": [],
    }
    bad = await gw.partner(
        upsert, {"input": {"id": "cup", "name": "Cup", "cost": 10, "minTier": "Platinum"}}
    )
    assert bad["upsertReward"]["reward"] is None
    assert [e["code"] for e in bad["upsertReward"]["userErrors"]] == ["INVALID_INPUT"]
    await gw.partner(
        """mutation { redeemReward(input: {idempotencyKey: "r", member: {customerId: "ada"}, rewardId: "mug"}) {
             userErrors { code } } }"""
    )
    stats = await gw.partner(
        """{ programStats { members activeMembers30d pointsIssued pointsRedeemed pointsExpired
             outstandingPoints liability redemptionRate tiers { tier members } } }"""
    )
    assert stats["programStats"] == {
        "members": 1,
        "activeMembers30d": 1,
        "pointsIssued": 100,
        "pointsRedeemed": 80,
        "pointsExpired": 0,
        "outstandingPoints": 20,
        "liability": "0.20",
        "redemptionRate": 0.8,
        "tiers": [
            {"tier": "Bronze", "members": 1},
            {"tier": "Silver", "members": 0},
            {"tier": "Gold", "members": 0},
        ],
    }
    tiers = await gw.partner("{ tiers { name threshold earnMultiplier } }")
    assert tiers["tiers"][1] == {"name": "Silver", "threshold": 1000, "earnMultiplier": "1.25"}


async def test_expiring_soon_lists_the_next_30_days(gw: Gateway) -> None:
    await enroll(gw, "ada")  # the signup lot expires 365 days after T0
    gw.clock.advance(days=340)
    member = (await gw.partner(MEMBER, {"ref": {"customerId": "ada"}}))["member"]
    expected_at = T0.replace(year=2027).isoformat()
    assert member["points"]["expiringSoon"] == [{"points": 100, "expiresAt": expected_at}]


async def test_concurrent_first_upserts_of_one_reward_settle_as_one(gw: Gateway) -> None:
    upsert = """mutation($n: String!) { upsertReward(input: {id: "mug", name: $n, cost: 80}) {
                  reward { id } userErrors { code } } }"""
    token = await gw.token()
    answers = await asyncio.gather(
        *(gw.graphql(upsert, {"n": f"Mug {i}"}, token) for i in range(40))
    )
    assert [a.data["upsertReward"] for a in answers] == [
        {"reward": {"id": "mug"}, "userErrors": []}
    ] * 40
    catalog = await gw.partner("{ rewards(first: 100) { edges { node { id name } } } }")
    mugs = [e["node"] for e in catalog["rewards"]["edges"] if e["node"]["id"] == "mug"]
    assert len(mugs) == 1 and mugs[0]["name"].startswith("Mug ")


async def test_stats_count_credits_of_adjustments_as_issued(gw: Gateway) -> None:
    await enroll(gw, "ada")
    adjust = """mutation($k: String!, $p: Int!) { adjustPoints(input: {idempotencyKey: $k,
                  member: {customerId: "ada"}, points: $p, reason: "r"}) { userErrors { code } } }"""
    await gw.partner(adjust, {"k": "plus", "p": 40})
    await gw.partner(adjust, {"k": "minus", "p": -15})
    stats = await gw.partner("{ programStats { pointsIssued pointsRedeemed outstandingPoints } }")
    # Issued: signup 100 + the 40 credited; the 15 taken back is no issue and no redemption.
    assert stats["programStats"] == {
        "pointsIssued": 140,
        "pointsRedeemed": 0,
        "outstandingPoints": 125,
    }
