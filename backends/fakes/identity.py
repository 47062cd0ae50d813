"""A store's identity provider on a loopback port: it signs its members' tokens and
serves its JWKS, as the store's own sign-in service would (`[member_tokens]`).

The demo plays the store with it; the tests use its knobs: `rotate()` adds a key (the
provider rotating), `status` makes the JWKS answer an error, `fetches` counts how often
the gateway asked for the keys.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from aiohttp import web
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from backends.fakes.loopback import loopback
from ledger.program import MemberTokens

ISSUER = "https://shop.example/"
AUDIENCE = "loyalty"


class FakeIdentityProvider:
    """Signs with its newest key; `issuer` defaults to its own loopback address."""

    def __init__(
        self,
        *,
        issuer: str | None = None,
        audience: str = AUDIENCE,
        algorithm: Literal["RS256", "ES256"] = "RS256",
    ) -> None:
        first: RSAKey | ECKey = (
            RSAKey.generate_key(2048, private=True, auto_kid=True)
            if algorithm == "RS256"
            else ECKey.generate_key("P-256", private=True, auto_kid=True)
        )
        self.keys: list[RSAKey | ECKey] = [first]
        self.audience = audience
        self.fetches = 0
        self.status = 200
        self.base = ""
        self._issuer = issuer

    @property
    def issuer(self) -> str:
        return self._issuer or f"{self.base}/"

    @property
    def url(self) -> str:
        """The JWKS URL."""
        return f"{self.base}/.well-known/jwks.json"

    def member_tokens(self, customer_claim: str = "sub") -> MemberTokens:
        """The `[member_tokens]` section of a program whose members sign in here."""
        return MemberTokens(
            issuer=self.issuer,
            audience=self.audience,
            jwks_url=self.url,
            customer_claim=customer_claim,
        )

    def rotate(self) -> None:
        self.keys.append(ECKey.generate_key("P-256", private=True, auto_kid=True))

    def token(
        self,
        sub: str = "cust-1",
        key_index: int = -1,
        lifetime: timedelta = timedelta(minutes=5),
        **overrides: Any,
    ) -> str:
        """A member token; a claim overridden with None is left out."""
        key = self.keys[key_index]
        now = datetime.now(UTC)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": sub,
            "iat": int(now.timestamp()),
            "exp": int((now + lifetime).timestamp()),
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        alg = "RS256" if isinstance(key, RSAKey) else "ES256"
        return jwt.encode({"alg": alg, "kid": key.kid}, claims, key, algorithms=[alg])

    async def _jwks(self, request: web.Request) -> web.Response:
        self.fetches += 1
        if self.status != 200:
            return web.json_response({"error": "down"}, status=self.status)
        return web.json_response({"keys": [key.as_dict(private=False) for key in self.keys]})

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[FakeIdentityProvider]:
        app = web.Application()
        app.router.add_get("/.well-known/jwks.json", self._jwks)
        async with loopback(app) as self.base:
            yield self
