"""The OAuth2 protocol on Authlib's server classes: the client credentials grant
(RFC 6749 §4.4), introspection (RFC 7662), revocation (RFC 7009) and the RFC 8414
metadata document.

Authlib's hooks are synchronous. Everything they need from the database (the client
rows a request names, whether its token was revoked) is loaded beforehand into a
`Preloaded`, and what they decide to write (revocations) is collected there for the
caller to store afterwards. One `Protocol` serves one request, so its hooks answer
from that request's `Preloaded` and nothing is shared between threads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    ClientCredentialsGrant,
    ClientMixin,
    InvalidClientError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    OAuth2Request,
    TokenMixin,
)
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata

from auth import scopes
from auth.models import OAuthClient
from auth.secrets import DUMMY_HASH, verify_secret
from auth.tokens import AccessToken, InvalidToken, TokenIssuer

AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
GRANT_TYPE = "client_credentials"

Endpoint = Literal["token", "introspection", "revocation"]


class FormRequest(OAuth2Request):  # type: ignore[misc]
    """An OAuth2 request whose form body the gateway has already read."""

    def __init__(self, uri: str, form: Mapping[str, str], headers: Mapping[str, str]) -> None:
        super().__init__("POST", uri, headers=headers)
        self._form = dict(form)
        self.payload = BasicOAuth2Payload(self._form)

    @property
    def form(self) -> dict[str, str]:
        return self._form

    @property
    def args(self) -> dict[str, str]:
        return {}


def _basic_client_id(headers: Mapping[str, str]) -> str | None:
    """The client id of HTTP Basic credentials, as Authlib reads them; None when there
    are none or they are not UTF-8 (Authlib lets that UnicodeDecodeError escape)."""
    try:
        client_id, _ = extract_basic_authorization(headers)
    except UnicodeDecodeError:
        return None
    return client_id if isinstance(client_id, str) else None


def claimed_client_ids(form: Mapping[str, str], headers: Mapping[str, str]) -> list[str]:
    """The client ids a request names, in HTTP Basic or in the form; who it claims to
    be, before any secret is checked."""
    basic_id = _basic_client_id(headers)
    claimed = [basic_id, form.get("client_id")]
    return list(dict.fromkeys(cid for cid in claimed if isinstance(cid, str) and cid))


@dataclass
class Preloaded:
    """What Authlib's hooks may know about one request, loaded before it runs."""

    clients: dict[str, OAuthClient]
    revoked: frozenset[str] = frozenset()
    revocations: list[AccessToken] = field(default_factory=list)  # to store afterwards


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


class RegisteredClient(ClientMixin):  # type: ignore[misc]
    """A client of one program, as Authlib sees it: confidential, client credentials only."""

    def __init__(self, row: OAuthClient) -> None:
        self.row = row
        self.program_id = row.program_id
        self.scopes = frozenset(row.scopes.split())

    def get_client_id(self) -> str:
        return self.row.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        try:
            return scopes.render(scopes.grant(self.scopes, scope))
        except scopes.InvalidScope as exc:
            raise InvalidScopeError(str(exc)) from None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return verify_secret(client_secret, self.row.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == GRANT_TYPE


class UnknownClient(RegisteredClient):
    """An id that names no active client: its secret check costs one scrypt like any
    other, so the answer's timing does not tell which ids exist."""

    def __init__(self) -> None:
        self.program_id = ""
        self.scopes = frozenset()

    def get_client_id(self) -> str:
        return ""

    def check_client_secret(self, client_secret: str) -> bool:
        verify_secret(client_secret, DUMMY_HASH)
        return False


class IssuedToken(TokenMixin):  # type: ignore[misc]
    """A verified access token of ours, and whether it was revoked."""

    def __init__(self, claims: AccessToken, revoked: bool) -> None:
        self.claims = claims
        self.revoked = revoked

    def check_client(self, client: RegisteredClient) -> bool:
        return bool(client.get_client_id() == self.claims.client_id)

    def get_scope(self) -> str:
        return scopes.render(self.claims.scopes)

    def get_expires_in(self) -> int:
        return int((self.claims.expires_at - self.claims.issued_at).total_seconds())

    def is_expired(self) -> bool:
        return False  # `TokenIssuer.verify` refused it already if it were

    def is_revoked(self) -> bool:
        return self.revoked


class ClientCredentials(ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def validate_requested_scope(self) -> None:
        """A subset of the client's scopes (Authlib's default only knows the server's)."""
        client: RegisteredClient = self.request.client
        client.get_allowed_scope(self.request.payload.scope)


def _query_token(server: Protocol, token: str) -> IssuedToken | None:
    try:
        claims = server.tokens.verify(token)
    except InvalidToken:
        return None
    return IssuedToken(claims, claims.jti in server.preloaded.revoked)


class Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> IssuedToken | None:
        return _query_token(self.server, token_string)

    def check_permission(
        self, token: IssuedToken, client: RegisteredClient, request: FormRequest
    ) -> bool:
        """Any client of the token's program; another program's token is not active."""
        return token.claims.program_id == client.program_id

    def introspect_token(self, token: IssuedToken) -> dict[str, Any]:
        claims, issuer = token.claims, self.server.tokens.issuer
        return {
            "active": True,
            "scope": scopes.render(claims.scopes),
            "client_id": claims.client_id,
            "sub": claims.subject,
            "program": claims.program_id,
            "token_type": "Bearer",
            "iss": issuer,
            "aud": issuer,
            "jti": claims.jti,
            "iat": int(claims.issued_at.timestamp()),
            "exp": int(claims.expires_at.timestamp()),
        }


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    """A client revokes its own tokens; another client's token is refused
    (`invalid_grant`), a token that is not ours is ignored (200), per RFC 7009."""

    CLIENT_AUTH_METHODS = AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> IssuedToken | None:
        return _query_token(self.server, token_string)

    def revoke_token(self, token: IssuedToken, request: FormRequest) -> None:
        if not token.revoked:
            self.server.preloaded.revocations.append(token.claims)


class Protocol(AuthorizationServer):  # type: ignore[misc]
    """Authlib's authorization server for one request."""

    def __init__(self, tokens: TokenIssuer, preloaded: Preloaded) -> None:
        super().__init__(scopes_supported=sorted(scopes.ALL))
        self.tokens = tokens
        self.preloaded = preloaded
        self.register_token_generator("default", tokens.generator)
        self.register_grant(ClientCredentials)
        self.register_endpoint(Introspection)
        self.register_endpoint(Revocation)

    def answer(self, endpoint: Endpoint, request: FormRequest) -> Answer:
        """Authlib's answer, with every secret check and signature in the calling thread."""
        if endpoint == "token":
            answer: Answer = self.create_token_response(request)
        else:
            answer = self.create_endpoint_response(endpoint, request)
        return answer

    def query_client(self, client_id: str) -> RegisteredClient:
        row = self.preloaded.clients.get(client_id)
        return RegisteredClient(row) if row is not None and row.active else UnknownClient()

    def authenticate_client(
        self, request: FormRequest, methods: list[str], endpoint: str = "token"
    ) -> RegisteredClient:
        # RFC 6749 §2.3: one authentication method per request. Authlib would try
        # Basic, then fall back to the form's secret.
        scheme = request.headers.get("Authorization", "").partition(" ")[0]
        if scheme.lower() == "basic" and "client_secret" in request.form:
            raise InvalidRequestError("use one client authentication method, not two")
        if scheme.lower() == "basic" and _basic_client_id(request.headers) is None:
            raise InvalidClientError(status_code=401, description="malformed basic credentials")
        client: RegisteredClient = super().authenticate_client(request, methods, endpoint)
        return client

    def save_token(self, token: dict[str, Any], request: FormRequest) -> None:
        """Nothing to keep: an access token is a self-contained JWT."""

    def send_signal(self, name: str, *args: object, **kwargs: object) -> None:
        """No listeners."""

    def create_oauth2_request(self, request: FormRequest) -> FormRequest:
        return request

    def handle_response(
        self, status: int, body: dict[str, Any], headers: list[tuple[str, str]]
    ) -> Answer:
        return Answer(status, body, dict(headers))


def error_answer(error: OAuth2Error) -> Answer:
    """An error raised outside Authlib's own handling, in its shape."""
    status, body, headers = error()
    return Answer(status, body, dict(headers))


class ServerMetadata(AuthorizationServerMetadata):  # type: ignore[misc]
    def validate_response_types_supported(self) -> None:
        """RFC 8414 makes the member required; with no authorization endpoint (client
        credentials only) the honest value is an empty array, which Authlib refuses."""
        if not isinstance(self.get("response_types_supported"), list):
            raise ValueError('"response_types_supported" MUST be JSON array')


def metadata(issuer: str) -> dict[str, Any]:
    """The RFC 8414 document, validated by Authlib; a ValueError names what is wrong
    (an `issuer` that is neither https nor loopback http, for one)."""
    base = issuer.rstrip("/")
    document = ServerMetadata(
        {
            "issuer": issuer,
            "token_endpoint": f"{base}/oauth/token",
            "jwks_uri": f"{base}/.well-known/jwks.json",
            "introspection_endpoint": f"{base}/oauth/introspect",
            "revocation_endpoint": f"{base}/oauth/revoke",
            "grant_types_supported": [GRANT_TYPE],
            "response_types_supported": [],
            "token_endpoint_auth_methods_supported": AUTH_METHODS,
            "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
            "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
            "scopes_supported": sorted(scopes.ALL),
        }
    )
    document.validate()
    return dict(document)
