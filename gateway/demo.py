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
import json
import tempfile
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
from ledger.program import DEMO_PROGRAM, Commerce, Crm, Program, load_program
from ledger.rules import Line
from ledger.service import LoyaltyService

DEMO_CLIENT = "demo"
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
The gateway is up. GraphiQL: {base}/graphql
Dashboard (sign in as demo staff): {base}/admin/

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

The CRM is a fake HubSpot and the store a fake Shopify:
  {{ me {{ profile {{ firstName lifecycleStage company }} orders {{ name total createdAt }} }} }}

Metrics: {base}/metrics   Stop: Ctrl-C
"""


async def demo(directory: Path, host: str, port: int) -> None:
    url = f"sqlite+aiosqlite:///{directory / 'demo.db'}"
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
    # The store is a fake Shopify; customer ids are Shopify's (numeric) customer ids.
    store = FakeShopify(token=DEMO_STORE_TOKEN)
    store.add_order("1001", "#1001", "112.50", created_at="2026-10-06T14:02:00Z")
    store.add_order("1001", "#1014", "24.00", created_at="2026-11-20T09:41:00Z")
    store.add_order("1002", "#1009", "1180.00", created_at="2026-09-12T17:20:00Z")
    async with (
        FakeIdentityProvider(audience=DEMO_AUDIENCE, algorithm="ES256").serving() as identity,
        crm.serving(),
        store.serving(),
    ):
        base = load_program(DEMO_PROGRAM)
        program = base.model_copy(
            update={
                "member_tokens": identity.member_tokens(),
                "crm": Crm(kind="hubspot", base_url=crm.base, token=DEMO_CRM_TOKEN),
                "commerce": Commerce(kind="shopify", base_url=store.base, token=DEMO_STORE_TOKEN),
            }
        )
        await prepare(url, program)
        settings = Settings(database_url=url, issuer=f"http://{host}:{port}")
        app = create_app(settings, programs={program.id: program})
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
        serving = asyncio.create_task(server.serve())
        while not server.started:
            if serving.done():
                serving.result()
                return
            await asyncio.sleep(0.05)
        credentials, partner = await partner_token(app, program.id)
        staff: StaffSignIn = app.state.staff_sign_in
        staff.client = await client_of(app, credentials)  # the dashboard's demo sign-in
        member = identity.token(DEMO_MEMBER, lifetime=timedelta(hours=12))
        print(banner(settings.issuer, credentials, partner, member), flush=True)
        await serving


def run_demo(settings: Settings, host: str = "127.0.0.1", port: int = 8000) -> int:
    del settings  # the demo always runs the bundled program on a throwaway database
    with tempfile.TemporaryDirectory(prefix="loyalty-demo-") as directory:
        try:
            asyncio.run(demo(Path(directory), host, port))
        except KeyboardInterrupt:  # Ctrl-C: the server has shut down; so does the demo
            print("Demo stopped; its database is gone.")
    return 0
