"""Who is calling: a partner's client-credentials token, a member's token, or no one.

The `Authenticator` reads the Authorization header: a token whose issuer is the gateway
is checked as one of ours; any other is checked by the member-token verifier of the
program whose identity provider issued it (issuer and audience).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from cachetools import LRUCache

from auth.members import MemberTokenVerifier
from auth.server import AuthorizationServer
from auth.tokens import AccessToken, InvalidToken, peek
from ledger.db import Database

MAX_TOKEN_BYTES = 8 * 1024
VERIFIED_TOKENS = 10_000  # partner tokens whose signature check is remembered


@dataclass(frozen=True)
class Partner:
    """A client-credentials token: a partner, a till, a back office."""

    program_id: str
    client_id: str
    scopes: frozenset[str]
    jti: str = ""


@dataclass(frozen=True)
class Shopper:
    """A member token from the store's identity provider."""

    program_id: str
    customer_id: str


@dataclass(frozen=True)
class Anonymous:
    """No token: reaches `__typename` and introspection, nothing of a program."""


Principal = Partner | Shopper | Anonymous


class Authenticator:
    """Turns the Authorization header into a principal of one program."""

    def __init__(
        self,
        database: Database,
        authorization: AuthorizationServer,
        programs: Collection[str],
        member_verifiers: Mapping[str, MemberTokenVerifier],
    ) -> None:
        self.database = database
        self.authorization = authorization
        self.programs = programs
        self.member_verifiers = member_verifiers
        # A token's signature and claims do not change: checked once, remembered until
        # it expires (checked on every use) in a bounded LRU.
        self._verified: LRUCache[str, AccessToken] = LRUCache(maxsize=VERIFIED_TOKENS)

    async def principal(self, header: str | None) -> Principal:
        """Anonymous without a header; `InvalidToken` for anything but a valid bearer
        token of ours or of a program's identity provider."""
        if not header:
            return Anonymous()
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_BYTES:
            raise InvalidToken("not a bearer token")
        _, claims = peek(token)
        if claims.get("iss") == self.authorization.tokens.issuer:
            return await self._partner(token)
        return await self._member(token, claims)

    async def _partner(self, token: str) -> Partner:
        claims = self._verify(token)
        # In memory: read at start, kept current by revocations here, the bus and the
        # poll (`auth.revocations`); no SQL per request.
        if claims.jti in self.authorization.revocations:
            raise InvalidToken("revoked")
        if claims.program_id not in self.programs:
            raise InvalidToken(f"program {claims.program_id!r} is not served here")
        return Partner(claims.program_id, claims.client_id, claims.scopes, claims.jti)

    def _verify(self, token: str) -> AccessToken:
        tokens = self.authorization.tokens
        claims = self._verified.get(token)
        if claims is not None and claims.expires_at > tokens.clock():
            return claims
        self._verified.pop(token, None)
        claims = tokens.verify(token)  # at the expiry instant, the full check decides
        self._verified[token] = claims
        return claims

    async def _member(self, token: str, claims: Mapping[str, Any]) -> Shopper:
        issuer, audience = claims.get("iss"), claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        for program_id, verifier in self.member_verifiers.items():
            config = verifier.config
            if config.issuer == issuer and config.audience in audiences:
                return Shopper(program_id, await verifier.customer_id(token))
        raise InvalidToken("no program accepts tokens of this issuer and audience")
