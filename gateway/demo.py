"""`loyalty-gateway demo`: the embedded default on a throwaway SQLite ledger.

Seeds the bundled demo program with a few members and some history, shows what the
ledger made of it, then serves the gateway with GraphiQL and prints ready tokens: a
partner token with every scope, and a member token. The demo plays the store's
identity provider for its own members (a key of its own, its JWKS on a loopback port)
and its CRM (a fake HubSpot on a loopback port, with a contact for Ada and Grace), so
`profile` answers.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from auth import scopes
from auth.models import OAuthClient
from auth.server import AuthorizationServer, ClientCredentials
from backends.fakes.hubspot import FakeHubSpot
from backends.fakes.identity import FakeIdentityProvider
from backends.fakes.shopify import FakeShopify
from gateway.admin import StaffSignIn
from gateway.app import create_app
from gateway.demo_receiver import DemoReceiver
from gateway.demo_store import DemoStore
from gateway.migrate import upgrade_async
from gateway.settings import Settings
from ledger import write_repository
from ledger.commands import (
    AdjustPoints,
    Command,
    EnrollMember,
    HoldPoints,
    MemberRef,
    RecordAction,
    RecordPurchase,
    RedeemReward,
)
from ledger.db import Database
from ledger.program import DEMO_PROGRAM, OutgoingWebhook, Program, load_program
from ledger.program_sections import Commerce, Crm
from ledger.rules import Line
from ledger.service import LoyaltyService

DEMO_CLIENT = "demo"
STORE_SCOPES = frozenset({scopes.MEMBERS_READ, scopes.REWARDS_REDEEM})
DEMO_CRM_TOKEN = "pat-demo"
DEMO_STORE_TOKEN = "shpat_demo"


async def seed(service: LoyaltyService, database: Database, program_id: str) -> list[int]:
    """Three members with purchases, a review, a redemption and an open checkout hold."""
    now = service.clock()
    # past the 14 pending days (available now), within the 30 days a purchase may be backdated
    weeks_ago = now - timedelta(days=25)
    commands: list[Command] = [
        EnrollMember("seed-ada", "1001", email="ada@example.com", name="Ada Lovelace"),
        EnrollMember("seed-grace", "1002", email="grace@example.com", name="Grace Hopper"),
        RecordPurchase(
            "seed-order-1001",
            MemberRef(customer_id="1001"),
            "1001",
            "USD",
            (
                Line("SHOE-RED-42", "shoes", 1, Decimal("120.00"), Decimal("20.00")),
                Line("SOCKS-3PK", "apparel", 2, Decimal("12.50")),
                Line("GIFT-25", "gift-cards", 1, Decimal("25.00")),
            ),
            occurred_at=weeks_ago,
        ),
        RecordPurchase(
            "seed-order-1002",
            MemberRef(customer_id="1002"),
            "1002",
            "USD",
            (Line("COAT-WOOL", "outerwear", 1, Decimal("1180.00")),),
            occurred_at=weeks_ago,
        ),
        RecordPurchase(
            "seed-order-1003",
            MemberRef(customer_id="1001"),
            "1003",
            "USD",
            (Line("HAT-FELT", "accessories", 1, Decimal("45.00")),),
        ),
        RecordAction("seed-review-1", MemberRef(customer_id="1001"), "product_review"),
        RedeemReward("seed-redeem-1", MemberRef(customer_id="1002"), "free-shipping"),
        HoldPoints("seed-hold-1", MemberRef(customer_id="1001"), 100, "1004"),
        AdjustPoints("seed-adjust-1", MemberRef(customer_id="1002"), 50, "Late delivery"),
        RecordPurchase(
            "seed-order-2001",
            MemberRef(customer_id="1003"),
            "2001",
            "USD",
            (Line("MUG", "home", 2, Decimal("9.99")),),
        ),
    ]
    async with database.transaction() as session:
        await service.seed_rewards(session, program_id)
    members = []
    for command in commands:
        async with database.transaction() as session:
            outcome = await service.execute(session, program_id, DEMO_CLIENT, command)
        if outcome.problem:
            raise RuntimeError(f"demo seed {command.idempotency_key}: {outcome.problem}")
        if outcome.member_id is not None and outcome.member_id not in members:
            members.append(outcome.member_id)
    return members


async def show(database: Database, program_id: str, member_ids: list[int]) -> None:
    print(f"{'member':<12}{'available':>10}{'pending':>9}{'held':>6}{'lifetime':>10}  tier")
    async with database.reading() as session:
        for member_id in member_ids:
            member = await write_repository.member_by_id(session, program_id, member_id)
            account = await write_repository.account(session, member_id)
            assert member is not None and account is not None
            print(
                f"{member.customer_id:<12}{account.available:>10}{account.pending:>9}"
                f"{account.held:>6}{account.lifetime_earned:>10}  {account.tier}"
            )


DEMO_AUDIENCE = "loyalty-demo"
DEMO_MEMBER = "1001"
FIRST_QUERY = """{
  me {
    customerId
    points { available pending held lifetimeEarned }
    tier { current { name } next { name } toNext }
    transactions(first: 5) { edges { node { kind points reason occurredAt } } }
  }
}"""
FIRST_MUTATION = """mutation {
  recordPurchase(input: {
    idempotencyKey: "demo-order-3001"
    member: {customerId: "1001"}
    orderId: "3001"
    currency: "USD"
    lines: [{sku: "SHOE-BLUE-40", category: "shoes", quantity: 1, unitPrice: "80.00"}]
  }) {
    transaction { kind points status availableAt }
    member { points { available pending } }
    userErrors { code message }
  }
}"""


async def prepare(url: str, program: Program) -> None:
    """Migrate, seed and bring the throwaway ledger up to date; print the balances."""
    await upgrade_async(url)
    service = LoyaltyService({program.id: program})
    database = Database(url)
    try:
        members = await seed(service, database, program.id)
        async with database.transaction() as session:
            await service.run_jobs(session, program.id, datetime.now(UTC))
        print(f"Demo program {program.name!r} ({program.id}) on {url}\n")
        await show(database, program.id, members)
    finally:
        await database.dispose()


async def client(
    app: Starlette, program_id: str, name: str, granted: frozenset[str]
) -> ClientCredentials:
    authorization: AuthorizationServer = app.state.authorization
    async with app.state.database.transaction() as session:
        return await authorization.create_client(session, program_id, name, granted)


async def partner_token(app: Starlette, program_id: str) -> tuple[ClientCredentials, str]:
    authorization: AuthorizationServer = app.state.authorization
    async with app.state.database.transaction() as session:
        credentials = await authorization.create_client(
            session, program_id, "Demo partner", scopes.ALL
        )
        client = await session.get(OAuthClient, credentials.client_id)
    assert client is not None
    token, _ = authorization.issue(client, None)
    return credentials, token


async def client_of(app: Starlette, credentials: ClientCredentials) -> OAuthClient:
    async with app.state.database.reading() as session:
        client: OAuthClient | None = await session.get(OAuthClient, credentials.client_id)
    assert client is not None
    return client


def banner(base: str, credentials: ClientCredentials, partner: str, member: str) -> str:
    headers = json.dumps({"Authorization": f"Bearer {member}"})
    return f"""
The gateway is up.
  Storefront:  {base}/demo/   (sign in as ada@example.com or grace@example.com)
  Widget:      {base}/widget.js   (<loyalty-widget> for a store's pages; see the README)
  Dashboard:   {base}/admin/   (sign in as demo staff)
  GraphiQL: {base}/graphql

Member token of {DEMO_MEMBER} (paste into GraphiQL's Headers tab, then run the query):
  {headers}

First query:
{FIRST_QUERY}

Partner token with every scope (valid one hour; members, purchases, rewards, stats):
  {{"Authorization": "Bearer {partner}"}}

First mutation, with the partner token:
{FIRST_MUTATION}

A new partner token: curl -s -u {credentials.client_id}:{credentials.client_secret} \\
  -d grant_type=client_credentials {base}/oauth/token

The program's webhooks go, signed, to a receiver standing in for the store's email
service (listed in the dashboard). The CRM is a fake HubSpot and the store a fake Shopify:
  {{ me {{ profile {{ firstName lifecycleStage company }} orders {{ name total createdAt }} }} }}

Metrics: {base}/metrics   Stop: Ctrl-C
"""


DEMO_SHOPPERS = {"ada@example.com": "1001", "grace@example.com": "1002"}


@dataclass
class RunningDemo:
    """The demo, up: its gateway, the store's identity provider, CRM and shop."""

    base: str
    app: Starlette
    program: Program
    identity: FakeIdentityProvider
    crm: FakeHubSpot
    shop: FakeShopify
    store: DemoStore
    receiver: DemoReceiver  # the store's email service, receiving the outgoing webhooks
    credentials: ClientCredentials
    partner: str
    serving: asyncio.Task[None]  # done when the server stops (Ctrl-C)


def demo_backends() -> tuple[FakeHubSpot, FakeShopify]:
    """The CRM (a fake HubSpot, a contact for Ada and Grace) and the shop (a fake
    Shopify whose customer ids are Shopify's numeric ids), with their seed data."""
    crm = FakeHubSpot(token=DEMO_CRM_TOKEN)
    crm.add(
        "1001",
        firstname="Ada",
        lastname="Lovelace",
        lifecyclestage="customer",
        company="Analytical Engines",
    )
    crm.add(
        "1002",
        firstname="Grace",
        lastname="Hopper",
        lifecyclestage="evangelist",
        company="US Navy",
    )
    shop = FakeShopify(token=DEMO_STORE_TOKEN)
    shop.add_order("1001", "#1001", "112.50", created_at="2026-10-06T14:02:00Z")
    shop.add_order("1001", "#1014", "24.00", created_at="2026-11-20T09:41:00Z")
    shop.add_order("1002", "#1009", "1180.00", created_at="2026-09-12T17:20:00Z")
    return crm, shop


@asynccontextmanager
async def running_demo(
    directory: Path, host: str, port: int, allowed_origins: str = ""
) -> AsyncIterator[RunningDemo]:
    """Seed a ledger in `directory` and serve the demo on `host`:`port` for the block;
    `allowed_origins` as LOYALTY_ALLOWED_ORIGINS (store pages embedding the widget)."""
    url = f"sqlite+aiosqlite:///{directory / 'demo.db'}"
    crm, shop = demo_backends()
    shop_secret = secrets.token_hex(32)  # the Shopify app's client secret
    receiver = DemoReceiver(secret="whsec_" + base64.b64encode(secrets.token_bytes(24)).decode())
    async with (
        FakeIdentityProvider(audience=DEMO_AUDIENCE, algorithm="ES256").serving() as identity,
        crm.serving(),
        shop.serving(),
        receiver.serving(),
    ):
        base = load_program(DEMO_PROGRAM)
        program = base.model_copy(
            update={
                "member_tokens": identity.member_tokens(),
                "crm": Crm(kind="hubspot", base_url=crm.base, token=DEMO_CRM_TOKEN),
                "commerce": Commerce(kind="shopify", base_url=shop.base, token=DEMO_STORE_TOKEN),
                "webhook_secrets": base.webhook_secrets.model_copy(
                    update={"shopify": (shop_secret,)}
                ),
                "webhooks": (OutgoingWebhook(url=receiver.url, secret=receiver.secret),),
            }
        )
        issuer = f"http://{host}:{port}"
        for topic in ("orders/paid", "refunds/create", "customers/create"):
            shop.subscribe(topic, f"{issuer}/webhooks/{program.id}/shopify", shop_secret)
        await prepare(url, program)
        # The demo's receiver is on loopback, which real deployments refuse (SSRF guard).
        settings = Settings(
            database_url=url,
            issuer=issuer,
            allowed_origins=allowed_origins,
            allow_private_webhooks=True,
        )
        store = DemoStore(identity, shop, DEMO_SHOPPERS)
        app = create_app(settings, programs={program.id: program}, extra_routes=store.routes())
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
        serving = asyncio.create_task(server.serve())
        try:
            while not server.started:
                if serving.done():
                    serving.result()
                    raise RuntimeError("the demo's gateway stopped during start-up")
                await asyncio.sleep(0.05)
            credentials, partner = await partner_token(app, program.id)
            staff: StaffSignIn = app.state.staff_sign_in
            staff.client = await client_of(app, credentials)  # the dashboard's demo sign-in
            store_client = await client(app, program.id, "Demo store", STORE_SCOPES)
            store.connect(issuer, program.id, program.point_value, store_client)
            yield RunningDemo(
                issuer,
                app,
                program,
                identity,
                crm,
                shop,
                store,
                receiver,
                credentials,
                partner,
                serving,
            )
        finally:
            server.should_exit = True
            await serving


async def demo(directory: Path, host: str, port: int, allowed_origins: str) -> None:
    async with running_demo(directory, host, port, allowed_origins) as running:
        member = running.identity.token(DEMO_MEMBER, lifetime=timedelta(hours=12))
        print(banner(running.base, running.credentials, running.partner, member), flush=True)
        await running.serving  # until Ctrl-C


def run_demo(settings: Settings, host: str = "127.0.0.1", port: int = 8000) -> int:
    # The demo always runs the bundled program on a throwaway database; of the settings
    # it keeps only the origins allowed to embed the widget.
    with tempfile.TemporaryDirectory(prefix="loyalty-demo-") as directory:
        try:
            asyncio.run(demo(Path(directory), host, port, settings.allowed_origins))
        except KeyboardInterrupt:  # Ctrl-C: the server has shut down; so does the demo
            print("Demo stopped; its database is gone.")
    return 0
