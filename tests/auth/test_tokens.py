"""Access tokens: what the gateway mints verifies, and every forgery is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from auth.secrets import hash_secret, new_secret, verify_secret
from auth.tokens import InvalidToken, SigningKey, TokenIssuer

ISSUER = "http://127.0.0.1:8000"
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
KEY = SigningKey.generate()


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def issuer(clock: Clock | None = None, key: SigningKey = KEY, iss: str = ISSUER) -> TokenIssuer:
    return TokenIssuer(key, iss, clock=clock or Clock())


def b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": ISSUER,
        "sub": "till-7",
        "client_id": "till-7",
        "program": "acme",
        "scope": "points:write",
        "jti": "j1",
        "iat": int(NOW.timestamp()),
        "exp": int((NOW + timedelta(hours=1)).timestamp()),
    }
    base.update(overrides)
    return base


def signed(header: dict[str, Any], payload: dict[str, Any], key: SigningKey = KEY) -> str:
    return jwt.encode(header, payload, key.key, algorithms=[key.algorithm])


def test_a_minted_token_verifies_with_exact_claims() -> None:
    tokens = issuer()
    token, minted = tokens.mint("till-7", "acme", frozenset({"points:write", "members:read"}))
    verified = tokens.verify(token)
    assert verified == minted
    assert (verified.client_id, verified.program_id) == ("till-7", "acme")
    assert verified.scopes == {"points:write", "members:read"}
    assert verified.expires_at == NOW + timedelta(hours=1)
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": "ES256", "typ": "at+jwt", "kid": KEY.kid}


def test_an_expired_token_is_refused() -> None:
    clock = Clock()
    tokens = issuer(clock)
    token, _ = tokens.mint("till-7", "acme", frozenset())
    clock.now = NOW + timedelta(hours=1, seconds=1)
    with pytest.raises(InvalidToken, match="claims refused"):
        tokens.verify(token)


def test_a_revoked_token_is_refused() -> None:
    tokens = issuer()
    token, minted = tokens.mint("till-7", "acme", frozenset())
    with pytest.raises(InvalidToken, match="revoked"):
        tokens.verify(token, is_revoked=lambda jti: jti == minted.jti)


@pytest.mark.parametrize(
    ("header", "payload", "reason"),
    [
        pytest.param({"alg": "ES256", "kid": KEY.kid}, claims(), "typ", id="missing-typ"),
        pytest.param(
            {"alg": "ES256", "typ": "JWT", "kid": KEY.kid}, claims(), "typ", id="id-token"
        ),
        pytest.param(
            {"alg": "ES256", "typ": "at+jwt", "kid": KEY.kid},
            claims(iss="http://127.0.0.1:8000/"),
            "claims",
            id="issuer-not-exact",
        ),
        pytest.param(
            {"alg": "ES256", "typ": "at+jwt", "kid": KEY.kid},
            claims(aud="https://other.example"),
            "claims",
            id="wrong-audience",
        ),
        pytest.param(
            {"alg": "ES256", "typ": "at+jwt", "kid": KEY.kid},
            claims(exp=int((NOW - timedelta(seconds=1)).timestamp())),
            "claims",
            id="expired",
        ),
        pytest.param(
            {"alg": "ES256", "typ": "at+jwt", "kid": KEY.kid},
            claims(scope="points:write superuser"),
            "unknown scope",
            id="unknown-scope",
        ),
        pytest.param(
            {"alg": "ES256", "typ": "at+jwt", "kid": KEY.kid},
            {k: v for k, v in claims().items() if k != "program"},
            "program",
            id="no-program",
        ),
        pytest.param(
            {"alg": "ES256", "typ": "at+jwt", "kid": "someone-else"}, claims(), "key", id="kid"
        ),
    ],
)
def test_tokens_that_are_not_ours_are_refused(
    header: dict[str, Any], payload: dict[str, Any], reason: str
) -> None:
    with pytest.raises(InvalidToken, match=reason):
        issuer().verify(signed(header, payload))


def test_alg_none_is_refused() -> None:
    token = f"{b64({'alg': 'none', 'typ': 'at+jwt', 'kid': KEY.kid})}.{b64(claims())}."
    with pytest.raises(InvalidToken):
        issuer().verify(token)


def test_hs256_signed_with_the_public_key_is_refused() -> None:
    public_pem = KEY.key.as_pem(private=False)
    head = b64({"alg": "HS256", "typ": "at+jwt", "kid": KEY.kid})
    body = b64(claims())
    mac = hmac.new(public_pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    with pytest.raises(InvalidToken):
        issuer().verify(f"{head}.{body}.{b64(mac)}")


def test_a_token_signed_by_another_key_is_refused() -> None:
    other = SigningKey.generate()
    token, _ = issuer(key=other).mint("till-7", "acme", frozenset())
    with pytest.raises(InvalidToken):
        issuer().verify(token)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "x" * 5000, "e30.e30.e30"])
def test_garbage_is_refused(garbage: str) -> None:
    with pytest.raises(InvalidToken):
        issuer().verify(garbage)


def test_rsa_keys_sign_rs256_and_round_trip_through_pem() -> None:
    rsa = SigningKey.from_pem(RSAKey.generate_key(2048, private=True).as_pem(private=True))
    assert rsa.algorithm == "RS256"
    again = SigningKey.from_pem(rsa.to_pem())
    assert again.kid == rsa.kid
    token, minted = issuer(key=rsa).mint("till-7", "acme", frozenset({"rewards:read"}))
    assert issuer(key=again).verify(token) == minted
    assert issuer(key=again).jwks()["keys"][0]["alg"] == "RS256"


def test_public_keys_and_other_curves_are_not_signing_keys() -> None:
    with pytest.raises(ValueError, match="private"):
        SigningKey.from_pem(KEY.key.as_pem(private=False))
    with pytest.raises(ValueError, match="P-256"):
        SigningKey.from_pem(ECKey.generate_key("P-384", private=True).as_pem(private=True))
    with pytest.raises(ValueError, match="PKCS#8"):
        SigningKey.from_pem(b"-----BEGIN NONSENSE-----")


def test_the_jwks_holds_only_the_public_half() -> None:
    (jwk,) = issuer().jwks()["keys"]
    assert "d" not in jwk
    assert (jwk["kid"], jwk["alg"], jwk["use"]) == (KEY.kid, "ES256", "sig")


def test_client_secrets_are_stored_hashed() -> None:
    secret = new_secret()
    stored = hash_secret(secret)
    assert secret not in stored and stored.startswith("scrypt$")
    assert verify_secret(secret, stored)
    assert not verify_secret(secret + "x", stored)
    assert not verify_secret(secret, "plain$text")
    assert hash_secret(secret) != stored  # salted
