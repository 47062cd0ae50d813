"""OAuth2 over HTTP: a thin Starlette adapter in front of Authlib (`auth.protocol`).

It reads the form body (at most `MAX_FORM_BYTES`), counts the request against
`LOYALTY_OAUTH_RATE_LIMIT` per remote address and per claimed client id before any
secret is checked, and hands the rest to `AuthorizationServer.respond`.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from authlib.oauth2.rfc6749 import InvalidRequestError, OAuth2Error
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from auth.protocol import Answer, Endpoint, claimed_client_ids, error_answer
from auth.server import AuthorizationServer
from gateway import websocket
from gateway.ratelimit import RateLimiter
from ledger.db import Database

MAX_FORM_BYTES = 8 * 1024
MAX_FORM_FIELDS = 32


class RateLimited(OAuth2Error):  # type: ignore[misc]
    """No RFC 6749 code fits; `rate_limited` matches GraphQL's `RATE_LIMITED`."""

    error = "rate_limited"
    status_code = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many requests; retry in {retry_after} s")
        self.retry_after = retry_after

    def get_headers(self) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = super().get_headers()
        return [*headers, ("Retry-After", str(self.retry_after))]


def _server(request: Request) -> AuthorizationServer:
    server: AuthorizationServer = request.app.state.authorization
    return server


async def _form(request: Request) -> dict[str, str]:
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise InvalidRequestError("send application/x-www-form-urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise InvalidRequestError("request too large", status_code=413)
    try:
        pairs = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS
        )
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequestError("malformed form body") from None
    form = dict(pairs)
    if len(form) != len(pairs):  # RFC 6749 §3.2: no parameter more than once
        raise InvalidRequestError("a parameter is given twice")
    return form


async def _limit(request: Request, form: dict[str, str]) -> None:
    """One hit for the address and one for each client id the request names, all
    counted before any key derivation."""
    limiter: RateLimiter = request.app.state.oauth_rate_limiter
    address = request.client.host if request.client else "-"
    callers = [f"oauth-address:{address}"]
    callers += [f"oauth-client:{cid[:100]}" for cid in claimed_client_ids(form, request.headers)]
    for caller in callers:
        verdict = await limiter.hit(caller)
        if not verdict.allowed:
            raise RateLimited(verdict.retry_after)


def _response(answer: Answer) -> Response:
    headers = {name: value for name, value in answer.headers.items() if name != "Content-Type"}
    return JSONResponse(answer.body, status_code=answer.status, headers=headers)


async def _respond(request: Request, endpoint: Endpoint) -> Response:
    return (await _respond_with_form(request, endpoint))[0]


async def _respond_with_form(
    request: Request, endpoint: Endpoint
) -> tuple[Response, dict[str, str]]:
    server = _server(request)
    try:
        form = await _form(request)
        await _limit(request, form)
    except OAuth2Error as error:
        return _response(error_answer(error)), {}
    database: Database = request.app.state.database
    uri = server.tokens.issuer.rstrip("/") + request.url.path
    answer = await server.respond(database, endpoint, uri, form, request.headers)
    return _response(answer), form


async def token(request: Request) -> Response:
    return await _respond(request, "token")


async def introspect(request: Request) -> Response:
    return await _respond(request, "introspection")


async def revoke(request: Request) -> Response:
    response, form = await _respond_with_form(request, "revocation")
    if response.status_code == 200:  # subscriptions of a token now revoked close
        await websocket.announce_revocation(request.app.state.bus, request, form.get("token", ""))
    return response


async def jwks(request: Request) -> Response:
    return JSONResponse(
        _server(request).tokens.jwks(), headers={"Cache-Control": "public, max-age=300"}
    )


async def metadata(request: Request) -> Response:
    document: dict[str, object] = request.app.state.oauth_metadata
    return JSONResponse(document)


routes = [
    Route("/oauth/token", token, methods=["POST"]),
    Route("/oauth/introspect", introspect, methods=["POST"]),
    Route("/oauth/revoke", revoke, methods=["POST"]),
    Route("/.well-known/jwks.json", jwks, methods=["GET"]),
    Route("/.well-known/oauth-authorization-server", metadata, methods=["GET"]),
]
