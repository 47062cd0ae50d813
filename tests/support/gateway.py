"""A running gateway for tests: uvicorn on a free port over a fresh ledger, a partner
client factory, a store identity provider for member tokens, and a GraphQL client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from starlette.applications import Starlette

from auth import scopes
from backends.fakes.identity import AUDIENCE, ISSUER, FakeIdentityProvider
from gateway.app import create_app
from gateway.settings import Settings
from ledger.db import Database
from ledger.program import Program
from tests.support.ledger import Clock, make_program
from tests.support.server import free_port, serving


@dataclass
class Response:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def data(self) -> Any:
        assert not self.body.get("errors"), self.body
        return self.body["data"]

    @property
    def codes(self) -> list[str]:
        return [e.get("extensions", {}).get("code") for e in self.body.get("errors", [])]


@dataclass
class Gateway:
    url: str
    app: Starlette
    http: aiohttp.ClientSession
    identity: FakeIdentityProvider
    clock: Clock
    tokens: dict[tuple[frozenset[str], str], str] = field(default_factory=dict)

    @property
    def database(self) -> Database:
        database: Database = self.app.state.database
        return database

    async def token(self, granted: Iterable[str] = scopes.ALL, program: str = "test") -> str:
        """A partner token with exactly `granted` scopes (of a client of `program`)."""
        wanted = frozenset(granted)
        if (wanted, program) in self.tokens:
            return self.tokens[(wanted, program)]
        async with self.database.transaction() as session:
            client = await self.app.state.authorization.create_client(
                session, program, "test client", wanted or frozenset({scopes.REWARDS_READ})
            )
        form = {
            "grant_type": "client_credentials",
            "client_id": client.client_id,
            "client_secret": client.client_secret,
        }
        if wanted:
            form["scope"] = scopes.render(wanted)
        async with self.http.post(self.url + "/oauth/token", data=form) as response:
            assert response.status == 200, await response.text()
            token = str((await response.json())["access_token"])
        self.tokens[(wanted, program)] = token
        return token

    def member_token(self, customer_id: str, **claims: Any) -> str:
        return self.identity.token(sub=customer_id, **claims)

    async def graphql(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        token: str | None = None,
        *,
        method: str = "POST",
        headers: dict[str, str] | None = None,
    ) -> Response:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if method == "GET":
            params = {"query": query}
            if variables:
                params["variables"] = json.dumps(variables)
            request = self.http.get(self.url + "/graphql", params=params, headers=sent)
        else:
            body = {"query": query, "variables": variables or {}}
            request = self.http.post(self.url + "/graphql", json=body, headers=sent)
        async with request as response:
            text = await response.text()
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = {"raw": text}
            headers = {name.lower(): value for name, value in response.headers.items()}
            return Response(response.status, parsed, headers)

    async def partner(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        """Run with every scope; the data, or fail on any error."""
        return (await self.graphql(query, variables, await self.token())).data


def gateway_program(identity_url: str, **overrides: Any) -> Program:
    """The test program, its members signing in with the test identity provider."""
    tokens = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "jwks_url": identity_url,
        "customer_claim": "sub",
    }
    return make_program(**{"member_tokens": tokens, **overrides})


@asynccontextmanager
async def running_gateway(
    database_url: str,
    *,
    rate_limit: str = "1000/second",
    oauth_rate_limit: str = "1000/second",
    introspection: bool = True,
    jobs_interval: float | None = None,
    operation_timeout: float = 15,
    other_programs: Iterable[str | Mapping[str, Any]] = (),
    metrics_token: str | None = None,
    settings: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> AsyncIterator[Gateway]:
    """`settings` sets any other `Settings` field (the broker, WebSocket limits ...);
    `overrides` change the test program; `other_programs` are more programs, each an id
    or the overrides of its own (with its `id`)."""
    identity = FakeIdentityProvider(issuer=ISSUER)
    clock = Clock()
    async with identity.serving(), aiohttp.ClientSession() as http:
        port = free_port()
        configured = Settings(
            **{**(settings or {}), "database_url": database_url},
            issuer=f"http://127.0.0.1:{port}",
            rate_limit=rate_limit,
            oauth_rate_limit=oauth_rate_limit,
            introspection=introspection,
            jobs_interval=jobs_interval or 60,
            operation_timeout=operation_timeout,
            metrics_token=metrics_token,
        )
        programs = [gateway_program(identity.url, **overrides)]
        programs += [
            gateway_program(identity.url, **({"id": other} if isinstance(other, str) else other))
            for other in other_programs
        ]
        app = create_app(
            configured,
            clock=clock,
            scheduled_jobs=jobs_interval is not None,
            programs={program.id: program for program in programs},
        )
        async with serving(app, port) as url:
            yield Gateway(url, app, http, identity, clock)
