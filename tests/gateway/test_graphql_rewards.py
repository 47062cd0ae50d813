"""Rewards over HTTP: the catalog, redemptions (use, cancel) and program stats. Exact results, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from tests.support.gateway import Gateway
from tests.support.operations import enroll


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
