"""Partner tokens are checked in memory (the signature once per token, revocations from
a list held in memory), and a revocation still takes effect: at once in the process that
revoked, within the poll interval on another replica, and an expired token is refused
though its check was remembered."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import aiohttp
import pytest

from auth import repository, scopes
from tests.support.gateway import Gateway, running_gateway

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

READ = "{ rewards(first: 1) { edges { node { id } } } }"


async def client_token(gw: Gateway) -> tuple[str, dict[str, str]]:
    async with gw.database.transaction() as session:
        client = await gw.app.state.authorization.create_client(
            session, "test", "till", frozenset({scopes.REWARDS_READ})
        )
    auth = {"Authorization": aiohttp.encode_basic_auth(client.client_id, client.client_secret)}
    form = {"grant_type": "client_credentials"}
    async with gw.http.post(gw.url + "/oauth/token", data=form, headers=auth) as response:
        assert response.status == 200, await response.text()
        return str((await response.json())["access_token"]), auth


async def test_a_token_revoked_here_is_refused_on_the_next_request(gw: Gateway) -> None:
    token, auth = await client_token(gw)
    assert (await gw.graphql(READ, None, token)).status == 200  # checked, remembered
    async with gw.http.post(gw.url + "/oauth/revoke", data={"token": token}, headers=auth) as r:
        assert r.status == 200
    refused = await gw.graphql(READ, None, token)
    assert refused.status == 401 and refused.codes == ["UNAUTHENTICATED"], refused.body


async def test_a_token_revoked_by_another_replica_is_refused_within_the_poll(
    database_url: str,
) -> None:
    async with running_gateway(database_url, settings={"revocation_check": 0.2}) as gw:
        token, _ = await client_token(gw)
        assert (await gw.graphql(READ, None, token)).status == 200
        claims = gw.app.state.authorization.tokens.verify(token)
        # What another replica's /oauth/revoke writes; its announcement is lost here.
        async with gw.database.transaction() as session:
            await repository.revoke(session, claims.jti, claims.expires_at)
        assert (await gw.graphql(READ, None, token)).status == 200  # not read yet
        await asyncio.sleep(0.6)  # three polls
        assert (await gw.graphql(READ, None, token)).status == 401


async def test_a_token_announced_revoked_on_the_bus_is_refused_at_once(gw: Gateway) -> None:
    token, _ = await client_token(gw)
    assert (await gw.graphql(READ, None, token)).status == 200
    claims = gw.app.state.authorization.tokens.verify(token)
    await gw.app.state.bus.publish_revocation(claims.jti)  # as another replica announces it
    assert (await gw.graphql(READ, None, token)).status == 401


async def test_an_expired_token_is_refused_though_its_check_was_remembered(gw: Gateway) -> None:
    token, _ = await client_token(gw)
    assert (await gw.graphql(READ, None, token)).status == 200
    tokens = gw.app.state.authorization.tokens
    clock = tokens.clock
    tokens.clock = lambda: clock() + tokens.lifetime + timedelta(seconds=1)
    try:
        refused = await gw.graphql(READ, None, token)
    finally:
        tokens.clock = clock
    assert refused.status == 401 and refused.codes == ["UNAUTHENTICATED"], refused.body
