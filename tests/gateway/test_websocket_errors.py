"""Errors over the WebSocket are coded and masked as over HTTP (`schema.errors`): a
subscription whose events fail is INTERNAL with a request id the log carries, never the
exception's text; a document that is not valid or passes a limit has the code it has
over HTTP; no message names what the schema holds when introspection is off."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from events.bus import Event
from ledger.models import Member
from tests.conftest import sqlite_url
from tests.support.gateway import Gateway, running_gateway
from tests.support.live import POINTS_CHANGED, hub_of, initialised, raw_socket, receive, send, until
from tests.support.operations import enroll

DEEP = "subscription { pointsChanged { memberId " + "{ a " * 10 + "}" * 11 + " }"
ALIASES = (
    "subscription { pointsChanged { " + " ".join(f"a{n}: memberId" for n in range(31)) + " } }"
)
REPEATS = "subscription { pointsChanged { " + "memberId " * 30 + "} }"
TOKENS = "subscription { pointsChanged { " + "memberId " * 2001 + "} }"


@pytest.fixture
async def gw(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[Gateway]:
    url = sqlite_url(sqlite_template, tmp_path)
    async with running_gateway(url, introspection=False) as gateway:
        await enroll(gateway, "ada")
        yield gateway
        await until(lambda: hub_of(gateway).stats.subscriptions == 0)


def _subscribe(query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": "1", "type": "subscribe", "payload": {"query": query, "variables": variables}}


async def _first_errors(gw: Gateway, query: str, variables: dict[str, Any] | None = None) -> Any:
    async with raw_socket(gw.url) as socket:
        await initialised(socket, gw.member_token("ada"))
        await send(socket, _subscribe(query, variables))
        answer = await receive(socket)
        assert answer["type"] == "error", answer
        assert answer["id"] == "1"
        return answer["payload"]


async def _member_id(gw: Gateway, customer: str) -> int:
    async with gw.database.reading() as session:
        found = await session.scalar(select(Member.id).where(Member.customer_id == customer))
    assert found is not None
    return int(found)


@pytest.mark.parametrize(
    "payload",
    [
        {"memberId": "1"},  # KeyError: a field of the event missing
        {"memberId": "1", "kind": "BOGUS", "delta": 1, "available": 1, "pending": 0,
         "held": 0, "tier": "Bronze", "occurredAt": "2026-03-02T15:00:00+00:00"},  # ValueError
    ],
    ids=["key-error", "value-error"],
)  # fmt: skip
async def test_an_event_that_fails_is_internal_with_the_request_id(
    gw: Gateway, payload: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    member = await _member_id(gw, "ada")
    async with raw_socket(gw.url) as socket:
        await initialised(socket, gw.member_token("ada"))
        await send(socket, _subscribe(POINTS_CHANGED))
        await until(lambda: hub_of(gw).stats.subscriptions == 1)
        with caplog.at_level(logging.ERROR, logger="loyalty.graphql"):
            event = Event(10**9, "test", "points.earned", member, payload)
            await gw.app.state.bus.publish([event])
            answer = await receive(socket)
        assert answer["type"] == "next", answer
        assert answer["payload"]["data"] is None
        [error] = answer["payload"]["errors"]
        request_id = error["extensions"]["requestId"]
        assert error == {
            "message": "Internal error",
            "extensions": {"code": "INTERNAL", "requestId": request_id},
        }
        assert len(request_id) == 32
        logged = [r.getMessage() for r in caplog.records if request_id in r.getMessage()]
        assert len(logged) == 1 and "unexpected error" in logged[0]
        assert await receive(socket) == {"id": "1", "type": "complete"}


@pytest.mark.parametrize(
    ("query", "variables", "codes"),
    [
        ("subscription { pointsChanged { nope } }", None, ["GRAPHQL_VALIDATION_FAILED"]),
        ("subscription { pointsChanged { memberId ", None, ["GRAPHQL_PARSE_FAILED"]),
        (POINTS_CHANGED, {"member": {"customerId": 7}}, ["BAD_USER_INPUT"]),
        (ALIASES, None, ["QUERY_TOO_COMPLEX"]),
        (REPEATS, None, ["QUERY_TOO_COMPLEX"]),
        (TOKENS, None, ["QUERY_TOO_COMPLEX"]),
    ],
    ids=["unknown-field", "syntax", "bad-variable", "aliases", "repeats", "tokens"],
)
async def test_a_refused_document_has_the_code_it_has_over_http(
    gw: Gateway, query: str, variables: dict[str, Any] | None, codes: list[str]
) -> None:
    errors = await _first_errors(gw, query, variables)
    assert [e["extensions"]["code"] for e in errors] == codes
    over_http = await gw.graphql(query, variables, gw.member_token("ada"))
    assert over_http.codes == codes
    assert hub_of(gw).stats.subscriptions == 0


async def test_too_deep_a_subscription_is_too_complex(gw: Gateway) -> None:
    errors = await _first_errors(gw, DEEP)
    codes = {e["extensions"]["code"] for e in errors}
    assert "QUERY_TOO_COMPLEX" in codes
    assert codes <= {"QUERY_TOO_COMPLEX", "GRAPHQL_VALIDATION_FAILED"}


async def test_no_message_suggests_a_field_when_introspection_is_off(gw: Gateway) -> None:
    errors = await _first_errors(gw, "subscription { pointsChanged { memberI } }")
    assert errors == [
        {
            "message": "Cannot query field 'memberI' on type 'PointsEvent'.",
            "locations": [{"line": 1, "column": 32}],
            "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"},
        }
    ]
