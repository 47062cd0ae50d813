"""The Starlette application: one database, one authorization server, owned by the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from auth.server import AuthorizationServer, load_signing_key
from auth.tokens import TokenIssuer
from gateway import oauth
from gateway.settings import Settings
from ledger.db import Database


async def healthz(request: Request) -> Response:
    """The process is up."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """The database answers."""
    database: Database = request.app.state.database
    try:
        async with database.reading() as session:
            await session.execute(text("SELECT 1"))
    except (OSError, SQLAlchemyError):
        return JSONResponse({"status": "database unreachable"}, status_code=503)
    return JSONResponse({"status": "ready"})


def create_app(settings: Settings) -> Starlette:
    """The gateway for `settings`; programs and the signing key load at start-up."""
    settings.load_programs()  # a bad program file stops start-up with file, key and reason
    key_pem = settings.signing_key_pem()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        database = Database(settings.database_url)
        try:
            async with database.transaction() as session:
                key = await load_signing_key(session, key_pem)
            app.state.database = database
            app.state.authorization = AuthorizationServer(TokenIssuer(key, settings.issuer))
            yield
        finally:
            await database.dispose()

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        *oauth.routes,
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def from_environment() -> Starlette:
    """The app factory `serve` gives uvicorn: settings from the environment."""
    return create_app(Settings())
