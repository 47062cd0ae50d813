"""The OAuth2 authorization server: partner clients, token requests, revocation and
introspection, and the signing key every replica shares. The protocol is Authlib's
(`auth.protocol`); SQL is in `auth.repository`; HTTP lives in the gateway."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from authlib.oauth2.rfc6749 import OAuth2Error
from sqlalchemy.ext.asyncio import AsyncSession

from auth import repository
from auth import scopes as scope_names
from auth.models import OAuthClient, StoredSigningKey
from auth.protocol import (
    Answer,
    Endpoint,
    FormRequest,
    Preloaded,
    Protocol,
    RegisteredClient,
    claimed_client_ids,
    error_answer,
)
from auth.revocations import Revocations
from auth.scopes import InvalidScope as InvalidScope
from auth.secrets import hash_secret, in_key_worker, new_secret
from auth.tokens import AccessToken, InvalidToken, SigningKey, TokenIssuer, peek
from ledger.db import Database


@dataclass(frozen=True)
class ClientCredentials:
    client_id: str
    client_secret: str


async def load_signing_key(session: AsyncSession, key_pem: bytes | None) -> SigningKey:
    """The configured key (`LOYALTY_SIGNING_KEY_FILE`), or the key kept in the database,
    made on first start."""
    if key_pem is not None:
        return SigningKey.from_pem(key_pem)
    stored = await repository.oldest_signing_key(session)
    if stored is None:
        key = SigningKey.generate()
        await repository.add_signing_key(
            session,
            StoredSigningKey(
                kid=key.kid, private_pem=key.to_pem().decode(), created_at=datetime.now(UTC)
            ),
        )
        stored = await repository.oldest_signing_key(session)
    assert stored is not None
    return SigningKey.from_pem(stored.private_pem.encode())


class AuthorizationServer:
    def __init__(self, tokens: TokenIssuer) -> None:
        self.tokens = tokens
        self.revocations = Revocations(tokens.clock, tokens.lifetime)

    async def create_client(
        self, session: AsyncSession, program_id: str, name: str, scopes: frozenset[str]
    ) -> ClientCredentials:
        client_id = "cli_" + secrets.token_urlsafe(12)
        secret = new_secret()
        await repository.add_client(
            session,
            OAuthClient(
                client_id=client_id,
                program_id=program_id,
                name=name,
                secret_hash=await in_key_worker(hash_secret, secret),
                scopes=scope_names.render(scopes),
                active=True,
                created_at=datetime.now(UTC),
            ),
        )
        return ClientCredentials(client_id, secret)

    def issue(self, client: OAuthClient, requested: str | None) -> tuple[str, AccessToken]:
        """A token for the requested scopes (all of the client's when none are named),
        outside a token request: the demo and the benchmarks."""
        wanted = scope_names.grant(frozenset(client.scopes.split()), requested)
        return self.tokens.mint_for(RegisteredClient(client), scope_names.render(wanted))

    async def is_revoked(self, session: AsyncSession, jti: str) -> bool:
        return await repository.is_revoked(session, jti)

    async def verify(self, session: AsyncSession, token: str) -> AccessToken:
        """A token of ours, unexpired and not revoked; `InvalidToken` otherwise."""
        claims = self.tokens.verify(token)
        if await repository.is_revoked(session, claims.jti):
            raise InvalidToken("revoked")
        return claims

    async def respond(
        self,
        database: Database,
        endpoint: Endpoint,
        uri: str,
        form: dict[str, str],
        headers: Mapping[str, str],
    ) -> Answer:
        """Authlib's answer to a token, introspection or revocation request.

        The client rows and the token's revocation are read first; Authlib then runs in a
        key-derivation worker thread (the secret check is a scrypt); revocations it
        decided on are stored last, in their own transaction."""
        try:
            request = FormRequest(uri, form, headers)
        except OAuth2Error as error:  # insecure transport
            return error_answer(error)
        async with database.reading() as session:
            preloaded = await self._preload(session, endpoint, request)
        answer = await in_key_worker(Protocol(self.tokens, preloaded).answer, endpoint, request)
        if preloaded.revocations:
            async with database.transaction() as session:
                for claims in preloaded.revocations:
                    await repository.revoke(session, claims.jti, claims.expires_at)
            for claims in preloaded.revocations:  # refused here from the next request on
                self.revocations.add(claims.jti, claims.expires_at)
        return answer

    async def _preload(
        self, session: AsyncSession, endpoint: Endpoint, request: FormRequest
    ) -> Preloaded:
        clients: dict[str, OAuthClient] = {}
        for client_id in claimed_client_ids(request.form, request.headers):
            row = await repository.client_by_id(session, client_id)
            if row is not None:
                clients[client_id] = row
        revoked: frozenset[str] = frozenset()
        jti = _jti(request.form.get("token", "")) if endpoint != "token" else None
        if jti is not None and await repository.is_revoked(session, jti):
            revoked = frozenset({jti})
        return Preloaded(clients, revoked)


def _jti(token: str) -> str | None:
    """The `jti` a token claims, unverified: only to look its revocation up."""
    try:
        _, claims = peek(token)
    except InvalidToken:
        return None
    jti: Any = claims.get("jti")
    return jti if isinstance(jti, str) and len(jti) <= 100 else None
