"""The `loyalty-gateway` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime

import uvicorn

from auth import scopes
from auth.server import AuthorizationServer, ClientCredentials, load_signing_key
from auth.tokens import TokenIssuer
from events.webhooks import WebhookDispatcher
from gateway import scheduler
from gateway.migrate import upgrade
from gateway.settings import Settings, export_workers
from ledger.db import Database
from ledger.errors import ProgramFileError
from ledger.service import LoyaltyService


def _parse_now(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 date-time: {value!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError("--now needs a UTC offset, e.g. 2026-01-01T00:00:00Z")
    return moment


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loyalty-gateway", description="One loyalty ledger for web shop, app and till."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="create or upgrade the database schema")
    serve = commands.add_parser("serve", help="run the gateway (uvicorn), configured by LOYALTY_*")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    jobs = commands.add_parser("jobs", help="scheduled work")
    jobs_commands = jobs.add_subparsers(dest="jobs_command", required=True)
    run = jobs_commands.add_parser(
        "run",
        help="activate pending points, expire lots, re-evaluate tiers, birthday bonuses, "
        "release stale holds, send due webhooks",
    )
    run.add_argument("--now", type=_parse_now, help="run as of this ISO-8601 time")
    demo = commands.add_parser("demo", help="run the embedded demo on a throwaway database")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    commands.add_parser("schema", help="print the GraphQL SDL")
    clients = commands.add_parser("clients", help="partner and till clients")
    clients_commands = clients.add_subparsers(dest="clients_command", required=True)
    create = clients_commands.add_parser(
        "create", help='register a client; prints {"client_id": ..., "client_secret": ...}'
    )
    create.add_argument("--program", required=True, help="the program the client belongs to")
    create.add_argument("--name", required=True, help="who the client is, for people")
    create.add_argument("--scopes", required=True, help='space-separated, e.g. "points:write"')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    try:
        if args.command == "migrate":
            upgrade(settings.database_url)
            print(f"database is at the latest schema: {settings.database_url}")
        elif args.command == "jobs":
            report = asyncio.run(run_jobs(settings, args.now))
            print(json.dumps(report, indent=2))
        elif args.command == "serve":
            settings.load_programs()  # a bad program file stops start-up here, not in a worker
            problem = settings.workers_problem(args.workers)
            if problem:
                print(f"loyalty-gateway: {problem}", file=sys.stderr)
                return 2
            export_workers(args.workers)  # each worker takes its share of the database pool
            uvicorn.run(
                "gateway.app:from_environment",
                factory=True,
                host=args.host,
                port=args.port,
                workers=args.workers,
                loop="uvloop",  # libuv's event loop and its HTTP parser: less CPU a request
                http="httptools",
                proxy_headers=True,
                access_log=False,  # ours, with the request id: gateway.access_log
            )
        elif args.command == "clients":
            return create_client(settings, args.program, args.name, args.scopes)
        elif args.command == "schema":
            from schema.root import sdl

            sys.stdout.write(sdl())
        elif args.command == "demo":
            from gateway.demo import run_demo

            return run_demo(settings, args.host, args.port)
    except ProgramFileError as exc:
        print(f"loyalty-gateway: invalid program file: {exc}", file=sys.stderr)
        return 2
    return 0


def create_client(settings: Settings, program_id: str, name: str, scope_text: str) -> int:
    if program_id not in settings.load_programs():
        print(f"loyalty-gateway: no program {program_id!r} is loaded", file=sys.stderr)
        return 2
    try:
        wanted = scopes.parse(scope_text)
    except scopes.UnknownScope as exc:
        print(f"loyalty-gateway: {exc}", file=sys.stderr)
        return 2
    if not name.strip() or len(name) > 200:
        print("loyalty-gateway: --name must have 1 to 200 characters", file=sys.stderr)
        return 2
    credentials = asyncio.run(_create_client(settings, program_id, name, wanted))
    print(json.dumps(asdict(credentials)))
    return 0


async def _create_client(
    settings: Settings, program_id: str, name: str, wanted: frozenset[str]
) -> ClientCredentials:
    database = Database(settings.database_url)
    try:
        async with database.transaction() as session:
            key_pem = settings.signing_key_pem()
            key = await load_signing_key(session, key_pem)
            server = AuthorizationServer(TokenIssuer(key, settings.issuer))
            return await server.create_client(session, program_id, name, wanted)
    finally:
        await database.dispose()


async def run_jobs(settings: Settings, now: datetime | None) -> dict[str, dict[str, int]]:
    """Run the scheduled work of every program once, each in its own transaction, then
    the webhook deliveries due by then (`webhooks_<OUTCOME>`: attempts by outcome)."""
    programs = settings.load_programs()
    service = LoyaltyService(programs)
    database = Database(settings.database_url)
    moment = now or datetime.now(UTC)
    try:
        reports = await scheduler.run_once(service, database, moment)
        dispatcher = WebhookDispatcher(
            database,
            programs,
            lambda: moment,
            allow_private=settings.allow_private_webhooks,
            timeout=settings.webhook_timeout,
        )
        sent = await dispatcher.run_due(moment)
        for program_id, outcomes in sent.outcomes.items():
            for outcome, count in outcomes.items():
                reports[program_id][f"webhooks_{outcome.lower()}"] = count
        return reports
    finally:
        await database.dispose()


if __name__ == "__main__":
    sys.exit(main())
