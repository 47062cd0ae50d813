"""The authorization server on the real databases: clients, scopes, revocation,
introspection and the shared signing key."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from auth.models import OAuthClient, StoredSigningKey
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


async def authenticate(
    database: Database, server: AuthorizationServer, client_id: str, secret: str
) -> OAuthClient | None:
    async with database.reading() as session:
        return await server.authenticate(session, client_id, secret)


async def test_secrets_are_stored_hashed_and_checked(
    database: Database, server: AuthorizationServer
) -> None:
    creds = await client(database, server)
    async with database.reading() as session:
        row = await session.get(OAuthClient, creds.client_id)
        assert row is not None
        assert creds.client_secret not in row.secret_hash
        assert (row.program_id, row.scopes) == ("acme", "members:read points:write rewards:redeem")
    assert await authenticate(database, server, creds.client_id, creds.client_secret) is not None
    assert await authenticate(database, server, creds.client_id, "wrong") is None
    assert await authenticate(database, server, "cli_nobody", creds.client_secret) is None
    assert await authenticate(database, server, "x" * 500, "y") is None


async def test_a_token_asks_for_a_subset_of_the_client_scopes(
    database: Database, server: AuthorizationServer
) -> None:
    creds = await client(database, server)
    row = await authenticate(database, server, creds.client_id, creds.client_secret)
    assert row is not None
    _, every = server.issue(row, None)
    assert every.scopes == TILL_SCOPES
    _, narrow = server.issue(row, "points:write")
    assert (narrow.scopes, narrow.program_id) == (frozenset({"points:write"}), "acme")
    with pytest.raises(InvalidScope, match="points:adjust"):
        server.issue(row, "points:write points:adjust")
    with pytest.raises(InvalidScope, match="unknown"):
        server.issue(row, "root")


async def test_revoked_tokens_are_refused_before_they_expire(
    database: Database, server: AuthorizationServer
) -> None:
    mine, theirs = await client(database, server), await client(database, server)
    row = await authenticate(database, server, mine.client_id, mine.client_secret)
    other = await authenticate(database, server, theirs.client_id, theirs.client_secret)
    assert row is not None and other is not None
    token, _ = server.issue(row, None)
    async with database.transaction() as session:
        await server.revoke(session, other, token)  # not theirs to revoke: ignored
        await server.revoke(session, row, "garbage")  # ignored, as RFC 7009 says
    async with database.reading() as session:
        assert (await server.verify(session, token)).client_id == mine.client_id
    async with database.transaction() as session:
        await server.revoke(session, row, token)
        await server.revoke(session, row, token)  # twice is fine
    async with database.reading() as session:
        with pytest.raises(InvalidToken, match="revoked"):
            await server.verify(session, token)


async def test_introspection_answers_for_the_same_program_only(
    database: Database, server: AuthorizationServer
) -> None:
    till, partner = await client(database, server), await client(database, server, "other")
    row = await authenticate(database, server, till.client_id, till.client_secret)
    foreign = await authenticate(database, server, partner.client_id, partner.client_secret)
    assert row is not None and foreign is not None
    token, claims = server.issue(row, "members:read")
    async with database.reading() as session:
        answer = await server.introspect(session, row, token)
        assert answer == {
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
        }
        assert await server.introspect(session, foreign, token) == {"active": False}
        assert await server.introspect(session, row, "nonsense") == {"active": False}


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
