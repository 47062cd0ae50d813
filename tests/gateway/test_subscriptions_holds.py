"""Checkout holds over a real WebSocket: a hold, its release, its capture and its expiry
by the jobs each reach `pointsChanged` with the balances after the change, and the
`kinds` filter of `transactions` knows that HOLD and RELEASE name no entry."""

from __future__ import annotations

from typing import Any

from tests.support.gateway import Gateway
from tests.support.live import POINTS_CHANGED, Stream, gql_session, hub_of, until
from tests.support.operations import enroll, run_jobs

HOLD = """
mutation Hold($input: HoldPointsInput!) {
  holdPoints(input: $input) {
    hold { id points status }
    member { points { available pending held } }
    userErrors { code }
  }
}"""

CAPTURE = """
mutation Capture($input: CapturePointsInput!) {
  capturePoints(input: $input) { hold { id status } userErrors { code } }
}"""

RELEASE = """
mutation Release($input: ReleasePointsInput!) {
  releasePoints(input: $input) { hold { id status } userErrors { code } }
}"""

HISTORY = """
query History($ref: MemberRef!, $kinds: [TransactionKind!]) {
  member(ref: $ref) { transactions(kinds: $kinds) { edges { node { id kind points } } } }
}"""

ADA = {"customerId": "ada"}


async def hold(gw: Gateway, points: int, order: str) -> dict[str, Any]:
    data = await gw.partner(
        HOLD,
        {
            "input": {
                "idempotencyKey": f"hold-{order}",
                "member": ADA,
                "points": points,
                "orderId": order,
            }
        },
    )
    payload: dict[str, Any] = data["holdPoints"]
    assert payload["userErrors"] == [], payload
    return payload


async def resolve(gw: Gateway, mutation: str, name: str, hold_id: str, key: str) -> str:
    data = await gw.partner(mutation, {"input": {"idempotencyKey": key, "holdId": hold_id}})
    assert data[name]["userErrors"] == [], data
    status: str = data[name]["hold"]["status"]
    return status


async def history(gw: Gateway, kinds: list[str] | None) -> list[dict[str, Any]]:
    data = await gw.partner(HISTORY, {"ref": ADA, "kinds": kinds})
    return [edge["node"] for edge in data["member"]["transactions"]["edges"]]


def event(member_id: str, kind: str, delta: int, available: int, held: int, **extra: Any) -> Any:
    return {
        "pointsChanged": {
            "memberId": member_id,
            "transactionId": None,
            "kind": kind,
            "delta": delta,
            "available": available,
            "pending": 0,
            "held": held,
            "tier": "Bronze",
            "occurredAt": "2026-03-02T15:00:00+00:00",
            **extra,
        }
    }


async def test_a_hold_and_its_release_reach_the_member_with_exact_balances(gw: Gateway) -> None:
    ada = await enroll(gw, "ada")  # 100 signup points, available
    async with gql_session(gw.url, gw.member_token("ada")) as session:
        points = Stream(session, POINTS_CHANGED, {})
        await until(lambda: hub_of(gw).stats.subscriptions == 1)
        held = await hold(gw, 40, "o-1")
        assert held["member"]["points"] == {"available": 60, "pending": 0, "held": 40}
        assert await points.next() == event(ada["id"], "HOLD", -40, 60, 40)
        released = await resolve(gw, RELEASE, "releasePoints", held["hold"]["id"], "release-1")
        assert released == "RELEASED"
        assert await points.next() == event(ada["id"], "RELEASE", 40, 100, 0)
        await points.stop()
    # HOLD and RELEASE are kinds of events, never of an entry
    signup = await history(gw, None)
    assert [(t["kind"], t["points"]) for t in signup] == [("BONUS", 100)]
    assert await history(gw, ["HOLD", "RELEASE"]) == []
    assert await history(gw, ["HOLD", "BONUS"]) == signup


async def test_a_captured_hold_is_the_redeem_it_writes(gw: Gateway) -> None:
    ada = await enroll(gw, "ada")
    async with gql_session(gw.url, gw.member_token("ada")) as session:
        points = Stream(session, POINTS_CHANGED, {})
        await until(lambda: hub_of(gw).stats.subscriptions == 1)
        held = await hold(gw, 30, "o-2")
        assert await points.next() == event(ada["id"], "HOLD", -30, 70, 30)
        captured = await resolve(gw, CAPTURE, "capturePoints", held["hold"]["id"], "capture-2")
        assert captured == "CAPTURED"
        redeem = (await history(gw, ["REDEEM"]))[0]
        assert redeem["points"] == -30
        assert await points.next() == event(
            ada["id"], "REDEEM", -30, 70, 0, transactionId=redeem["id"]
        )
        await points.stop()


async def test_a_hold_the_jobs_expire_reaches_the_member_as_a_release(gw: Gateway) -> None:
    ada = await enroll(gw, "ada")
    async with gql_session(gw.url, gw.member_token("ada")) as session:
        points = Stream(session, POINTS_CHANGED, {})
        await until(lambda: hub_of(gw).stats.subscriptions == 1)
        held = await hold(gw, 25, "o-3")
        assert await points.next() == event(ada["id"], "HOLD", -25, 75, 25)
        gw.clock.advance(minutes=16)  # the test program holds for 15 minutes
        await run_jobs(gw)
        assert await points.next() == event(
            ada["id"], "RELEASE", 25, 100, 0, occurredAt="2026-03-02T15:16:00+00:00"
        )
        await points.stop()
    late = await gw.partner(
        RELEASE, {"input": {"idempotencyKey": "late", "holdId": held["hold"]["id"]}}
    )
    assert late["releasePoints"]["userErrors"] == [{"code": "INVALID_STATE"}]
