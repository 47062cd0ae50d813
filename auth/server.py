"""The OAuth2 authorization server's logic: clients, client credentials, revocation,
introspection, and the signing key every replica shares. HTTP lives in the gateway."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from auth import scopes as scope_names
from auth.models import OAuthClient, RevokedToken, StoredSigningKey
from auth.secrets import hash_secret, new_secret, verify_secret
from auth.tokens import AccessToken, InvalidToken, SigningKey, TokenIssuer

# Checked against when the client id is unknown, so both paths cost one scrypt.
_DUMMY_HASH = hash_secret(secrets.token_urlsafe(16))


class InvalidScope(ValueError):
    """A token request for scopes the client does not have (RFC 6749 `invalid_scope`)."""


@dataclass(frozen=True)
class ClientCredentials:
    client_id: str
    client_secret: str


async def load_signing_key(session: AsyncSession, key_pem: bytes | None) -> SigningKey:
    """The configured key (`LOYALTY_SIGNING_KEY_FILE`), or the key kept in the database,
    made on first start."""
    if key_pem is not None:
        return SigningKey.from_pem(key_pem)
    stored = await session.scalar(select(StoredSigningKey).order_by(StoredSigningKey.created_at))
    if stored is not None:
        return SigningKey.from_pem(stored.private_pem.encode())
    key = SigningKey.generate()
    try:
        async with session.begin_nested():
            session.add(
                StoredSigningKey(
                    kid=key.kid, private_pem=key.to_pem().decode(), created_at=datetime.now(UTC)
                )
            )
    except IntegrityError:  # pragma: no cover - another replica won the race just now
        pass
    stored = await session.scalar(select(StoredSigningKey).order_by(StoredSigningKey.created_at))
    assert stored is not None
    return SigningKey.from_pem(stored.private_pem.encode())


class AuthorizationServer:
    def __init__(self, tokens: TokenIssuer) -> None:
        self.tokens = tokens

    async def create_client(
        self, session: AsyncSession, program_id: str, name: str, scopes: frozenset[str]
    ) -> ClientCredentials:
        client_id = "cli_" + secrets.token_urlsafe(12)
        secret = new_secret()
        session.add(
            OAuthClient(
                client_id=client_id,
                program_id=program_id,
                name=name,
                secret_hash=hash_secret(secret),
                scopes=scope_names.render(scopes),
                active=True,
                created_at=datetime.now(UTC),
            )
        )
        await session.flush()
        return ClientCredentials(client_id, secret)

    async def authenticate(
        self, session: AsyncSession, client_id: str, secret: str
    ) -> OAuthClient | None:
        client = await session.get(OAuthClient, client_id) if len(client_id) <= 64 else None
        if client is None or not client.active:
            verify_secret(secret, _DUMMY_HASH)
            return None
        return client if verify_secret(secret, client.secret_hash) else None

    def issue(self, client: OAuthClient, requested: str | None) -> tuple[str, AccessToken]:
        """A token for the requested scopes (all of the client's when none are named)."""
        allowed = frozenset(client.scopes.split())
        try:
            wanted = scope_names.parse(requested) if requested else allowed
        except scope_names.UnknownScope as exc:
            raise InvalidScope(str(exc)) from None
        if not wanted <= allowed:
            raise InvalidScope(
                "scope(s) not granted to this client: "
                + scope_names.render(frozenset(wanted - allowed))
            )
        return self.tokens.mint(client.client_id, client.program_id, wanted)

    async def is_revoked(self, session: AsyncSession, jti: str) -> bool:
        return await session.get(RevokedToken, jti) is not None

    async def verify(self, session: AsyncSession, token: str) -> AccessToken:
        """A token of ours, unexpired and not revoked; `InvalidToken` otherwise."""
        claims = self.tokens.verify(token)
        if await self.is_revoked(session, claims.jti):
            raise InvalidToken("revoked")
        return claims

    async def revoke(self, session: AsyncSession, client: OAuthClient, token: str) -> None:
        """RFC 7009: revoke a token of this client; anything else is silently ignored."""
        try:
            claims = self.tokens.verify(token)
        except InvalidToken:
            return
        if claims.client_id != client.client_id:
            return
        if await session.get(RevokedToken, claims.jti) is None:
            session.add(RevokedToken(jti=claims.jti, expires_at=claims.expires_at))
            await session.flush()

    async def introspect(
        self, session: AsyncSession, client: OAuthClient, token: str
    ) -> dict[str, Any]:
        """RFC 7662: what the token grants, for a client of the same program."""
        try:
            claims = await self.verify(session, token)
        except InvalidToken:
            return {"active": False}
        if claims.program_id != client.program_id:
            return {"active": False}
        return {
            "active": True,
            "scope": scope_names.render(claims.scopes),
            "client_id": claims.client_id,
            "sub": claims.subject,
            "program": claims.program_id,
            "token_type": "Bearer",
            "iss": self.tokens.issuer,
            "aud": self.tokens.issuer,
            "jti": claims.jti,
            "iat": int(claims.issued_at.timestamp()),
            "exp": int(claims.expires_at.timestamp()),
        }
