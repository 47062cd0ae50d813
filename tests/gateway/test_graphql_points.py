"""Points over HTTP: purchases, pending and available points, history, offline batches, actions, expiry and checkout holds. Exact results, on SQLite and PostgreSQL."""

from __future__ import annotations

from tests.support.gateway import Gateway
from tests.support.ledger import T0
from tests.support.operations import MEMBER, PURCHASE, buy, enroll, line, run_jobs


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


async def test_expiring_soon_lists_the_next_30_days(gw: Gateway) -> None:
    await enroll(gw, "ada")  # the signup lot expires 365 days after T0
    gw.clock.advance(days=340)
    member = (await gw.partner(MEMBER, {"ref": {"customerId": "ada"}}))["member"]
    expected_at = T0.replace(year=2027).isoformat()
    assert member["points"]["expiringSoon"] == [{"points": 100, "expiresAt": expected_at}]


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
