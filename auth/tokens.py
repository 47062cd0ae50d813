"""Access tokens the gateway mints: RFC 9068 JWTs signed with the gateway key.

Verification accepts exactly what `TokenIssuer` mints: our algorithm and key id, the
`at+jwt` type, our issuer and audience, an unexpired `exp`, and a `jti` not revoked.
`alg: none`, HS256 signed with the public key (key confusion), a foreign `kid` or a
token of another type are refused before any claim is read.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from auth import scopes as scope_names

TOKEN_TYPES = {"at+jwt", "application/at+jwt"}
DEFAULT_LIFETIME = timedelta(hours=1)


class InvalidToken(Exception):
    """A token that is not one of ours, or no longer valid. The reason is for logs."""


def peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of a compact JWT, unverified: only to choose the verifier.
    Nothing read here is trusted."""
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("not a JWT")
    try:
        header, claims = (
            json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
            for part in parts[:2]
        )
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidToken("not a JWT") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise InvalidToken("not a JWT")
    return header, claims


class SigningKey:
    """The gateway's private key: RSA (RS256) or EC P-256 (ES256), PKCS#8 PEM."""

    def __init__(self, key: RSAKey | ECKey) -> None:
        self.key = key
        self.algorithm = "RS256" if isinstance(key, RSAKey) else "ES256"
        if isinstance(key, ECKey) and key.curve_name != "P-256":
            raise ValueError("an EC signing key must be on the P-256 curve")
        self.kid = str(key.thumbprint())
        key.ensure_kid()

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(ECKey.generate_key("P-256", private=True))

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        for kind in (RSAKey, ECKey):
            try:
                key = kind.import_key(pem)
            except (JoseError, ValueError, TypeError):
                continue
            if not key.is_private:
                raise ValueError("the signing key must be a private key")
            return cls(key)
        raise ValueError("not a PKCS#8 PEM RSA or EC P-256 private key")

    def to_pem(self) -> bytes:
        return self.key.as_pem(private=True)

    def public_jwk(self) -> dict[str, Any]:
        jwk = dict(self.key.as_dict(private=False))
        jwk.update(kid=self.kid, use="sig", alg=self.algorithm)
        return jwk


@dataclass(frozen=True)
class AccessToken:
    """The verified claims of a gateway access token."""

    subject: str
    client_id: str
    program_id: str
    scopes: frozenset[str]
    jti: str
    issued_at: datetime
    expires_at: datetime


def _now() -> datetime:
    return datetime.now(UTC)


class TokenIssuer:
    """Mints and verifies the gateway's access tokens."""

    def __init__(
        self,
        key: SigningKey,
        issuer: str,
        *,
        lifetime: timedelta = DEFAULT_LIFETIME,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.key = key
        self.issuer = issuer
        self.lifetime = lifetime
        self.clock = clock

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.key.public_jwk()]}

    def mint(
        self, client_id: str, program_id: str, scopes: frozenset[str]
    ) -> tuple[str, AccessToken]:
        issued = self.clock().replace(microsecond=0)
        claims = AccessToken(
            subject=client_id,
            client_id=client_id,
            program_id=program_id,
            scopes=scopes,
            jti=secrets.token_urlsafe(16),
            issued_at=issued,
            expires_at=issued + self.lifetime,
        )
        header = {"alg": self.key.algorithm, "typ": "at+jwt", "kid": self.key.kid}
        payload = {
            "iss": self.issuer,
            "aud": self.issuer,
            "sub": claims.subject,
            "client_id": client_id,
            "program": program_id,
            "scope": scope_names.render(scopes),
            "jti": claims.jti,
            "iat": int(issued.timestamp()),
            "exp": int(claims.expires_at.timestamp()),
        }
        return jwt.encode(header, payload, self.key.key, algorithms=[self.key.algorithm]), claims

    def verify(
        self, token: str, is_revoked: Callable[[str], bool] = lambda jti: False
    ) -> AccessToken:
        """The claims of a valid token of ours, or `InvalidToken`."""
        try:
            decoded = jwt.decode(token, self.key.key, algorithms=[self.key.algorithm])
        except (JoseError, ValueError, TypeError) as exc:
            raise InvalidToken(f"undecodable or badly signed: {exc}") from None
        header, claims = decoded.header, decoded.claims
        if str(header.get("typ", "")).lower() not in TOKEN_TYPES:
            raise InvalidToken("not an access token (typ is not at+jwt)")
        if header.get("kid") != self.key.kid:
            raise InvalidToken("signed with a key that is not ours")
        registry = jwt.JWTClaimsRegistry(
            now=int(self.clock().timestamp()),
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.issuer},
            exp={"essential": True},
            iat={"essential": True},
            jti={"essential": True},
            sub={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise InvalidToken(f"claims refused: {exc}") from None
        for name in ("client_id", "program", "scope"):
            if not isinstance(claims.get(name), str):
                raise InvalidToken(f"claim {name} missing")
        try:
            granted = scope_names.parse(claims["scope"])
        except scope_names.UnknownScope as exc:
            raise InvalidToken(str(exc)) from None
        if is_revoked(str(claims["jti"])):
            raise InvalidToken("revoked")
        return AccessToken(
            subject=str(claims["sub"]),
            client_id=claims["client_id"],
            program_id=claims["program"],
            scopes=granted,
            jti=str(claims["jti"]),
            issued_at=datetime.fromtimestamp(int(claims["iat"]), UTC),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )
