"""The Starlette application: one database, one authorization server, one HTTP client
session for outbound calls (and one per program's CRM and store), the outbox relay, the
webhook dispatcher and the job scheduler, all owned by the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime

import aiohttp
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute

from auth.members import MemberTokenVerifier
from auth.principals import Authenticator
from auth.protocol import metadata as authorization_server_metadata
from auth.server import AuthorizationServer, load_signing_key
from auth.tokens import TokenIssuer
from backends.crm.writeback import CrmWriteBack
from backends.registry import Backends
from events import bus as events_bus
from events.bus import Event, Hub
from events.relay import OutboxRelay
from events.webhooks import WebhookDispatcher
from gateway import access_log, admin, oauth, pages, scheduler, unavailable
from gateway.graphql import GraphQLEndpoint
from gateway.metrics import Metrics
from gateway.persisted import PersistedQueries
from gateway.ratelimit import RateLimiter
from gateway.settings import Settings
from gateway.webhooks_in import InboundWebhooks
from gateway.websocket import RevocationWatch
from ledger.db import Database
from ledger.program import Program
from ledger.service import LoyaltyService, utcnow
from schema.root import build_schema

READY_TIMEOUT = 2.0


async def healthz(request: Request) -> Response:
    """The process is up."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """The database answers, within READY_TIMEOUT seconds."""
    database: Database = request.app.state.database
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            await database.ping()
    except (OSError, SQLAlchemyError):  # TimeoutError among the OSErrors
        return JSONResponse(
            {"status": "database unreachable"}, status_code=503, headers=unavailable.HEADERS
        )
    return JSONResponse({"status": "ready"})


def create_app(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utcnow,
    scheduled_jobs: bool = True,
    programs: Mapping[str, Program] | None = None,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """The gateway for `settings`; programs and the signing key load at start-up.
    `programs` replaces the program files (tests, the demo); `extra_routes` are served
    too (the demo's storefront and its store)."""
    if programs is None:
        programs = settings.load_programs()  # a bad file stops start-up: file, key, reason
    key_pem = settings.signing_key_pem()
    try:
        oauth_metadata = authorization_server_metadata(settings.issuer)
    except ValueError as exc:  # Authlib's RFC 8414 checks: https, or loopback http
        raise ValueError(f"LOYALTY_ISSUER {settings.issuer!r}: {exc}") from None
    service = LoyaltyService(programs, clock=clock)
    metrics = Metrics(settings.metrics_token)
    hub = Hub(settings.subscriber_queue)
    bus = events_bus.connect(settings.broker_url, hub)
    metrics.watch(hub)
    rate_limiter = RateLimiter.for_broker(settings.rate_limit, settings.broker_url)
    oauth_rate_limiter = RateLimiter.for_broker(settings.oauth_rate_limit, settings.broker_url)
    revocations = RevocationWatch(hub, settings.revocation_check)
    schema = build_schema(introspection=settings.introspection, extensions=[metrics.extension()])
    persisted = PersistedQueries(settings.broker_url, admits=schema.runs)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # A request waits at most half its time for a lock or a connection, then is
        # answered 503 (retry later) rather than running into its own timeout.
        database = Database(
            settings.database_url,
            wait=settings.operation_timeout / 2,
            connections=settings.pool_per_worker(),
        )
        listening = contextlib.ExitStack()  # the hub's revocation listeners of this app
        http = aiohttp.ClientSession()
        backends = Backends(programs, metrics.backends)  # a session per program and backend
        jobs: asyncio.Task[None] | None = None
        relay = OutboxRelay(database, bus, clock)
        write_back = CrmWriteBack(database, backends, settings.crm_write_back_interval)

        def written_back(events: Sequence[Event]) -> None:
            for e in events:
                write_back.offer(e.program_id, e.member_id, e.id, e.payload)

        relay.listeners.append(written_back)
        dispatcher = WebhookDispatcher(
            database,
            programs,
            clock,
            allow_private=settings.allow_private_webhooks,
            timeout=settings.webhook_timeout,
            observer=metrics.webhooks,
        )
        try:
            async with database.transaction() as session:
                key = await load_signing_key(session, key_pem)
            with contextlib.suppress(IntegrityError):  # another replica seeded them just now
                async with database.transaction() as session:
                    for program_id in programs:
                        await service.seed_rewards(session, program_id)
            authorization = AuthorizationServer(TokenIssuer(key, settings.issuer))
            async with database.reading() as session:
                await authorization.revocations.load(session)
            listening.enter_context(hub.on_revocation(authorization.revocations.add))
            verifiers = {
                program.id: MemberTokenVerifier(program.member_tokens, http)
                for program in programs.values()
                if program.member_tokens is not None
            }
            app.state.database = database
            app.state.http = http
            app.state.backends = backends
            app.state.authorization = authorization
            app.state.authenticator = Authenticator(database, authorization, programs, verifiers)
            await bus.start()
            relay.start()
            revocations.start(database, authorization)
            app.state.relay = relay
            dispatcher.start()
            app.state.webhooks = dispatcher
            write_back.start()
            app.state.write_back = write_back
            if scheduled_jobs:
                jobs = asyncio.create_task(
                    scheduler.run_forever(service, database, settings.jobs_interval, clock)
                )
            # What start-up built lives as long as the process: out of the collector's
            # sight, so its full collections stop walking it on every request's garbage.
            gc.freeze()
            yield
        finally:
            if jobs is not None:
                jobs.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await jobs
            await write_back.stop()
            await dispatcher.stop()
            await revocations.stop()
            await relay.stop()
            await bus.close()
            await rate_limiter.close()
            await persisted.close()
            await oauth_rate_limiter.close()  # its Redis connections, like the other's
            await inbound.rate_limiter.close()
            await http.close()
            await backends.close()
            listening.close()
            await database.dispose()

    app = Starlette(
        lifespan=lifespan,
        middleware=[
            Middleware(access_log.AccessLog),
            Middleware(unavailable.UnavailableMiddleware),
        ],
    )
    graphql = GraphQLEndpoint(
        schema,
        service=service,
        database=lambda: app.state.database,
        authenticator=lambda: app.state.authenticator,
        rate_limiter=rate_limiter,
        metrics=metrics,
        introspection=settings.introspection,
        clock=clock,
        timeout=settings.operation_timeout,
        hub=hub,
        allowed_origins=settings.origins(),
        connection_init_timeout=settings.connection_init_timeout,
        max_subscriptions=settings.max_subscriptions,
        revocations=revocations,
        backends=lambda: getattr(app.state, "backends", None),
        persisted=persisted,
    )
    app.state.graphql = graphql
    app.state.oauth_rate_limiter = oauth_rate_limiter
    inbound = InboundWebhooks(
        service,
        database=lambda: app.state.database,
        http=lambda: app.state.http,
        rate_limiter=RateLimiter.for_broker(settings.webhook_rate_limit, settings.broker_url),
        timeout=settings.operation_timeout,
    )
    app.state.oauth_metadata = oauth_metadata
    app.state.service = service
    app.state.bus = bus
    app.state.metrics = metrics
    # The dashboard's staff sign-in: off unless the demo names its client.
    staff = admin.StaffSignIn()
    app.state.staff_sign_in = staff
    app.router.routes.extend(
        [
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics.endpoint, methods=["GET"]),
            # OPTIONS: the CORS preflight of a store's page (LOYALTY_ALLOWED_ORIGINS)
            Route(
                "/graphql",
                pages.cors(graphql, settings.origins()),
                methods=["GET", "POST", "OPTIONS"],
            ),
            WebSocketRoute("/graphql", graphql),
            Route("/webhooks/{program}/{source}", inbound.endpoint, methods=["POST"]),
            *oauth.routes,
            *pages.routes(),
            *admin.routes(staff),
            *extra_routes,
        ]
    )
    return app


def from_environment() -> Starlette:
    """The app factory `serve` gives uvicorn (in each worker): settings from the
    environment, the access log on standard output (`gateway.access_log`)."""
    access_log.enable()
    return create_app(Settings())
