"""A store identity provider on a loopback port: serves its JWKS, signs member tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

ISSUER = "https://shop.example/"
AUDIENCE = "loyalty"


class IdentityProvider:
    def __init__(self) -> None:
        self.keys: list[RSAKey | ECKey] = [RSAKey.generate_key(2048, private=True, auto_kid=True)]
        self.fetches = 0
        self.status = 200
        self.url = ""

    def rotate(self) -> None:
        self.keys.append(ECKey.generate_key("P-256", private=True, auto_kid=True))

    def token(self, sub: str = "cust-1", key_index: int = -1, **overrides: Any) -> str:
        key = self.keys[key_index]
        now = datetime.now(UTC)
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": sub,
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(minutes=5)).timestamp()),
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
    async def serving(self) -> AsyncIterator[IdentityProvider]:
        app = web.Application()
        app.router.add_get("/.well-known/jwks.json", self._jwks)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/.well-known/jwks.json"
        try:
            yield self
        finally:
            await runner.cleanup()
