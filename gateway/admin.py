"""The operator's dashboard at `/admin/`, and the demo's sign-in for its staff.

The dashboard is a static page (`static/admin/`) that reads the program through the
public GraphQL API with a partner token holding `analytics:read` and `webhooks:manage`:
the operator pastes one, or, in the demo, signs in as staff, which mints such a token
of the demo's partner client. Either way the token stays in the browser tab (session
storage) and travels in the Authorization header only: never in a URL, so never in an
access log, and this module logs nothing of it.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from auth import scopes
from auth.models import OAuthClient
from auth.server import AuthorizationServer
from gateway import pages

STAFF_SCOPES = frozenset({scopes.ANALYTICS_READ, scopes.WEBHOOKS_MANAGE})
NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def routes(staff: StaffSignIn) -> list[BaseRoute]:
    """What every gateway serves of the dashboard: the page (its scripts and styles are
    under `/static/admin/`) and the staff sign-in, which only the demo turns on."""
    return [
        Route("/admin/", pages.page("admin/index.html"), methods=["GET", "HEAD"]),
        Route("/admin", lambda request: RedirectResponse("/admin/", status_code=308)),
        Route("/admin/session", staff.endpoint, methods=["GET", "POST"]),
    ]


class StaffSignIn:
    """`/admin/session`: GET says whether this gateway offers a staff sign-in (the demo
    does; anywhere else the dashboard asks for a token); POST, where it is offered, mints
    a partner token of the demo's client with `STAFF_SCOPES` and no more (404 elsewhere).

    The demo turns it on by naming its client (`client`); nothing else does. POST is
    refused from another origin: the token is in the body, which a page of another
    origin could not read anyway (no CORS here), but nothing is minted for it."""

    def __init__(self) -> None:
        self.client: OAuthClient | None = None

    async def endpoint(self, request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse({"demoStaff": self.client is not None}, headers=NO_STORE)
        if self.client is None:
            return JSONResponse(
                {"error": "no staff sign-in here"}, status_code=404, headers=NO_STORE
            )
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
            return JSONResponse({"error": "another origin"}, status_code=403, headers=NO_STORE)
        authorization: AuthorizationServer = request.app.state.authorization
        token, claims = authorization.issue(self.client, scopes.render(STAFF_SCOPES))
        return JSONResponse(
            {
                "access_token": token,
                "token_type": "Bearer",
                "scope": scopes.render(claims.scopes),
                "expires_at": claims.expires_at.isoformat(),
            },
            headers=NO_STORE,
        )
