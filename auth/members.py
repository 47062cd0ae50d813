"""Member tokens: JWTs from the store's own identity provider.

Checked against the program's `[member_tokens]`: the issuer and audience exactly, an
unexpired `exp`, a signature by a key of the provider's JWKS (RS256 or ES256 only). The
JWKS is fetched with aiohttp, cached, and fetched again when a token names a key id the
cache does not know (the provider rotated its keys), at most once per `refetch_after`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import aiohttp
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from auth.tokens import InvalidToken, peek
from ledger.program import MemberTokens

ALGORITHMS = ["RS256", "ES256"]
CACHE_FOR = timedelta(minutes=10)
REFETCH_AFTER = timedelta(seconds=30)
FETCH_TIMEOUT = aiohttp.ClientTimeout(total=1.0)
MAX_JWKS_BYTES = 64 * 1024


class IdentityProviderUnavailable(InvalidToken):
    """The provider's JWKS could not be fetched: the token cannot be checked now."""


def _now() -> datetime:
    return datetime.now(UTC)


class MemberTokenVerifier:
    """Verifies one program's member tokens; returns the member's customer id."""

    def __init__(
        self,
        config: MemberTokens,
        http: aiohttp.ClientSession,
        *,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.config = config
        self.http = http
        self.clock = clock
        self._keys: KeySet | None = None
        self._kids: set[str] = set()
        self._fetched_at: datetime | None = None
        self._lock = asyncio.Lock()

    async def customer_id(self, token: str) -> str:
        header, _ = peek(token)
        if header.get("alg") not in ALGORITHMS:
            raise InvalidToken(f"algorithm {header.get('alg')!r} is not accepted")
        keys = await self._keyset(str(header.get("kid", "")))
        try:
            decoded = jwt.decode(token, keys, algorithms=ALGORITHMS)
        except (JoseError, ValueError, TypeError) as exc:
            raise InvalidToken(f"undecodable or badly signed: {exc}") from None
        registry = jwt.JWTClaimsRegistry(
            now=int(self.clock().timestamp()),
            iss={"essential": True, "value": self.config.issuer},
            aud={"essential": True, "value": self.config.audience},
            exp={"essential": True},
        )
        try:
            registry.validate(decoded.claims)
        except JoseError as exc:
            raise InvalidToken(f"claims refused: {exc}") from None
        customer = decoded.claims.get(self.config.customer_claim)
        if isinstance(customer, int) and not isinstance(customer, bool):
            customer = str(customer)
        if not isinstance(customer, str) or not customer or len(customer) > 255:
            raise InvalidToken(f"claim {self.config.customer_claim} does not name a customer")
        return customer

    async def _keyset(self, kid: str) -> KeySet:
        async with self._lock:
            now = self.clock()
            stale = self._fetched_at is None or now - self._fetched_at > CACHE_FOR
            unknown = kid not in self._kids
            may_refetch = self._fetched_at is None or now - self._fetched_at > REFETCH_AFTER
            if stale or (unknown and may_refetch):
                await self._fetch(now)
            if self._keys is None:
                raise IdentityProviderUnavailable("no keys from the identity provider")
            return self._keys

    async def _fetch(self, now: datetime) -> None:
        try:
            async with self.http.get(self.config.jwks_url, timeout=FETCH_TIMEOUT) as response:
                if response.status != 200:
                    raise IdentityProviderUnavailable(f"JWKS answered {response.status}")
                body = await response.content.read(MAX_JWKS_BYTES + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise IdentityProviderUnavailable(f"JWKS unreachable: {exc!r}") from None
        if len(body) > MAX_JWKS_BYTES:
            raise IdentityProviderUnavailable("JWKS too large")
        try:
            data = json.loads(body)
            keys = KeySet.import_key_set(data)
        except (ValueError, TypeError, JoseError) as exc:
            raise IdentityProviderUnavailable(f"JWKS unreadable: {exc}") from None
        self._keys = keys
        self._kids = {str(key.kid) for key in keys.keys if key.kid}
        self._fetched_at = now
