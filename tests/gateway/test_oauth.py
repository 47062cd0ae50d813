"""OAuth2 over real HTTP against a running gateway."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from starlette.applications import Starlette

from auth.server import AuthorizationServer, ClientCredentials
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


@pytest.fixture
async def gateway(database_url: str) -> AsyncIterator[Gateway]:
    port = free_port()
    settings = Settings(database_url=database_url, issuer=f"http://127.0.0.1:{port}")
    app = create_app(settings)
    async with serving(app, port) as url, aiohttp.ClientSession() as http:
        database: Database = app.state.database
        async with database.transaction() as session:
            till = await app.state.authorization.create_client(
                session, "acme", "Till 7", frozenset({"points:write", "rewards:redeem"})
            )
        yield Gateway(url, app, http, till)


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
