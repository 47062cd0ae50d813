"""Access tokens the gateway mints: RFC 9068 JWTs signed with the gateway key.

Minting is Authlib's `JWTBearerTokenGenerator` (header `typ: at+jwt`, `iss`, `sub`,
`client_id`, `iat`, `exp`, `jti`, `scope`), told our key, our audience and the `program`
claim. Verifying stays our own, on joserfc (the JOSE library Authlib itself uses):
Authlib's `JWTBearerTokenValidator` accepts a token without `typ`, lets the token's
header choose among every algorithm joserfc knows, does not check `kid`, and knows
nothing of `program`; each of those is a refusal DESIGN §5 asks for.

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
from typing import Any, Protocol

from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey

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


class TokenClient(Protocol):
    """Whom a token is minted for: an OAuth2 client of one program."""

    @property
    def program_id(self) -> str: ...

    def get_client_id(self) -> str: ...


@dataclass(frozen=True)
class _Client:
    client_id: str
    program_id: str

    def get_client_id(self) -> str:
        return self.client_id


class AccessTokenGenerator(JWTBearerTokenGenerator):  # type: ignore[misc]
    """Authlib's RFC 9068 generator with the gateway's key, audience, clock and claims."""

    def __init__(self, issuer: TokenIssuer) -> None:
        lifetime = int(issuer.lifetime.total_seconds())
        super().__init__(issuer.issuer, alg=issuer.key.algorithm, expires_generator=lifetime)
        self.tokens = issuer
        self.lifetime = lifetime
        # A key set, not the key: joserfc then writes the key's `kid` into the header.
        self.keys = KeySet([issuer.key.key])

    def get_jwks(self) -> KeySet:
        return self.keys

    def get_audiences(self, client: TokenClient, user: object, scope: str) -> str:
        return self.tokens.issuer

    def get_jti(self, client: TokenClient, grant_type: str, user: object, scope: str) -> str:
        return secrets.token_urlsafe(16)

    def get_extra_claims(
        self, client: TokenClient, grant_type: str, user: object, scope: str
    ) -> dict[str, Any]:
        # Authlib stamps `iat` and `exp` from time.time(); the issuer's clock takes their
        # place so that one clock mints and verifies (tests move it to expire a token).
        issued = int(self.tokens.clock().timestamp())
        return {"program": client.program_id, "iat": issued, "exp": issued + self.lifetime}


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
        self.generator = AccessTokenGenerator(self)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.key.public_jwk()]}

    def mint(
        self, client_id: str, program_id: str, scopes: frozenset[str]
    ) -> tuple[str, AccessToken]:
        """A token and its claims, outside any token request (the demo, benchmarks)."""
        return self.mint_for(_Client(client_id, program_id), scope_names.render(scopes))

    def mint_for(self, client: TokenClient, scope: str) -> tuple[str, AccessToken]:
        token = str(
            self.generator.access_token_generator(
                client=client, grant_type="client_credentials", user=None, scope=scope
            )
        )
        return token, self.verify(token)

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
