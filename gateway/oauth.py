"""OAuth2 over HTTP: client credentials (RFC 6749 §4.4), JWKS, RFC 8414 metadata,
RFC 7662 introspection and RFC 7009 revocation. The logic lives in `auth.server`."""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from auth import scopes
from auth.models import OAuthClient
from auth.server import AuthorizationServer, InvalidScope
from gateway import websocket
from ledger.db import Database

MAX_FORM_BYTES = 8 * 1024
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def response(self) -> JSONResponse:
        headers = dict(NO_STORE)
        if self.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="loyalty-gateway"'
        return JSONResponse(
            {"error": self.error, "error_description": self.description},
            status_code=self.status,
            headers=headers,
        )


def _server(request: Request) -> AuthorizationServer:
    server: AuthorizationServer = request.app.state.authorization
    return server


def _database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def _form(request: Request) -> dict[str, str]:
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise OAuthError("invalid_request", "send application/x-www-form-urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise OAuthError("invalid_request", "request too large", 413)
    fields: dict[str, str] = {}
    for pair in body.decode("utf-8", errors="replace").split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        name, value = unquote(name.replace("+", " ")), unquote(value.replace("+", " "))
        if name in fields:
            raise OAuthError("invalid_request", f"parameter {name} given twice")
        fields[name] = value
    return fields


async def _client(request: Request, form: dict[str, str]) -> OAuthClient:
    """client_secret_basic or client_secret_post, never both."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        if "client_secret" in form:
            raise OAuthError("invalid_request", "use one client authentication method")
        try:
            decoded = base64.b64decode(header[6:], validate=True).decode()
            client_id, _, secret = decoded.partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise OAuthError("invalid_client", "malformed basic credentials", 401) from None
        client_id, secret = unquote(client_id), unquote(secret)
    else:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    if not client_id or not secret:
        raise OAuthError("invalid_client", "client authentication is required", 401)
    async with _database(request).reading() as session:
        client = await _server(request).authenticate(session, client_id, secret)
    if client is None:
        raise OAuthError("invalid_client", "unknown client or wrong secret", 401)
    return client


async def token(request: Request) -> Response:
    try:
        form = await _form(request)
        client = await _client(request, form)
        if form.get("grant_type") != "client_credentials":
            raise OAuthError("unsupported_grant_type", "only client_credentials is supported")
        try:
            access_token, claims = _server(request).issue(client, form.get("scope"))
        except InvalidScope as exc:
            raise OAuthError("invalid_scope", str(exc)) from None
    except OAuthError as error:
        return error.response()
    lifetime = int((claims.expires_at - claims.issued_at).total_seconds())
    body = {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": lifetime,
        "scope": scopes.render(claims.scopes),
    }
    return JSONResponse(body, headers=NO_STORE)


async def introspect(request: Request) -> Response:
    try:
        form = await _form(request)
        client = await _client(request, form)
    except OAuthError as error:
        return error.response()
    async with _database(request).reading() as session:
        answer = await _server(request).introspect(session, client, form.get("token", ""))
    return JSONResponse(answer, headers=NO_STORE)


async def revoke(request: Request) -> Response:
    try:
        form = await _form(request)
        client = await _client(request, form)
    except OAuthError as error:
        return error.response()
    async with _database(request).transaction() as session:
        await _server(request).revoke(session, client, form.get("token", ""))
    await websocket.announce_revocation(request.app.state.bus, request, form.get("token", ""))
    return Response(status_code=200, headers=NO_STORE)


async def jwks(request: Request) -> Response:
    return JSONResponse(
        _server(request).tokens.jwks(), headers={"Cache-Control": "public, max-age=300"}
    )


async def metadata(request: Request) -> Response:
    issuer = _server(request).tokens.issuer.rstrip("/")
    document: dict[str, Any] = {
        "issuer": _server(request).tokens.issuer,
        "token_endpoint": f"{issuer}/oauth/token",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
        ],
        "revocation_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
        ],
        "scopes_supported": sorted(scopes.ALL),
        "token_endpoint_auth_signing_alg_values_supported": [_server(request).tokens.key.algorithm],
    }
    return JSONResponse(document)


routes = [
    Route("/oauth/token", token, methods=["POST"]),
    Route("/oauth/introspect", introspect, methods=["POST"]),
    Route("/oauth/revoke", revoke, methods=["POST"]),
    Route("/.well-known/jwks.json", jwks, methods=["GET"]),
    Route("/.well-known/oauth-authorization-server", metadata, methods=["GET"]),
]
