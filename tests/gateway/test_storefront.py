"""The storefront at `/demo/` and the embeddable widget, in a real browser against the
real demo: its seeded ledger, its identity provider, its fake Shopify sending signed
webhooks. Every figure on the page is compared with what the API answers the same
shopper."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import Browser, BrowserContext, Page, expect

from backends.fakes.loopback import loopback
from gateway.demo import RunningDemo, running_demo
from ledger.program import Channel
from ledger.rules import Line, price_lines, purchase_points
from tests.support.browser import axe, described, screenshot, watch
from tests.support.live import until
from tests.support.server import free_port

pytestmark = pytest.mark.asyncio(loop_scope="module")

ADA, GRACE = "1001", "1002"
EMAILS = {ADA: "ada@example.com", GRACE: "grace@example.com"}
ME = """{ me { points { available pending held lifetimeEarned expiringSoon { points expiresAt } }
  tier { current { name earnMultiplier } next { name threshold } qualifyingValue toNext }
  availableRewards { id name cost } } }"""
LIVE_WITHIN_MS = 2_000


@dataclass
class Demo:
    running: RunningDemo
    http: aiohttp.ClientSession
    store_page: str  # a page of the store on another origin, embedding the widget

    @property
    def url(self) -> str:
        return self.running.base

    async def graphql(self, query: str, customer_id: str, **variables: Any) -> Any:
        token = self.running.identity.token(customer_id)
        async with self.http.post(
            self.url + "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {token}"},
        ) as response:
            body = await response.json()
        assert not body.get("errors"), body
        return body["data"]

    async def partner(self, query: str, **variables: Any) -> Any:
        async with self.http.post(
            self.url + "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {self.running.partner}"},
        ) as response:
            body = await response.json()
        assert not body.get("errors"), body
        return body["data"]

    async def me(self, customer_id: str) -> dict[str, Any]:
        return dict((await self.graphql(ME, customer_id))["me"])

    async def pay_at_the_till(self, customer_id: str, price: str) -> dict[str, Any]:
        """An order paid in the shop: the fake Shopify sends its signed `orders/paid`."""
        shop = self.running.shop
        order = {
            "customer": {"id": int(customer_id)},
            "currency": "USD",
            "financial_status": "paid",
            "source_name": "pos",
            "line_items": [{"sku": "SCARF", "title": "Scarf", "price": price, "quantity": 1}],
        }
        async with self.http.post(
            f"{shop.base}/admin/api/{shop.api_version}/orders.json",
            json={"order": order},
            headers={"X-Shopify-Access-Token": shop.token},
        ) as response:
            assert response.status == 201, await response.text()
            created: dict[str, Any] = (await response.json())["order"]
        assert shop.deliveries[-1] == ("orders/paid", 200)  # signed, verified, recorded
        return created


STORE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Acme: shoes</title>
<link rel="icon" href="data:,"></head>
<body><main><h1>Canvas sneakers</h1><p>Members earn double points on shoes.</p>
<loyalty-widget gateway="{gateway}"></loyalty-widget></main>
<script src="{gateway}/widget.js"></script></body></html>"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def demo(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Demo]:
    port = free_port()
    page = web.Application()
    html = STORE_PAGE.replace("{gateway}", f"http://127.0.0.1:{port}")

    async def store_page(request: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    page.router.add_get("/", store_page)
    async with loopback(page) as store_origin:
        directory = tmp_path_factory.mktemp("demo")
        async with (
            running_demo(directory, "127.0.0.1", port, allowed_origins=store_origin) as running,
            aiohttp.ClientSession() as http,
        ):
            yield Demo(running, http, store_origin + "/")


@pytest_asyncio.fixture(loop_scope="module")
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    context = await browser.new_context(viewport={"width": 1200, "height": 900})
    context.set_default_timeout(10_000)
    yield context
    await context.close()


async def signed_in(context: BrowserContext, demo: Demo, customer_id: str) -> Page:
    page = await context.new_page()
    await page.goto(demo.url + "/demo/")
    await page.get_by_label("Email").fill(EMAILS[customer_id])
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Your rewards")).to_be_visible()
    await expect(page.get_by_text("Live", exact=True)).to_be_visible()  # subscribed
    return page


async def figure(page: Page, test_id: str) -> int:
    text = await page.get_by_test_id(test_id).inner_text()
    return int(text.replace(",", ""))


async def test_a_shopper_signs_in_and_sees_exactly_what_the_api_reports(
    demo: Demo, context: BrowserContext
) -> None:
    page = await signed_in(context, demo, ADA)
    seen = watch(page)
    me = await demo.me(ADA)
    points, tier = me["points"], me["tier"]
    await expect(page.get_by_test_id("points-available")).to_have_text(f"{points['available']:,}")
    await expect(page.get_by_test_id("points-pending")).to_have_text(f"{points['pending']:,}")
    await expect(page.get_by_test_id("points-held")).to_have_text(f"{points['held']:,}")
    assert points["held"] == 100  # the seed's open checkout hold
    await expect(page.get_by_test_id("tier-name")).to_have_text(tier["current"]["name"])
    progress = page.get_by_role("progressbar")
    await expect(progress).to_have_attribute("max", str(tier["next"]["threshold"]))
    await expect(progress).to_have_attribute("value", str(tier["qualifyingValue"]))
    await expect(
        page.get_by_text(f"{tier['toNext']:,} points to {tier['next']['name']}")
    ).to_be_visible()
    expiring = page.get_by_test_id("expiring")
    if points["expiringSoon"]:
        await expect(expiring.locator("li")).to_have_count(len(points["expiringSoon"]))
    else:
        await expect(expiring).to_have_text("None in the next 30 days.")
    # The token stays in the tab: not in the address, not in a cookie.
    assert "token" not in page.url and "eyJ" not in page.url
    assert await context.cookies() == []
    stored = await page.evaluate("() => Object.keys(sessionStorage)")
    assert stored == ["acme.memberToken"]
    assert await page.evaluate("() => localStorage.length") == 0
    await screenshot(page, "storefront-account")
    assert seen.clean(), seen.errors
    await page.close()


async def test_redeeming_a_reward_shows_its_code_and_takes_its_cost(
    demo: Demo, context: BrowserContext
) -> None:
    before = await demo.me(GRACE)
    reward = next(r for r in before["availableRewards"] if r["id"] == "five-off")
    page = await signed_in(context, demo, GRACE)
    await page.get_by_role(
        "button", name=f"Redeem {reward['name']} for {reward['cost']} points"
    ).click()
    codes = page.get_by_test_id("codes")
    await expect(codes.locator("li").first).to_contain_text(reward["name"])
    code = await codes.locator("li").first.locator("code").inner_text()
    redemptions = await demo.graphql(
        "{ me { redemptions(first: 1) { edges { node { code status reward { id } } } } } }", GRACE
    )
    newest = redemptions["me"]["redemptions"]["edges"][0]["node"]
    assert newest == {"code": code, "status": "ISSUED", "reward": {"id": "five-off"}}
    after = await demo.me(GRACE)
    assert after["points"]["available"] == before["points"]["available"] - reward["cost"]
    await expect(page.get_by_test_id("points-available")).to_have_text(
        f"{after['points']['available']:,}"
    )
    await page.close()


async def test_the_history_pages_through_the_transactions_connection(
    demo: Demo, context: BrowserContext
) -> None:
    history = """query($after: String) { me { transactions(first: 5, after: $after) {
        edges { node { kind points } } pageInfo { hasNextPage endCursor } } } }"""
    for n in range(3):  # three shares make more than a page of history
        shared = await demo.partner(
            """mutation($key: String!) { recordAction(input: {idempotencyKey: $key,
            member: {customerId: "1002"}, type: "social_share"}) { userErrors { code } } }""",
            key=f"history-share-{n}",
        )
        assert shared["recordAction"]["userErrors"] == []
    first = (await demo.graphql(history, GRACE))["me"]["transactions"]
    assert first["pageInfo"]["hasNextPage"] and len(first["edges"]) == 5
    second = (await demo.graphql(history, GRACE, after=first["pageInfo"]["endCursor"]))["me"][
        "transactions"
    ]
    page = await signed_in(context, demo, GRACE)
    figures = page.get_by_test_id("history").locator("tbody td.number")

    def points_of(connection: dict[str, Any]) -> list[str]:
        return [f"{e['node']['points']:+,}" for e in connection["edges"]]

    await expect(figures).to_have_text(points_of(first))
    older = page.get_by_role("button", name="Older")
    await older.focus()
    await page.keyboard.press("Enter")  # by keyboard
    await expect(page.get_by_test_id("history-page")).to_have_text("Page 2")
    await expect(figures).to_have_text(points_of(second))
    assert await older.is_disabled() == (not second["pageInfo"]["hasNextPage"])
    await page.get_by_role("button", name="Newer").click()
    await expect(page.get_by_test_id("history-page")).to_have_text("Page 1")
    await expect(figures).to_have_text(points_of(first))
    await page.close()


async def test_checkout_holds_releases_and_captures_points_and_the_order_earns(
    demo: Demo, context: BrowserContext
) -> None:
    page = await signed_in(context, demo, ADA)
    before = (await demo.me(ADA))["points"]
    toggle = page.get_by_role("switch", name="Use my points")
    subtotal = Decimal((await page.get_by_test_id("subtotal").inner_text()).removeprefix("$"))
    hold = min(before["available"], int(subtotal * 100))  # one point is 0.01

    await toggle.check()
    await expect(page.get_by_test_id("discount")).to_have_text(f"−${Decimal(hold) / 100:.2f}")
    await expect(page.get_by_test_id("points-held")).to_have_text(f"{before['held'] + hold:,}")
    held = (await demo.me(ADA))["points"]
    assert held["held"] == before["held"] + hold
    assert held["available"] == before["available"] - hold
    await expect(page.get_by_test_id("points-available")).to_have_text(f"{held['available']:,}")
    await expect(page.get_by_test_id("total")).to_have_text(
        f"${subtotal - Decimal(hold) / 100:.2f}"
    )

    await toggle.uncheck()
    await expect(page.get_by_test_id("discount")).to_have_text("−$0.00")
    await expect(page.get_by_test_id("points-held")).to_have_text(f"{before['held']:,}")
    released = (await demo.me(ADA))["points"]
    assert (released["available"], released["held"]) == (before["available"], before["held"])

    await toggle.focus()
    await page.keyboard.press("Space")  # the switch by keyboard
    await expect(page.get_by_test_id("points-held")).to_have_text(f"{before['held'] + hold:,}")
    net = subtotal - Decimal(hold) / 100
    await page.get_by_role("button", name=f"Pay ${net:.2f}").click()
    paid = page.get_by_test_id("paid")
    await expect(paid).to_contain_text(f"${net:.2f}, {hold:,} points used")
    after = await demo.me(ADA)
    # The hold was captured: held back where it was, the points spent for good.
    assert after["points"]["held"] == before["held"]
    assert after["points"]["available"] == before["available"] - hold
    # The store's signed orders/paid webhook recorded the order: its points are pending
    # (the program's pending_days), exactly what the earning rules give the net amount.
    order_id = re.search(r"order #(\d+)", await paid.inner_text())
    assert order_id is not None
    earned = await demo.graphql(
        "{ me { transactions(first: 20, kinds: [EARN]) "
        "{ edges { node { points status orderId occurredAt } } } } }",
        ADA,
    )
    entries = [e["node"] for e in earned["me"]["transactions"]["edges"]]
    assert demo.running.shop.deliveries[-1] == ("orders/paid", 200), demo.running.shop.deliveries
    (entry,) = [e for e in entries if e["orderId"] == order_id[1]]
    assert entry["status"] == "PENDING"
    program = demo.running.program
    lines = [  # as the store allocated the discount over its two lines
        Line("SNEAKER-CANVAS", None, 1, Decimal("80.00"), _share(hold, "80.00", subtotal)),
        Line(
            "SOCKS-WOOL",
            None,
            1,
            Decimal("12.50"),
            Decimal(hold) / 100 - _share(hold, "80.00", subtotal),
        ),
    ]
    occurred = datetime.fromisoformat(entry["occurredAt"])
    multiplier = Decimal(after["tier"]["current"]["earnMultiplier"])
    priced = price_lines(program, lines, Channel.ONLINE, occurred)
    expected = purchase_points(priced, program.earning.points_per_unit, multiplier)
    assert entry["points"] == expected > 0
    assert after["points"]["pending"] == before["pending"] + expected
    await expect(page.get_by_test_id("points-pending")).to_have_text(
        f"{after['points']['pending']:,}"
    )
    await page.close()


def _share(hold: int, amount: str, subtotal: Decimal) -> Decimal:
    return (Decimal(hold) / 100 * Decimal(amount) / subtotal).quantize(
        Decimal("0.01"), "ROUND_FLOOR"
    )


async def test_an_order_paid_at_the_store_shows_live_on_the_storefront_and_the_widget(
    demo: Demo, context: BrowserContext
) -> None:
    hub = demo.running.app.state.bus.hub
    await until(lambda: hub.stats.subscriptions == 0)  # the pages of other tests are gone
    page = await signed_in(context, demo, ADA)
    widget_page = await context.new_page()
    widget_seen = watch(widget_page)
    await widget_page.goto(demo.store_page)
    await widget_page.evaluate(
        "(token) => { document.querySelector('loyalty-widget').token = token; }",
        demo.running.identity.token(ADA),
    )
    widget = widget_page.locator("loyalty-widget")
    before = (await demo.me(ADA))["points"]
    await expect(widget.locator(".points")).to_have_text(f"{before['available']:,}")
    await expect(widget.locator(".status")).to_have_text(f"{before['pending']:,} pending")
    await widget_page.wait_for_function(
        "() => document.querySelector('loyalty-widget').live === true"
    )
    await until(lambda: hub.stats.subscriptions == 2)  # both listen: the page, the widget
    await page.evaluate("() => { window.notReloaded = true; }")

    order = await demo.pay_at_the_till(ADA, "37.00")  # answered once the gateway has it

    after = (await demo.me(ADA))["points"]
    assert after["pending"] > before["pending"] and after["available"] == before["available"]
    await expect(page.get_by_test_id("points-pending")).to_have_text(
        f"{after['pending']:,}", timeout=LIVE_WITHIN_MS
    )
    await expect(widget.locator(".status")).to_have_text(
        f"{after['pending']:,} pending", timeout=LIVE_WITHIN_MS
    )
    assert await page.evaluate("() => window.notReloaded") is True
    await expect(page.get_by_test_id("history").locator("tbody tr").first).to_contain_text(
        f"order {order['id']}"
    )
    # The reads that follow the event (the rest of the page, the tier's distance) keep it.
    await expect(page.get_by_test_id("points-pending")).to_have_text(f"{after['pending']:,}")
    await expect(widget.locator(".status")).to_have_text(f"{after['pending']:,} pending")
    await screenshot(widget_page, "widget-on-a-store-page")
    # The widget sent the gateway its token and nothing else: no cookie, no referrer.
    assert widget_seen.clean(), widget_seen.errors
    await widget_page.close()
    await page.close()


async def test_the_store_got_paid_button_sends_a_signed_webhook_and_the_balance_moves(
    demo: Demo, context: BrowserContext
) -> None:
    page = await signed_in(context, demo, GRACE)
    before = (await demo.me(GRACE))["points"]
    sent = len(demo.running.shop.deliveries)
    await page.get_by_role("button", name="The store got paid").click()
    await expect(page.get_by_test_id("till-order")).to_contain_text("paid at the till: $45.00")
    assert demo.running.shop.deliveries[sent:] == [("orders/paid", 200)]  # signed, verified
    after = (await demo.me(GRACE))["points"]
    assert after["pending"] > before["pending"]
    await expect(page.get_by_test_id("points-pending")).to_have_text(
        f"{after['pending']:,}", timeout=LIVE_WITHIN_MS
    )
    await page.close()


DELIVERED = """{ webhookDeliveries(first: 100, direction: OUT) { edges { node {
  topic outcome lastStatus } } } }"""


async def test_the_demo_sends_its_webhooks_signed_to_the_store_and_lists_them(
    demo: Demo,
) -> None:
    """The seeded history's events reach the demo's receiver, verified with the
    `standardwebhooks` package, and the API lists each delivery as succeeded."""
    receiver = demo.running.receiver
    async with demo.http.post(receiver.url, data=b"{}") as forged:
        assert forged.status == 401  # unsigned: refused
    await until(lambda: len(receiver.received) >= 9, within=15)
    topics = [payload["type"] for payload in receiver.received]
    assert topics.count("member.enrolled") == 3  # Ada, Grace, and 1003 by its first order
    assert {"points.earned", "reward.redeemed"} <= set(topics)
    assert all(payload["data"]["memberId"] for payload in receiver.received)
    nodes = [e["node"] for e in (await demo.partner(DELIVERED))["webhookDeliveries"]["edges"]]
    delivered = [n for n in nodes if n["outcome"] == "DELIVERED"]
    assert len(delivered) >= len(receiver.received)
    assert {n["lastStatus"] for n in delivered} == {204}
    assert receiver.refused == 1


async def test_the_store_backend_refuses_what_it_must(demo: Demo) -> None:
    api = demo.url + "/demo/api/"
    async with demo.http.post(api + "sign-in", json={"email": "mallory@example.com"}) as r:
        assert r.status == 401 and (await r.json())["error"] == "UNKNOWN_SHOPPER"
    async with demo.http.post(api + "sign-in", data=b"x" * 5000) as r:
        assert r.status == 413
    async with demo.http.post(api + "checkouts", json={"lines": []}) as r:
        assert r.status == 401  # no shopper's token
    ada = {"Authorization": f"Bearer {demo.running.identity.token(ADA)}"}
    grace = {"Authorization": f"Bearer {demo.running.identity.token(GRACE)}"}
    bad_lines = [{"sku": "NOPE", "quantity": 1}]
    async with demo.http.post(api + "checkouts", json={"lines": bad_lines}, headers=ada) as r:
        assert r.status == 400 and (await r.json())["error"] == "UNKNOWN_PRODUCT"
    lines = [{"sku": "CAP-CORD", "quantity": 1}]
    async with demo.http.post(api + "checkouts", json={"lines": lines}, headers=ada) as r:
        assert r.status == 201
        checkout = await r.json()
    assert checkout["subtotal"] == "24.00"  # the store's price, whatever the browser says
    before = await demo.me(ADA)
    path = f"checkouts/{checkout['id']}/points"
    async with demo.http.post(api + path, json={"use": True}, headers=grace) as r:
        assert r.status == 404  # another shopper's checkout
    assert await demo.me(ADA) == before


async def test_every_page_passes_axe(demo: Demo, browser: Browser) -> None:
    context = await browser.new_context(bypass_csp=True)  # axe is injected inline
    page = await context.new_page()
    await page.goto(demo.url + "/demo/")
    await expect(page.get_by_label("Email")).to_be_visible()
    assert (violations := await axe(page)) == [], described(violations)
    await screenshot(page, "storefront-sign-in")
    await page.get_by_label("Email").fill(EMAILS[ADA])
    await page.get_by_label("Email").press("Enter")  # the form by keyboard
    await expect(page.get_by_test_id("points-available")).to_be_visible()
    await expect(page.get_by_test_id("history")).to_be_visible()
    assert (violations := await axe(page)) == [], described(violations)
    await page.goto(demo.store_page)
    await page.evaluate(
        "(token) => { document.querySelector('loyalty-widget').token = token; }",
        demo.running.identity.token(ADA),
    )
    await expect(page.locator("loyalty-widget .points")).to_be_visible()
    assert (violations := await axe(page)) == [], described(violations)
    await context.close()
