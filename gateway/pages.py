"""The pages the gateway serves to people: GraphiQL at `/graphql` (from a browser), the
storefront at `/demo/` (demo only), the embeddable widget at `/widget.js` and their
assets under `/static/`.

Every asset is served by the gateway itself, from `gateway/static/` (package data, so
an installed wheel carries it): the pinned npm builds under `static/vendor/` are
committed, not fetched, so a fresh clone works with no internet and no Node (see
`static/vendor/README.md`). Every answer carries `X-Content-Type-Options: nosniff`;
every page a strict Content-Security-Policy: scripts and styles from this origin only
(no inline script), connections to this origin and its WebSocket, never framed.
Vendored files have their version in their path, so browsers may keep them a year;
the gateway's own assets are revalidated (ETag) on every use.

Other origins: a store's pages embed `/widget.js` (a classic `<script>`, which needs no
CORS) and the widget then calls `/graphql`, which answers CORS only for the origins of
`LOYALTY_ALLOWED_ORIGINS` (`cors`); the WebSocket checks the same list.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path

from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC = Path(__file__).parent / "static"
VENDOR_PREFIX = "/static/vendor/"
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
GRAPHQL_WS_UMD = STATIC / "vendor" / "graphql-ws@5.16.2" / "graphql-ws.min.js"


def content_security_policy(host: str) -> str:
    """The policy of every page; `host` (the request's Host) names its WebSocket."""
    sockets = f" ws://{host} wss://{host}" if _safe_host(host) else ""
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self' data:",
            f"connect-src 'self'{sockets}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def _safe_host(host: str) -> bool:
    """A Host header that can stand in a policy: a name or address and a port, no more."""
    return bool(host) and len(host) <= 255 and all(c.isalnum() or c in ".-:[]" for c in host)


PAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@cache
def _read(name: str) -> bytes:
    return (STATIC / name).read_bytes()


def page_response(request: Request, name: str) -> Response:
    """The HTML file `static/<name>` with the page headers and its policy."""
    headers = {
        **PAGE_HEADERS,
        "Content-Security-Policy": content_security_policy(request.headers.get("host", "")),
    }
    return Response(_read(name), headers=headers, media_type="text/html; charset=utf-8")


def page(name: str) -> Callable[[Request], Response]:
    """An endpoint serving the page `static/<name>`, e.g. `Route("/demo/", page("demo.html"))`."""

    def endpoint(request: Request) -> Response:
        return page_response(request, name)

    return endpoint


class _AssetHeaders:
    """`/static/...`: nosniff, and a year of caching for the versioned vendored files."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("root_path", "") + scope.get("path", "")
        cache_control = IMMUTABLE if VENDOR_PREFIX in path else REVALIDATE

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"cache-control", cache_control.encode()),
                    (b"cross-origin-resource-policy", b"same-origin"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


@cache
def widget_script() -> bytes:
    """`/widget.js`: graphql-ws's browser build, closed over so that the store's page
    gains no global, then the `<loyalty-widget>` element. One classic script, as a
    store drops it into any page."""
    return b"".join(
        [
            b"/* loyalty-gateway widget; includes graphql-ws 5.16.2 (MIT, "
            b"see /static/vendor/graphql-ws@5.16.2/LICENSE.md) */\n",
            b"(function () {\nvar exports = {}, module = { exports: exports };\n",
            GRAPHQL_WS_UMD.read_bytes(),
            b"\nvar graphqlWs = exports;\n",
            _read("widget.js"),
            b"\n})();\n",
        ]
    )


def widget(request: Request) -> Response:
    return Response(
        widget_script(),
        media_type="text/javascript; charset=utf-8",
        headers={
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "public, max-age=300",
            "Cross-Origin-Resource-Policy": "cross-origin",  # stores embed it
        },
    )


def cors(app: ASGIApp, origins: Sequence[str]) -> ASGIApp:
    """`app` answering CORS for `origins` only: a store's page calling with a bearer
    token, never with cookies."""
    return CORSMiddleware(
        app,
        allow_origins=list(origins),
        allow_methods=["GET", "POST"],
        allow_headers=["authorization", "content-type", "accept"],
        allow_credentials=False,
        expose_headers=["x-request-id", "retry-after"],
        max_age=600,
    )


def routes() -> list[BaseRoute]:
    """What every gateway serves: the widget and the assets."""
    return [
        Route("/widget.js", widget, methods=["GET", "HEAD"]),
        Mount("/static", _AssetHeaders(StaticFiles(directory=STATIC)), name="static"),
    ]
