"""Member tokens from the store's identity provider, over real HTTP."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from auth.members import IdentityProviderUnavailable, MemberTokenVerifier
from auth.tokens import InvalidToken
from backends.fakes.identity import AUDIENCE, ISSUER, FakeIdentityProvider
from ledger.program import MemberTokens


@pytest.fixture
async def provider() -> AsyncIterator[FakeIdentityProvider]:
    async with FakeIdentityProvider(issuer=ISSUER).serving() as idp:
        yield idp


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def verifier(
    idp: FakeIdentityProvider, http: aiohttp.ClientSession, **kw: str
) -> MemberTokenVerifier:
    config = MemberTokens(
        issuer=kw.get("issuer", ISSUER),
        audience=kw.get("audience", AUDIENCE),
        jwks_url=idp.url,
        customer_claim=kw.get("claim", "sub"),
    )
    return MemberTokenVerifier(config, http)


async def test_a_valid_token_names_the_customer(
    provider: FakeIdentityProvider, http: aiohttp.ClientSession
) -> None:
    check = verifier(provider, http)
    assert await check.customer_id(provider.token("cust-42")) == "cust-42"
    assert await check.customer_id(provider.token("cust-43")) == "cust-43"
    assert provider.fetches == 1  # cached


async def test_another_claim_can_name_the_customer(
    provider: FakeIdentityProvider, http: aiohttp.ClientSession
) -> None:
    check = verifier(provider, http, claim="customer_id")
    assert await check.customer_id(provider.token("user-9", customer_id=1234)) == "1234"
    with pytest.raises(InvalidToken, match="customer_id"):
        await check.customer_id(provider.token("user-9"))


async def test_a_rotated_key_is_fetched_once(
    provider: FakeIdentityProvider, http: aiohttp.ClientSession
) -> None:
    check = verifier(provider, http)
    await check.customer_id(provider.token())
    check.clock = lambda: datetime.now(UTC) + timedelta(minutes=1)
    provider.rotate()
    assert await check.customer_id(provider.token("cust-7")) == "cust-7"
    assert provider.fetches == 2
    # a token signed by a key the provider never published: refused, and the provider
    # is not fetched again right after a fetch
    stranger = FakeIdentityProvider(issuer=ISSUER)
    with pytest.raises(InvalidToken):
        await check.customer_id(stranger.token("cust-7"))
    assert provider.fetches == 2


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        pytest.param({"iss": "https://evil.example/"}, "claims", id="issuer"),
        pytest.param({"aud": "someone-else"}, "claims", id="audience"),
        pytest.param({"exp": 1_000_000}, "claims", id="expired"),
        pytest.param({"exp": None}, "claims", id="no-exp"),
        pytest.param({"sub": ""}, "customer", id="empty-subject"),
    ],
)
async def test_claims_are_checked(
    provider: FakeIdentityProvider,
    http: aiohttp.ClientSession,
    overrides: dict[str, object],
    reason: str,
) -> None:
    with pytest.raises(InvalidToken, match=reason):
        await verifier(provider, http).customer_id(provider.token(**overrides))  # type: ignore[arg-type]


async def test_unsigned_and_symmetric_tokens_are_refused(
    provider: FakeIdentityProvider, http: aiohttp.ClientSession
) -> None:
    _, body, _ = provider.token().split(".")
    for alg in ("none", "HS256"):
        header = base64.urlsafe_b64encode(json.dumps({"alg": alg}).encode()).rstrip(b"=")
        with pytest.raises(InvalidToken, match="not accepted"):
            await verifier(provider, http).customer_id(f"{header.decode()}.{body}.")


async def test_a_provider_that_is_down_is_unavailable_not_a_crash(
    provider: FakeIdentityProvider, http: aiohttp.ClientSession
) -> None:
    provider.status = 503
    with pytest.raises(IdentityProviderUnavailable, match="503"):
        await verifier(provider, http).customer_id(provider.token())


@pytest.mark.parametrize("garbage", ["", "abc", "!!!.x.y", "e30.e30.e30"])
async def test_garbage_is_refused(
    provider: FakeIdentityProvider, http: aiohttp.ClientSession, garbage: str
) -> None:
    with pytest.raises(InvalidToken):
        await verifier(provider, http).customer_id(garbage)
