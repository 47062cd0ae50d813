"""A member cannot tell another member's hold from one that does not exist: releasing
either answers the same code and message, keeps the same idempotency record, replays it
the same way, and leaves the other member's hold as it was."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from ledger.models import Hold, HoldStatus, IdempotencyRecord
from tests.support.gateway import Gateway, running_gateway

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

RELEASE = """
mutation($i: ReleasePointsInput!) {
  releasePoints(input: $i) { hold { id status } member { id } userErrors { code message field } }
}"""


@pytest.fixture
async def gw(database_url: str) -> AsyncIterator[Gateway]:
    async with running_gateway(database_url) as gateway:
        yield gateway


async def test_another_members_hold_answers_as_a_missing_one(gw: Gateway) -> None:
    for customer in ("ada", "bob"):
        await gw.partner(
            "mutation($i: EnrollMemberInput!) { enrollMember(input: $i) { userErrors { code } } }",
            {"i": {"idempotencyKey": customer, "customerId": customer}},
        )
    held = await gw.partner(
        "mutation($i: HoldPointsInput!) "
        "{ holdPoints(input: $i) { hold { id } userErrors { code } } }",
        {
            "i": {
                "idempotencyKey": "h",
                "member": {"customerId": "ada"},
                "points": 40,
                "orderId": "c",
            }
        },
    )
    ada_hold = held["holdPoints"]["hold"]["id"]
    missing = str(int(ada_hold) + 1000)
    bob = gw.member_token("bob")

    answers = {}
    for name, hold_id in (("ada's", ada_hold), ("missing", missing)):
        first = await gw.graphql(RELEASE, {"i": {"idempotencyKey": name, "holdId": hold_id}}, bob)
        again = await gw.graphql(RELEASE, {"i": {"idempotencyKey": name, "holdId": hold_id}}, bob)
        assert first.status == again.status == 200
        assert first.body == again.body  # replayed from the key
        answers[name] = first.body["data"]
    assert (
        answers["ada's"]
        == answers["missing"]
        == {
            "releasePoints": {
                "hold": None,
                "member": None,
                "userErrors": [
                    {"code": "UNKNOWN_HOLD", "message": "no such hold", "field": ["holdId"]}
                ],
            }
        }
    )
    async with gw.database.reading() as session:
        records = {
            record.key: (record.client_id, record.operation, record.response)
            for record in await session.scalars(
                select(IdempotencyRecord).where(IdempotencyRecord.client_id == "member:bob")
            )
        }
        hold = await session.get(Hold, int(ada_hold))
    assert set(records) == {"ada's", "missing"}
    assert records["ada's"] == records["missing"]
    assert hold is not None and hold.status == HoldStatus.HELD

    # Ada herself releases it.
    mine = await gw.graphql(
        RELEASE, {"i": {"idempotencyKey": "r", "holdId": ada_hold}}, gw.member_token("ada")
    )
    assert mine.data["releasePoints"]["hold"] == {"id": ada_hold, "status": "RELEASED"}
    assert mine.data["releasePoints"]["userErrors"] == []
