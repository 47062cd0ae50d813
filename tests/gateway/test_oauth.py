"""OAuth2 over real HTTP against a running gateway."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import pytest
from starlette.applications import Starlette

from auth import scopes
from auth.server import AuthorizationServer, ClientCredentials
from auth.tokens import InvalidToken, peek
from gateway.app import create_app
from gateway.settings import Settings
from ledger.db import Database
from tests.support.server import free_port, serving


@dataclass
class Gateway:
    url: str
    app: Starlette
    http: aiohttp.ClientSession
    till: ClientCredentials

    @property
    def authorization(self) -> AuthorizationServer:
        server: AuthorizationServer = self.app.state.authorization
        return server

    async def post(
        self, path: str, form: dict[str, str] | None = None, **kw: object
    ) -> tuple[int, dict[str, object], dict[str, str]]:
        async with self.http.post(self.url + path, data=form, **kw) as response:  # type: ignore[arg-type]
            text = await response.text()
            return response.status, json.loads(text) if text else {}, dict(response.headers)


@asynccontextmanager
async def running(database_url: str, oauth_rate_limit: str = "10/second") -> AsyncIterator[Gateway]:
    port = free_port()
    settings = Settings(
        database_url=database_url,
        issuer=f"http://127.0.0.1:{port}",
        oauth_rate_limit=oauth_rate_limit,
    )
    app = create_app(settings)
    async with serving(app, port) as url, aiohttp.ClientSession() as http:
        database: Database = app.state.database
        async with database.transaction() as session:
            till = await app.state.authorization.create_client(
                session, "acme", "Till 7", frozenset({"points:write", "rewards:redeem"})
            )
        yield Gateway(url, app, http, till)


@pytest.fixture
async def gateway(database_url: str) -> AsyncIterator[Gateway]:
    async with running(database_url) as gateway:
        yield gateway


def basic(creds: ClientCredentials, secret: str | None = None) -> dict[str, str]:
    raw = f"{creds.client_id}:{secret or creds.client_secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


async def test_client_secret_basic_gets_a_token_with_the_asked_scope(gateway: Gateway) -> None:
    status, body, headers = await gateway.post(
        "/oauth/token",
        {"grant_type": "client_credentials", "scope": "points:write"},
        headers=basic(gateway.till),
    )
    assert status == 200, body
    assert (body["token_type"], body["expires_in"], body["scope"]) == (
        "Bearer",
        3600,
        "points:write",
    )
    assert headers["Cache-Control"] == "no-store"
    claims = gateway.authorization.tokens.verify(str(body["access_token"]))
    assert (claims.client_id, claims.program_id) == (gateway.till.client_id, "acme")


async def test_client_secret_post_gets_every_scope_of_the_client(gateway: Gateway) -> None:
    status, body, _ = await gateway.post(
        "/oauth/token",
        {
            "grant_type": "client_credentials",
            "client_id": gateway.till.client_id,
            "client_secret": gateway.till.client_secret,
        },
    )
    assert status == 200, body
    assert body["scope"] == "points:write rewards:redeem"


@pytest.mark.parametrize(
    ("form", "auth", "status", "error"),
    [
        pytest.param(
            {"grant_type": "client_credentials"}, "wrong", 401, "invalid_client", id="bad-secret"
        ),
        pytest.param(
            {"grant_type": "client_credentials"}, None, 401, "invalid_client", id="no-auth"
        ),
        pytest.param({"grant_type": "password"}, "good", 400, "unsupported_grant_type", id="grant"),
        pytest.param(
            {"grant_type": "client_credentials", "scope": "points:adjust"},
            "good",
            400,
            "invalid_scope",
            id="scope-not-granted",
        ),
        pytest.param(
            {"grant_type": "client_credentials", "scope": "root"},
            "good",
            400,
            "invalid_scope",
            id="unknown-scope",
        ),
    ],
)
async def test_token_requests_that_are_refused(
    gateway: Gateway, form: dict[str, str], auth: str | None, status: int, error: str
) -> None:
    headers = {} if auth is None else basic(gateway.till, None if auth == "good" else "nope")
    got, body, response_headers = await gateway.post("/oauth/token", form, headers=headers)
    assert (got, body["error"]) == (status, error)
    if status == 401:
        assert response_headers["WWW-Authenticate"].startswith("Basic")


async def test_malformed_and_oversized_requests(gateway: Gateway) -> None:
    status, body, _ = await gateway.post(
        "/oauth/token", json={"grant_type": "client_credentials"}, headers=basic(gateway.till)
    )
    assert (status, body["error"]) == (400, "invalid_request")
    status, body, _ = await gateway.post(
        "/oauth/token", {"grant_type": "client_credentials", "pad": "x" * 10_000}
    )
    assert (status, body["error"]) == (413, "invalid_request")
    status, body, _ = await gateway.post(
        "/oauth/token", {"grant_type": "client_credentials"}, headers={"Authorization": "Basic %%%"}
    )
    assert (status, body["error"]) == (401, "invalid_client")


async def test_introspection_needs_a_client_and_revocation_ends_a_token(gateway: Gateway) -> None:
    _, issued, _ = await gateway.post(
        "/oauth/token", {"grant_type": "client_credentials"}, headers=basic(gateway.till)
    )
    token = str(issued["access_token"])
    status, _, _ = await gateway.post("/oauth/introspect", {"token": token})
    assert status == 401
    status, answer, _ = await gateway.post(
        "/oauth/introspect", {"token": token}, headers=basic(gateway.till)
    )
    assert status == 200 and answer["active"] is True
    assert (answer["client_id"], answer["program"]) == (gateway.till.client_id, "acme")
    status, _, _ = await gateway.post(
        "/oauth/revoke", {"token": token}, headers=basic(gateway.till)
    )
    assert status == 200
    _, answer, _ = await gateway.post(
        "/oauth/introspect", {"token": token}, headers=basic(gateway.till)
    )
    assert answer == {"active": False}


async def test_jwks_and_metadata(gateway: Gateway) -> None:
    async with gateway.http.get(gateway.url + "/.well-known/jwks.json") as response:
        jwks = await response.json()
    assert [key["kid"] for key in jwks["keys"]] == [gateway.authorization.tokens.key.kid]
    assert all("d" not in key for key in jwks["keys"])
    async with gateway.http.get(
        gateway.url + "/.well-known/oauth-authorization-server"
    ) as response:
        document = await response.json()
    assert document["issuer"] == gateway.url
    assert document["token_endpoint"] == gateway.url + "/oauth/token"
    assert document["grant_types_supported"] == ["client_credentials"]
    assert "points:adjust" in document["scopes_supported"]


async def test_health_and_readiness(gateway: Gateway) -> None:
    for path, status in (("/healthz", "ok"), ("/readyz", "ready")):
        async with gateway.http.get(gateway.url + path) as response:
            assert response.status == 200
            assert (await response.json()) == {"status": status}


def from_address(address: str, headers: dict[str, str] | None = None) -> dict[str, str]:
    """The test server trusts X-Forwarded-For from loopback, as uvicorn does by default."""
    return {**(headers or {}), "X-Forwarded-For": address}


async def still_valid(gateway: Gateway, token: str) -> bool:
    try:
        async with gateway.app.state.database.reading() as session:
            await gateway.authorization.verify(session, token)
    except InvalidToken:
        return False
    return True


def assert_rate_limited(status: int, body: dict[str, object], headers: dict[str, str]) -> None:
    assert (status, body["error"]) == (429, "rate_limited")
    assert 1 <= int(headers["Retry-After"]) <= 60
    assert str(headers["Retry-After"]) in str(body["error_description"])
    assert headers["Cache-Control"] == "no-store"


ENDPOINTS = ["/oauth/token", "/oauth/introspect", "/oauth/revoke"]
SUCCESS = {"/oauth/token": 200, "/oauth/introspect": 200, "/oauth/revoke": 200}


def endpoint_form(path: str, token: str) -> dict[str, str]:
    return {"grant_type": "client_credentials"} if path == "/oauth/token" else {"token": token}


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_the_rate_limit_per_address_counts_before_any_secret_is_checked(
    database_url: str, path: str
) -> None:
    async with running(database_url, oauth_rate_limit="3/minute") as gateway:
        token, _ = gateway.authorization.tokens.mint(
            gateway.till.client_id, "acme", frozenset({"points:write"})
        )
        form = endpoint_form(path, token)
        here = "10.1.0.1"
        status, body, _ = await gateway.post(
            path, form, headers=from_address(here, basic(gateway.till))
        )
        assert status == SUCCESS[path], body  # the right secret, within the limit
        if path == "/oauth/revoke":  # revoke the first, then ask about a second token
            token, _ = gateway.authorization.tokens.mint(
                gateway.till.client_id, "acme", frozenset({"points:write"})
            )
            form = endpoint_form(path, token)
        for n in range(2):  # other client ids from the same address: each its own id
            stranger = ClientCredentials(f"cli_stranger{n}", "guess")
            status, body, _ = await gateway.post(
                path, form, headers=from_address(here, basic(stranger))
            )
            assert (status, body["error"]) == (401, "invalid_client")
        assert_rate_limited(
            *await gateway.post(path, form, headers=from_address(here, basic(gateway.till)))
        )
        if path == "/oauth/revoke":
            assert await still_valid(gateway, token)  # the refused revocation did nothing
        # another address, the same client: its id has used 2 of its 3
        status, body, _ = await gateway.post(
            path, form, headers=from_address("10.1.0.2", basic(gateway.till))
        )
        assert status == SUCCESS[path], body


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_the_rate_limit_per_client_id_holds_across_addresses(
    database_url: str, path: str
) -> None:
    async with running(database_url, oauth_rate_limit="3/minute") as gateway:
        token, _ = gateway.authorization.tokens.mint(
            gateway.till.client_id, "acme", frozenset({"points:write"})
        )
        form = endpoint_form(path, token)
        for n in range(3):  # wrong secrets for the till, each from a fresh address
            status, body, _ = await gateway.post(
                path, form, headers=from_address(f"10.2.0.{n}", basic(gateway.till, "guess"))
            )
            assert (status, body["error"]) == (401, "invalid_client")
        # the right secret, in the form this time, from yet another address
        posted = {**form, "client_id": gateway.till.client_id}
        posted["client_secret"] = gateway.till.client_secret
        assert_rate_limited(*await gateway.post(path, posted, headers=from_address("10.2.0.9")))
        if path == "/oauth/revoke":
            assert await still_valid(gateway, token)
        async with gateway.app.state.database.transaction() as session:
            other = await gateway.authorization.create_client(
                session, "acme", "Till 8", frozenset({"points:write"})
            )
        other_token, _ = gateway.authorization.tokens.mint(
            other.client_id, "acme", frozenset({"points:write"})
        )
        status, body, _ = await gateway.post(
            path,
            endpoint_form(path, other_token),
            headers=from_address("10.2.0.10", basic(other)),
        )
        assert status == SUCCESS[path], body  # another client is not held up
        if path == "/oauth/revoke":
            assert not await still_valid(gateway, other_token)


async def test_healthz_answers_while_a_burst_of_wrong_secrets_is_checked(
    database_url: str,
) -> None:
    async with running(database_url, oauth_rate_limit="1000/second") as gateway:
        form = {"grant_type": "client_credentials"}
        wrong = basic(gateway.till, "guess")
        latencies: list[float] = []
        loop = asyncio.get_running_loop()

        async def burst() -> list[int]:
            answers = await asyncio.gather(
                *(gateway.post("/oauth/token", form, headers=wrong) for _ in range(20))
            )
            return [status for status, _, _ in answers]

        started = loop.time()
        refused = asyncio.create_task(burst())
        await asyncio.sleep(0.01)
        while not refused.done():
            asked = loop.time()
            async with gateway.http.get(gateway.url + "/healthz") as response:
                assert response.status == 200
            latencies.append(loop.time() - asked)
            await asyncio.sleep(0.005)
        took = loop.time() - started
        assert await refused == [401] * 20
        assert latencies, "the burst ended before /healthz was asked"
        print(f"burst of 20 wrong secrets: {took:.3f} s; /healthz worst {max(latencies):.4f} s")
        assert took > 0.15  # 20 scrypts: the burst is long enough to mean something
        assert max(latencies) < took / 4


async def test_metadata_is_the_rfc_8414_document(gateway: Gateway) -> None:
    async with gateway.http.get(
        gateway.url + "/.well-known/oauth-authorization-server"
    ) as response:
        assert response.status == 200
        document = await response.json()
    methods = ["client_secret_basic", "client_secret_post"]
    assert document == {
        "issuer": gateway.url,
        "token_endpoint": gateway.url + "/oauth/token",
        "jwks_uri": gateway.url + "/.well-known/jwks.json",
        "introspection_endpoint": gateway.url + "/oauth/introspect",
        "revocation_endpoint": gateway.url + "/oauth/revoke",
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": methods,
        "introspection_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_methods_supported": methods,
        "scopes_supported": sorted(scopes.ALL),
    }


@pytest.mark.parametrize("path", ["/oauth/introspect", "/oauth/revoke"])
async def test_introspection_and_revocation_need_client_authentication(
    gateway: Gateway, path: str
) -> None:
    token, _ = gateway.authorization.tokens.mint(
        gateway.till.client_id, "acme", frozenset({"points:write"})
    )
    for headers in ({}, basic(gateway.till, "guess")):
        status, body, response_headers = await gateway.post(path, {"token": token}, headers=headers)
        assert (status, body["error"]) == (401, "invalid_client")
        assert response_headers["WWW-Authenticate"].startswith("Basic")
    assert await still_valid(gateway, token)


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_both_client_authentication_methods_at_once_are_refused(
    gateway: Gateway, path: str
) -> None:
    token, _ = gateway.authorization.tokens.mint(
        gateway.till.client_id, "acme", frozenset({"points:write"})
    )
    form = {
        **endpoint_form(path, token),
        "client_id": gateway.till.client_id,
        "client_secret": gateway.till.client_secret,
    }
    status, body, _ = await gateway.post(path, form, headers=basic(gateway.till))
    assert (status, body["error"]) == (400, "invalid_request")
    assert "access_token" not in body and "active" not in body
    assert await still_valid(gateway, token)


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("Basic %%%", id="not-base64"),
        pytest.param("Basic", id="no-credentials"),
        pytest.param("Basic " + base64.b64encode(b"no-colon").decode(), id="no-secret"),
        pytest.param("Basic " + base64.b64encode(b"\xff\xfe:x").decode(), id="not-utf8"),
        pytest.param("Basic " + base64.b64encode(b":secret").decode(), id="no-client-id"),
    ],
)
async def test_malformed_basic_credentials_are_invalid_client(
    gateway: Gateway, header: str
) -> None:
    status, body, headers = await gateway.post(
        "/oauth/token", {"grant_type": "client_credentials"}, headers={"Authorization": header}
    )
    assert (status, body["error"]) == (401, "invalid_client")
    assert headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize("grant_type", ["authorization_code", "refresh_token", "", "urn:x"])
async def test_unknown_grant_types_are_refused(gateway: Gateway, grant_type: str) -> None:
    status, body, _ = await gateway.post(
        "/oauth/token", {"grant_type": grant_type}, headers=basic(gateway.till)
    )
    assert (status, body["error"]) == (400, "unsupported_grant_type")
    assert "access_token" not in body


async def test_scope_narrows_and_over_asking_is_invalid_scope(gateway: Gateway) -> None:
    asked = {"grant_type": "client_credentials", "scope": "rewards:redeem"}
    status, body, _ = await gateway.post("/oauth/token", asked, headers=basic(gateway.till))
    assert (status, body["scope"]) == (200, "rewards:redeem")
    claims = gateway.authorization.tokens.verify(str(body["access_token"]))
    assert claims.scopes == {"rewards:redeem"}
    for too_much in ("rewards:redeem points:adjust", "points:write analytics:read"):
        asked["scope"] = too_much
        status, body, _ = await gateway.post("/oauth/token", asked, headers=basic(gateway.till))
        assert (status, body["error"]) == (400, "invalid_scope")
        assert "access_token" not in body
        assert "not granted" in str(body["error_description"])


async def test_a_minted_token_carries_exactly_the_design_claims(gateway: Gateway) -> None:
    _, body, _ = await gateway.post(
        "/oauth/token", {"grant_type": "client_credentials"}, headers=basic(gateway.till)
    )
    header, claims = peek(str(body["access_token"]))
    key = gateway.authorization.tokens.key
    assert header == {"alg": key.algorithm, "typ": "at+jwt", "kid": key.kid}
    assert set(claims) == {
        "iss",
        "aud",
        "sub",
        "client_id",
        "iat",
        "exp",
        "jti",
        "scope",
        "program",
    }
    assert (claims["iss"], claims["aud"], claims["sub"], claims["client_id"]) == (
        gateway.url,
        gateway.url,
        gateway.till.client_id,
        gateway.till.client_id,
    )
    assert (claims["program"], claims["scope"]) == ("acme", "points:write rewards:redeem")
    assert claims["exp"] - claims["iat"] == 3600


async def test_revoking_another_clients_token_is_refused_and_changes_nothing(
    gateway: Gateway,
) -> None:
    async with gateway.app.state.database.transaction() as session:
        other = await gateway.authorization.create_client(
            session, "acme", "Till 8", frozenset({"points:write"})
        )
    token, _ = gateway.authorization.tokens.mint(
        gateway.till.client_id, "acme", frozenset({"points:write"})
    )
    status, body, _ = await gateway.post("/oauth/revoke", {"token": token}, headers=basic(other))
    assert (status, body["error"]) == (400, "invalid_grant")
    assert await still_valid(gateway, token)
    _, answer, _ = await gateway.post(
        "/oauth/introspect", {"token": token}, headers=basic(gateway.till)
    )
    assert answer["active"] is True


def test_an_issuer_that_is_neither_https_nor_loopback_stops_start(database_url: str) -> None:
    with pytest.raises(ValueError, match=r"LOYALTY_ISSUER 'http://gateway.example'.*https"):
        create_app(Settings(database_url=database_url, issuer="http://gateway.example"))
    app = create_app(Settings(database_url=database_url, issuer="https://loyalty.example"))
    assert app.state.oauth_metadata["token_endpoint"] == "https://loyalty.example/oauth/token"
