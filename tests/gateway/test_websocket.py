"""The WebSocket's refusals, each with its close code or error, nothing left behind: no
token, a forged or expired one, the legacy protocol, another member, another program, a
missing scope, a foreign origin, one subscription over the cap, a silent client, a
subscriber too slow, a token revoked or expiring while subscribed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from auth import scopes
from tests.conftest import sqlite_url
from tests.support.gateway import Gateway, running_gateway
from tests.support.live import (
    POINTS_CHANGED,
    closed_with,
    hub_of,
    initialised,
    raw_socket,
    receive,
    send,
    until,
)
from tests.support.operations import buy, enroll, line

ORIGIN = "https://shop.example"
BATCH = "mutation($i: [PurchaseInput!]!) { recordPurchases(inputs: $i) { userErrors { code } } }"
LIMITS = {
    "allowed_origins": ORIGIN,
    "max_subscriptions": 2,
    "connection_init_timeout": 0.5,
    "subscriber_queue": 4,
}


@pytest.fixture
async def gw(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[Gateway]:
    url = sqlite_url(sqlite_template, tmp_path)
    async with running_gateway(url, other_programs=["other"], settings=LIMITS) as gateway:
        await enroll(gateway, "ada")
        await enroll(gateway, "bob")
        yield gateway
        await until(lambda: _open(gateway) == 0)
        assert hub_of(gateway).stats.subscriptions == 0


def _open(gw: Gateway) -> float:
    return float(gw.app.state.metrics.connections._value.get())


def subscribe(id_: str, member: dict[str, Any] | None = None) -> dict[str, Any]:
    variables = {"member": member} if member else {}
    return {
        "id": id_,
        "type": "subscribe",
        "payload": {"query": POINTS_CHANGED, "variables": variables},
    }


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Basic YWRhOnNlY3JldA=="},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": 42},
    ],
    ids=["none", "empty", "basic", "forged", "not-a-string"],
)
async def test_a_missing_or_bad_token_closes_with_4403(gw: Gateway, payload: Any) -> None:
    async with raw_socket(gw.url) as socket:
        await send(socket, {"type": "connection_init", "payload": payload})
        assert await closed_with(socket) == (4403, "Forbidden")


async def test_an_expired_or_foreign_token_closes_with_4403(gw: Gateway) -> None:
    expired = gw.identity.token(sub="ada", lifetime=timedelta(minutes=-1))
    partner = await gw.token({scopes.MEMBERS_READ})
    other_issuer = partner[:-4] + ("AAAA" if not partner.endswith("AAAA") else "BBBB")
    for token in (expired, other_issuer):
        async with raw_socket(gw.url) as socket:
            await send(
                socket, {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
            )
            assert await closed_with(socket) == (4403, "Forbidden")


async def test_subscribing_before_connection_init_closes_with_4401(gw: Gateway) -> None:
    async with raw_socket(gw.url) as socket:
        await send(socket, subscribe("1"))
        assert await closed_with(socket) == (4401, "Unauthorized")


async def test_the_legacy_protocol_is_refused(gw: Gateway) -> None:
    async with raw_socket(gw.url, subprotocols=("graphql-ws",)) as socket:
        assert socket.subprotocol is None
        assert await closed_with(socket) == (4406, "Subprotocol not acceptable")


async def test_a_foreign_origin_is_refused_at_the_handshake(gw: Gateway) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with raw_socket(gw.url, origin="https://evil.example"):
            pass
    assert refused.value.response.status_code == 403
    async with raw_socket(gw.url, origin=ORIGIN) as socket:  # listed
        await initialised(socket, gw.member_token("ada"))
    async with raw_socket(gw.url, origin=gw.url) as socket:  # the gateway's own pages
        await initialised(socket, gw.member_token("ada"))


async def test_a_silent_client_is_closed_with_4408(gw: Gateway) -> None:
    async with raw_socket(gw.url) as socket:
        assert await closed_with(socket) == (4408, "Connection initialisation timeout")


async def _refusal(gw: Gateway, token: str, member: dict[str, Any] | None) -> list[Any]:
    async with raw_socket(gw.url) as socket:
        await initialised(socket, token)
        await send(socket, subscribe("1", member))
        answer = await receive(socket)
        assert answer["type"] == "error", answer
        assert answer["id"] == "1"
        return [error.get("extensions", {}).get("code") for error in answer["payload"]]


async def test_a_member_watches_only_itself(gw: Gateway) -> None:
    ada = gw.member_token("ada")
    assert await _refusal(gw, ada, {"customerId": "bob"}) == ["FORBIDDEN"]


async def test_another_programs_member_is_not_found(gw: Gateway) -> None:
    ada_id = (await gw.partner('{ member(ref: {customerId: "ada"}) { id } }'))["member"]["id"]
    other = await gw.token({scopes.MEMBERS_READ}, program="other")
    assert await _refusal(gw, other, {"id": ada_id}) == ["UNKNOWN_MEMBER"]
    assert await _refusal(gw, other, {"customerId": "ada"}) == ["UNKNOWN_MEMBER"]


async def test_a_partner_needs_members_read(gw: Gateway) -> None:
    writer = await gw.token({scopes.POINTS_WRITE})
    assert await _refusal(gw, writer, {"customerId": "ada"}) == ["FORBIDDEN"]
    reader = await gw.token({scopes.MEMBERS_READ})
    assert await _refusal(gw, reader, None) == ["BAD_USER_INPUT"]


async def test_one_subscription_over_the_cap_is_refused(gw: Gateway) -> None:
    async with raw_socket(gw.url) as socket:
        await initialised(socket, gw.member_token("ada"))
        await send(socket, subscribe("1"))
        await send(socket, subscribe("2"))
        await until(lambda: hub_of(gw).stats.subscriptions == 2)
        await send(socket, subscribe("3"))
        answer = await receive(socket)
        assert answer["id"] == "3"
        assert answer["type"] == "error"
        assert answer["payload"] == [
            {"message": "Subscription limit reached", "extensions": {"code": "QUERY_TOO_COMPLEX"}}
        ]
        await buy(gw, "ada", "o-1", line("10.00"))
        seen = {(await receive(socket))["id"], (await receive(socket))["id"]}
        assert seen == {"1", "2"}  # the two within the cap still run
        await send(socket, {"id": "1", "type": "complete"})
        await until(lambda: hub_of(gw).stats.subscriptions == 1)


async def test_a_subscriber_that_falls_behind_is_closed_with_4413(gw: Gateway) -> None:
    burst = [
        {
            "idempotencyKey": f"burst-{n}",
            "member": {"customerId": "ada"},
            "orderId": f"burst-{n}",
            "currency": "USD",
            "lines": [line("1.00")],
        }
        for n in range(10)
    ]
    async with raw_socket(gw.url) as socket:
        await initialised(socket, gw.member_token("ada"))
        await send(socket, subscribe("1"))
        await until(lambda: hub_of(gw).stats.subscriptions == 1)
        await gw.partner(BATCH, {"i": burst})  # ten events in one batch, the queue holds 4
        code, reason = await closed_with(socket)
        assert code == 4413
        assert reason == "subscriber too slow: more than 4 events waiting"
    assert hub_of(gw).stats.dropped == 5  # the four queued and the one that did not fit


async def test_a_revoked_token_is_disconnected(gw: Gateway) -> None:
    async with gw.database.transaction() as session:
        client = await gw.app.state.authorization.create_client(
            session, "test", "till", frozenset({scopes.MEMBERS_READ})
        )
    form = {
        "grant_type": "client_credentials",
        "client_id": client.client_id,
        "client_secret": client.client_secret,
    }
    async with gw.http.post(gw.url + "/oauth/token", data=form) as response:
        token = (await response.json())["access_token"]
    async with raw_socket(gw.url) as socket:
        await initialised(socket, token)
        await send(socket, subscribe("1", {"customerId": "ada"}))
        await until(lambda: hub_of(gw).stats.subscriptions == 1)
        async with gw.http.post(gw.url + "/oauth/revoke", data={**form, "token": token}) as done:
            assert done.status == 200
        assert await closed_with(socket, within=3) == (4403, "token revoked")


async def test_a_token_expiring_while_subscribed_is_disconnected(gw: Gateway) -> None:
    short = gw.identity.token(sub="ada", lifetime=timedelta(seconds=2))
    async with raw_socket(gw.url) as socket:
        await initialised(socket, short)
        await send(socket, subscribe("1"))
        await until(lambda: hub_of(gw).stats.subscriptions == 1)
        assert await closed_with(socket, within=5) == (4403, "token expired")
