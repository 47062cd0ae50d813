"""The authorization server on the real databases: clients, scopes, revocation,
introspection and the shared signing key."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from sqlalchemy import func, select

from auth.models import OAuthClient, StoredSigningKey
from auth.protocol import Answer, Endpoint
from auth.server import AuthorizationServer, ClientCredentials, InvalidScope, load_signing_key
from auth.tokens import InvalidToken, SigningKey, TokenIssuer
from ledger.db import Database

ISSUER = "http://127.0.0.1:8000"
TILL_SCOPES = frozenset({"points:write", "rewards:redeem", "members:read"})


@pytest.fixture
async def server(database: Database) -> AuthorizationServer:
    async with database.transaction() as session:
        key = await load_signing_key(session, None)
    return AuthorizationServer(TokenIssuer(key, ISSUER))


async def client(
    database: Database, server: AuthorizationServer, program: str = "acme"
) -> ClientCredentials:
    async with database.transaction() as session:
        return await server.create_client(session, program, "Till 7", TILL_SCOPES)


async def ask(
    database: Database,
    server: AuthorizationServer,
    endpoint: Endpoint,
    creds: ClientCredentials,
    secret: str | None = None,
    **form: str,
) -> Answer:
    """A request to `endpoint` authenticated with HTTP Basic (`secret` replaces the
    client's own)."""
    raw = f"{creds.client_id}:{secret or creds.client_secret}".encode()
    headers = {"Authorization": "Basic " + base64.b64encode(raw).decode()}
    return await server.respond(database, endpoint, ISSUER + "/oauth/x", form, headers)


async def token(
    database: Database, server: AuthorizationServer, creds: ClientCredentials, **form: str
) -> str:
    answer = await ask(database, server, "token", creds, grant_type="client_credentials", **form)
    assert answer.status == 200, answer.body
    return str(answer.body["access_token"])


async def test_secrets_are_stored_hashed_and_checked(
    database: Database, server: AuthorizationServer
) -> None:
    creds = await client(database, server)
    async with database.reading() as session:
        row = await session.get(OAuthClient, creds.client_id)
        assert row is not None
        assert creds.client_secret not in row.secret_hash
        assert (row.program_id, row.scopes) == ("acme", "members:read points:write rewards:redeem")
    grant = {"grant_type": "client_credentials"}
    assert (await ask(database, server, "token", creds, **grant)).status == 200
    for wrong in (
        ClientCredentials(creds.client_id, "wrong"),
        ClientCredentials("cli_nobody", creds.client_secret),
        ClientCredentials("x" * 500, "y"),
    ):
        answer = await ask(database, server, "token", wrong, **grant)
        assert (answer.status, answer.body["error"]) == (401, "invalid_client")


async def test_a_token_asks_for_a_subset_of_the_client_scopes(
    database: Database, server: AuthorizationServer
) -> None:
    creds = await client(database, server)
    every = server.tokens.verify(await token(database, server, creds))
    assert every.scopes == TILL_SCOPES
    narrow = server.tokens.verify(await token(database, server, creds, scope="points:write"))
    assert (narrow.scopes, narrow.program_id) == (frozenset({"points:write"}), "acme")
    for asked, reason in (("points:write points:adjust", "points:adjust"), ("root", "unknown")):
        answer = await ask(
            database, server, "token", creds, grant_type="client_credentials", scope=asked
        )
        assert (answer.status, answer.body["error"]) == (400, "invalid_scope")
        assert reason in str(answer.body["error_description"])
    async with database.reading() as session:
        row = await session.get(OAuthClient, creds.client_id)
    assert row is not None
    with pytest.raises(InvalidScope, match="points:adjust"):
        server.issue(row, "points:write points:adjust")
    _, issued = server.issue(row, "points:write")
    assert issued.scopes == {"points:write"}


async def test_revoked_tokens_are_refused_before_they_expire(
    database: Database, server: AuthorizationServer
) -> None:
    mine, theirs = await client(database, server), await client(database, server)
    issued = await token(database, server, mine)
    refused = await ask(database, server, "revocation", theirs, token=issued)
    assert (refused.status, refused.body["error"]) == (400, "invalid_grant")  # not theirs
    ignored = await ask(database, server, "revocation", mine, token="garbage")
    assert (ignored.status, ignored.body) == (200, {})  # RFC 7009: not a token of ours
    async with database.reading() as session:
        assert (await server.verify(session, issued)).client_id == mine.client_id
    for _ in range(2):  # twice is fine
        answer = await ask(database, server, "revocation", mine, token=issued)
        assert (answer.status, answer.body) == (200, {})
    async with database.reading() as session:
        with pytest.raises(InvalidToken, match="revoked"):
            await server.verify(session, issued)


async def test_introspection_answers_for_the_same_program_only(
    database: Database, server: AuthorizationServer
) -> None:
    till, partner = await client(database, server), await client(database, server, "other")
    issued = await token(database, server, till, scope="members:read")
    claims = server.tokens.verify(issued)
    answer = await ask(database, server, "introspection", till, token=issued)
    assert (answer.status, answer.body) == (
        200,
        {
            "active": True,
            "scope": "members:read",
            "client_id": till.client_id,
            "sub": till.client_id,
            "program": "acme",
            "token_type": "Bearer",
            "iss": ISSUER,
            "aud": ISSUER,
            "jti": claims.jti,
            "iat": int(claims.issued_at.timestamp()),
            "exp": int(claims.expires_at.timestamp()),
        },
    )
    foreign = await ask(database, server, "introspection", partner, token=issued)
    assert foreign.body == {"active": False}
    nonsense = await ask(database, server, "introspection", till, token="nonsense")
    assert nonsense.body == {"active": False}
    missing = await ask(database, server, "introspection", till)
    assert (missing.status, missing.body["error"]) == (400, "invalid_request")


async def test_the_signing_key_is_made_once_and_shared(database: Database) -> None:
    async with database.transaction() as session:
        first = await load_signing_key(session, None)
    async with database.transaction() as session:
        second = await load_signing_key(session, None)
        assert await session.scalar(select(func.count()).select_from(StoredSigningKey)) == 1
    assert first.kid == second.kid
    configured = SigningKey.generate()
    async with database.transaction() as session:
        assert (await load_signing_key(session, configured.to_pem())).kid == configured.kid


async def test_every_refused_secret_costs_one_key_derivation(
    database: Database, server: AuthorizationServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong secret, an unknown id, an over-long id and a deactivated client all cost
    one scrypt, so the timing does not tell which client ids exist."""
    creds, retired = await client(database, server), await client(database, server)
    async with database.transaction() as session:
        row = await session.get(OAuthClient, retired.client_id)
        assert row is not None
        row.active = False
    derivations: list[int] = []
    real = hashlib.scrypt

    def counting(*args: Any, **kwargs: Any) -> bytes:
        derivations.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", counting)
    for who in (
        ClientCredentials(creds.client_id, "wrong"),
        ClientCredentials("cli_nobody", "wrong"),
        ClientCredentials("x" * 500, "wrong"),
        retired,
    ):
        derivations.clear()
        answer = await ask(database, server, "token", who, grant_type="client_credentials")
        assert (answer.status, answer.body["error"]) == (401, "invalid_client")
        assert len(derivations) == 1, who
    derivations.clear()
    granted = await ask(database, server, "token", creds, grant_type="client_credentials")
    assert granted.status == 200
    assert len(derivations) == 1
