"""The program over HTTP: its stats. Exact results, on SQLite and PostgreSQL."""

from __future__ import annotations

from tests.support.gateway import Gateway
from tests.support.operations import enroll


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
