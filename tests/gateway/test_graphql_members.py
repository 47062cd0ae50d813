"""Members over HTTP: enrolment, pages, who sees what, update, export and forget. Exact results, on SQLite and PostgreSQL."""

from __future__ import annotations

from auth import scopes
from tests.support.gateway import Gateway
from tests.support.operations import ENROLL, enroll


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
