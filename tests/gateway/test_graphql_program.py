"""The program over HTTP: its stats and its points over time. Exact results, on SQLite
and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support.gateway import Gateway
from tests.support.operations import buy, enroll, line, run_jobs


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


SERIES = """query($from: DateTime!, $to: DateTime!, $interval: Interval!) {
  pointsSeries(from: $from, to: $to, interval: $interval) { start issued redeemed expired } }"""
STATS = "{ programStats { pointsIssued pointsRedeemed pointsExpired } }"


async def series(gw: Gateway, start: str, end: str, interval: str) -> list[tuple[Any, ...]]:
    data = await gw.partner(SERIES, {"from": start, "to": end, "interval": interval})
    return [(b["start"], b["issued"], b["redeemed"], b["expired"]) for b in data["pointsSeries"]]


async def write(gw: Gateway, document: str, variables: dict[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = next(iter((await gw.partner(document, variables)).values()))
    assert payload["userErrors"] == [], payload
    return payload


ADJUST = """mutation($k: String!, $p: Int!) { adjustPoints(input: {idempotencyKey: $k,
  member: {customerId: "ada"}, points: $p, reason: "r"}) { userErrors { code } } }"""
REDEEM = """mutation($k: String!, $r: ID!) { redeemReward(input: {idempotencyKey: $k,
  member: {customerId: "ada"}, rewardId: $r}) { redemption { id } userErrors { code } } }"""
CANCEL = """mutation($k: String!, $id: ID!) { cancelRedemption(input: {idempotencyKey: $k,
  redemptionId: $id}) { userErrors { code } } }"""
REFUND = """mutation($k: String!) { refundPurchase(input: {idempotencyKey: $k, orderId: "A",
  amount: "50.00"}) { userErrors { code } } }"""


def day(number: int, offset: str = "-05:00") -> str:
    return f"2026-03-{number:02d}T00:00:00{offset}"


async def test_points_series_buckets_known_entries_by_the_program_days(gw: Gateway) -> None:
    # The test program's calendar is New York's (summer time from 8 March 2026); the clock
    # starts on Monday 2 March, 15:00 UTC (10:00 there).
    await enroll(gw, "ada")  # 100 signup points, available at once: 2 March
    await buy(gw, "ada", "A", line("200.00"))  # 200 pending until 16 March 15:00 UTC
    await write(gw, ADJUST, {"k": "up", "p": 1000})  # issued on 2 March
    await write(gw, ADJUST, {"k": "down", "p": -30})  # taken back: neither issued nor redeemed
    gw.clock.advance(days=2)  # Wednesday 4 March, 10:00
    await write(gw, REFUND, {"k": "refund"})  # 50 of the pending 200: counts when they turn
    await write(gw, REDEEM, {"k": "five", "r": "five-off"})  # 500 spent on 4 March
    gw.clock.advance(hours=12, minutes=30)  # 03:30 UTC on the 5th: 22:30 on the 4th there
    tote = await write(gw, REDEEM, {"k": "tote", "r": "tote"})  # 300 spent, on 4 March
    gw.clock.advance(days=1, hours=12)  # Friday 6 March
    await write(gw, CANCEL, {"k": "cancel", "id": tote["redemption"]["id"]})  # 300 back
    gw.clock.now = datetime(2026, 3, 17, 15, tzinfo=UTC)
    await run_jobs(gw)  # the order's 150 left of 200 turn available: 16 March

    days = await series(gw, day(1), "2026-03-17T04:00:00Z", "DAY")
    expected = {2: (1100, 0, 0), 4: (0, 800, 0), 6: (0, -300, 0), 16: (150, 0, 0)}
    assert days == [
        (day(n, "-05:00" if n < 9 else "-04:00"), *expected.get(n, (0, 0, 0))) for n in range(1, 17)
    ]
    weeks = await series(gw, "2026-03-04T12:00:00Z", "2026-03-22T12:00:00Z", "WEEK")
    assert weeks == [
        (day(2), 1100, 500, 0),
        (day(9, "-04:00"), 0, 0, 0),
        (day(16, "-04:00"), 150, 0, 0),
    ]
    months = await series(gw, "2026-02-10T00:00:00Z", "2026-03-31T00:00:00Z", "MONTH")
    assert months == [("2026-02-01T00:00:00-05:00", 0, 0, 0), (day(1), 1250, 500, 0)]
    # The buckets of every entry add up to the program's totals.
    stats = (await gw.partner(STATS))["programStats"]
    assert stats == {"pointsIssued": 1250, "pointsRedeemed": 500, "pointsExpired": 0}


async def test_points_series_counts_expiry_on_the_day_the_lot_expired(gw: Gateway) -> None:
    await enroll(gw, "bob")  # 100 points on 2 March 2026, expiring 365 days later
    gw.clock.now = datetime(2027, 4, 20, tzinfo=UTC)
    await run_jobs(gw)  # the job runs late: the expiry is dated 2 March 2027 all the same
    months = await series(gw, "2026-03-01T05:00:00Z", "2027-04-01T04:00:00Z", "MONTH")
    assert len(months) == 13
    assert [m for m in months if m[1:] != (0, 0, 0)] == [
        ("2026-03-01T00:00:00-05:00", 100, 0, 0),
        ("2027-03-01T00:00:00-05:00", 0, 0, 100),
    ]
    assert months[1] == ("2026-04-01T00:00:00-04:00", 0, 0, 0)


@pytest.mark.parametrize(
    ("start", "end", "interval", "message"),
    [
        pytest.param(day(2), day(2), "DAY", "to must be after from", id="empty"),
        pytest.param(
            "2026-01-01T05:00:00Z", "2027-01-03T05:00:00Z", "DAY", "at most 366 buckets",
            id="days-over",
        ),
        pytest.param("1800-01-01T00:00:00Z", day(2), "MONTH", "from must lie", id="too-early"),
    ],
)  # fmt: skip
async def test_points_series_refuses_a_range_it_cannot_answer(
    gw: Gateway, start: str, end: str, interval: str, message: str
) -> None:
    await enroll(gw, "ada")
    response = await gw.graphql(
        SERIES, {"from": start, "to": end, "interval": interval}, await gw.token()
    )
    assert response.status == 200 and response.codes == ["BAD_USER_INPUT"], response.body
    assert message in response.body["errors"][0]["message"]
    assert response.body["data"] is None
