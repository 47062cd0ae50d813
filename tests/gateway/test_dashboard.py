"""The operator's dashboard at `/admin/` in a real browser, over a real gateway: its
charts draw the program's numbers as the API reports them, a failed outgoing delivery
shows and its retry delivers it, axe-core finds nothing serious, and the token stays out
of URLs. One gateway and one browser for the module.

The gateway's clock stands still at the moment the module starts (the test clock): the
ledger's entries are dated then, which the page's "last 30 days" holds, and a failed
delivery's next attempt (5 s later by the schedule) never comes due by itself, so only
the retry button can send it again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, expect

from auth import scopes
from auth.models import OAuthClient
from gateway import pages
from gateway.admin import STAFF_SCOPES, StaffSignIn
from tests.conftest import sqlite_url
from tests.support.browser import axe, described, screenshot, watch
from tests.support.gateway import Gateway, running_gateway
from tests.support.inbound import EVENTS_SECRET, send_event
from tests.support.operations import enroll
from tests.support.receiver import SECRET, Receiver, receiving

pytestmark = pytest.mark.asyncio(loop_scope="module")

NEW_YORK = ZoneInfo("America/New_York")  # the test program's time zone
TIMEOUT = 30_000  # ms: generous, the machine is shared


@dataclass
class Seeded:
    gw: Gateway
    hook: Receiver
    token: str  # analytics:read and webhooks:manage, no more
    purchase_day: str  # the local date the backdated purchase's points turned available
    delivery: str  # the outgoing delivery that failed


def not_a_tuesday(now: datetime) -> datetime:
    """A moment 20 or 21 days back that is no Tuesday in New York, so the program's
    Tuesday bonus cannot apply and the purchase earns exactly its amount."""
    for days in (20, 21):
        moment = now - timedelta(days=days)
        if moment.astimezone(NEW_YORK).weekday() != 1:
            return moment
    raise AssertionError("two days in a row are Tuesdays")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def seeded(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Seeded]:
    url = sqlite_url(sqlite_template, tmp_path_factory.mktemp("dashboard"))
    async with (
        receiving(Receiver(then=500)) as hook,
        running_gateway(
            url,
            settings={"allow_private_webhooks": True},
            webhooks=[{"url": hook.url, "secret": SECRET, "events": ["points.adjusted"]}],
            webhook_secrets={"events": EVENTS_SECRET},
        ) as gw,
    ):
        gw.clock.now = datetime.now(UTC).replace(microsecond=0)
        for customer in ("ada", "bob", "cyd"):
            await enroll(gw, customer)  # 100 signup points each, today
        # Dee enrols through a signed inbound webhook: a delivery IN, applied.
        answer = await send_event(gw, "member.enrolled", {"customerId": "dee"}, "msg_dashboard_dee")
        assert answer.status == 200, answer.body
        occurred = not_a_tuesday(gw.clock.now)
        bought = await gw.partner(
            """mutation($i: PurchaseInput!) { recordPurchase(input: $i) {
                 transaction { points status availableAt } userErrors { code } } }""",
            {
                "i": {
                    "idempotencyKey": "ada-coat",
                    "member": {"customerId": "ada"},
                    "orderId": "coat",
                    "currency": "USD",
                    "occurredAt": occurred.isoformat(),
                    "lines": [{"category": "outerwear", "quantity": 1, "unitPrice": "1200.00"}],
                }
            },
        )
        transaction = bought["recordPurchase"]["transaction"]
        assert (transaction["points"], transaction["status"]) == (1200, "AVAILABLE")
        available = datetime.fromisoformat(transaction["availableAt"])
        await gw.partner(
            """mutation { adjustPoints(input: {idempotencyKey: "bob-up",
                 member: {customerId: "bob"}, points: 600, reason: "Goodwill"}) {
                 userErrors { code } } }"""
        )
        await gw.partner(
            """mutation { redeemReward(input: {idempotencyKey: "bob-five",
                 member: {customerId: "bob"}, rewardId: "five-off"}) { userErrors { code } } }"""
        )
        await hook.wait_for(1)  # the adjustment's webhook, answered 500
        delivery = await failed_delivery(gw)
        token = await gw.token(STAFF_SCOPES)
        yield Seeded(gw, hook, token, available.astimezone(NEW_YORK).date().isoformat(), delivery)


async def demo_client(gw: Gateway) -> OAuthClient | None:
    """A partner client with every scope, as the demo's own."""
    async with gw.database.transaction() as session:
        credentials = await gw.app.state.authorization.create_client(
            session, "test", "Demo partner", scopes.ALL
        )
        return await session.get(OAuthClient, credentials.client_id)


DELIVERIES = """{ webhookDeliveries(direction: OUT) { edges { node {
  id topic outcome attemptCount lastStatus } } } }"""


async def failed_delivery(gw: Gateway) -> str:
    """The adjustment's delivery once its first attempt is recorded as failed."""
    async with asyncio.timeout(30):
        while True:
            edges = (await gw.partner(DELIVERIES))["webhookDeliveries"]["edges"]
            nodes = [e["node"] for e in edges]
            if nodes and nodes[0]["attemptCount"] == 1:
                assert nodes[0] | {"id": "-"} == {
                    "id": "-",
                    "topic": "points.adjusted",
                    "outcome": "PENDING",  # waiting for its next attempt, 5 s on
                    "attemptCount": 1,
                    "lastStatus": 500,
                }
                return str(nodes[0]["id"])
            await asyncio.sleep(0.1)


async def signed_in(context: BrowserContext, seeded: Seeded) -> Page:
    page = await context.new_page()
    await page.goto(seeded.gw.url + "/admin/")
    await page.get_by_label("Partner access token").fill(seeded.token)
    await page.get_by_role("button", name="Open the dashboard").click()
    await expect(page.locator("svg.points-chart rect.bar").first).to_be_attached(timeout=TIMEOUT)
    return page


SERIES = """query($from: DateTime!, $to: DateTime!) {
  pointsSeries(from: $from, to: $to, interval: DAY) { start issued redeemed } }"""
STATS = """{ programStats { members pointsIssued pointsRedeemed outstandingPoints liability
  tiers { tier members } } }"""


async def test_the_page_carries_the_pages_policy(seeded: Seeded) -> None:
    gw = seeded.gw
    async with gw.http.get(gw.url + "/admin/") as r:
        assert r.status == 200 and r.headers["Content-Type"] == "text/html; charset=utf-8"
        host = gw.url.removeprefix("http://")
        assert r.headers["Content-Security-Policy"] == pages.content_security_policy(host)
        assert (r.headers["X-Frame-Options"], r.headers["Cache-Control"]) == ("DENY", "no-store")
    async with gw.http.get(gw.url + "/admin", allow_redirects=False) as r:
        assert (r.status, r.headers["Location"]) == (308, "/admin/")
    for asset in ("app.js", "api.js", "charts.js", "deliveries.js", "admin.css"):
        async with gw.http.get(f"{gw.url}/static/admin/{asset}") as r:
            assert r.status == 200 and r.headers["X-Content-Type-Options"] == "nosniff", asset


async def test_the_charts_draw_the_numbers_the_api_reports(
    seeded: Seeded, browser: Browser
) -> None:
    context = await browser.new_context(viewport={"width": 1100, "height": 900})
    page = await context.new_page()
    seen = watch(page)
    await page.goto(seeded.gw.url + "/admin/")
    await page.get_by_label("Partner access token").fill(seeded.token)
    await page.get_by_role("button", name="Open the dashboard").click()
    bars = page.locator("svg.points-chart rect.bar")
    await expect(bars.first).to_be_attached(timeout=TIMEOUT)
    drawn: list[dict[str, Any]] = await page.evaluate(
        """() => [...document.querySelectorAll('svg.points-chart g.bucket')].map((g) => ({
            start: g.dataset.start,
            bars: [...g.querySelectorAll('rect')].map((r) => ({
              series: r.dataset.series, value: Number(r.dataset.value),
              height: r.height.baseVal.value, title: r.querySelector('title').textContent })) }))"""
    )
    # The page's last 30 days, each day of the program's calendar, as the API has them.
    assert len(drawn) == 30
    first, last = drawn[0]["start"], drawn[-1]["start"]
    api = (
        await seeded.gw.graphql(
            SERIES,
            {"from": first, "to": (datetime.fromisoformat(last) + timedelta(hours=1)).isoformat()},
            seeded.token,
        )
    ).data["pointsSeries"]
    assert [
        {"start": d["start"], **{b["series"]: b["value"] for b in d["bars"]}} for d in drawn
    ] == api
    # ... which are the seeded numbers: today 3 signups, Dee's and the 600 adjusted
    # issued, the five-off's 500 redeemed; the coat's 1200 on the day they turned
    # available; nothing on any other day.
    today = seeded.gw.clock.now.astimezone(NEW_YORK).date().isoformat()
    by_day = {b["start"][:10]: (b["issued"], b["redeemed"]) for b in api}
    assert by_day.pop(today) == (1000, 500)
    assert by_day.pop(seeded.purchase_day) == (1200, 0)
    assert set(by_day.values()) == {(0, 0)}
    # Bar heights are the values on one scale (within a pixel of rounding).
    heights = [(b["value"], b["height"]) for d in drawn for b in d["bars"]]
    scale = max(h for _, h in heights) / 1200
    assert all(abs(h - abs(v) * scale) < 1 for v, h in heights), heights
    today_bars = next(d for d in drawn if d["start"][:10] == today)["bars"]
    assert [b["title"].split(": ")[1] for b in today_bars] == ["1,000 issued", "500 redeemed"]

    await screenshot(page, "dashboard")
    # The table beside the chart says the same.
    await page.get_by_text("Points per day as a table").click()
    rows = page.locator("table.series-table tbody tr")
    await expect(rows).to_have_count(30)
    row = page.locator(f'table.series-table tr[data-start^="{today}"] td')
    await expect(row).to_have_text(["1,000", "500", "0"])

    # The figures and the tier mix are programStats.
    stats = (await seeded.gw.graphql(STATS, None, seeded.token)).data["programStats"]
    assert stats == {
        "members": 4,
        "pointsIssued": 2200,
        "pointsRedeemed": 500,
        "outstandingPoints": 1700,
        "liability": "17.00",
        "tiers": [
            {"tier": "Bronze", "members": 3},
            {"tier": "Silver", "members": 1},
            {"tier": "Gold", "members": 0},
        ],
    }
    figures = page.locator("dl.figures .figure")
    await expect(figures.locator("dt")).to_have_text(
        ["Members", "Points issued", "Points redeemed", "Points expired", "Outstanding liability"]
    )
    await expect(figures.locator(".value")).to_have_text(["4", "2,200", "500", "0", "17.00"])
    tiers = await page.evaluate(
        """() => [...document.querySelectorAll('svg.tier-chart g.tier')].map((g) => [
             g.dataset.tier, Number(g.querySelector('rect').dataset.value),
             g.querySelector('rect').width.baseVal.value,
             g.querySelector('text.value').textContent])"""
    )
    assert [(name, value, label) for name, value, _, label in tiers] == [
        ("Bronze", 3, "3 (75%)"),
        ("Silver", 1, "1 (25%)"),
        ("Gold", 0, "0 (0%)"),
    ]
    assert tiers[0][2] == pytest.approx(3 * tiers[1][2]) and tiers[2][2] == 0
    # The token went in a header only: no URL the page asked for carries it.
    assert seen.requests and not [u for u in seen.requests if seeded.token in u]
    assert await page.evaluate("sessionStorage.getItem('loyalty-admin-token')") == seeded.token
    assert seen.clean(), seen.errors  # scripts and styles within the page's policy
    await context.close()


async def test_a_failed_outgoing_delivery_shows_and_its_retry_delivers_it(
    seeded: Seeded, browser: Browser
) -> None:
    context = await browser.new_context(viewport={"width": 1100, "height": 900})
    page = await signed_in(context, seeded)
    row = page.locator(f'table.deliveries tr[data-id="{seeded.delivery}"]')
    await expect(row).to_have_attribute("data-outcome", "PENDING", timeout=TIMEOUT)
    await expect(row).to_have_class("failed")
    await expect(row.locator(".outcome")).to_have_text("⚠ Failed, retrying")
    await expect(row.locator("td").nth(5)).to_have_text("500")
    # The inbound enrolment is listed too, applied: no failure, no retry button.
    inbound = page.locator("table.deliveries tr", has_text="member.enrolled")
    await expect(inbound.locator(".outcome")).to_have_text("Applied")
    await expect(inbound.get_by_role("button")).to_have_count(0)

    seeded.hook.then = 200  # the receiver is fixed
    await row.get_by_role(
        "button", name=f"Retry delivery {seeded.delivery} (points.adjusted)"
    ).click()
    await expect(row).to_have_attribute("data-outcome", "DELIVERED", timeout=TIMEOUT)
    await expect(row).not_to_have_class("failed")
    await expect(page.get_by_role("status").filter(has_text="Delivery")).to_have_text(
        f"Delivery {seeded.delivery}: delivered."
    )
    await expect(row.locator("td").nth(4)).to_have_text("2")
    await expect(row.locator("td").nth(5)).to_have_text("200")
    # The receiver got the same message twice (one webhook-id), and the API agrees.
    assert [r.message_id for r in seeded.hook.received] == [f"msg_test_{seeded.delivery}"] * 2
    node = (await seeded.gw.partner(DELIVERIES))["webhookDeliveries"]["edges"][0]["node"]
    assert (node["outcome"], node["attemptCount"], node["lastStatus"]) == ("DELIVERED", 2, 200)
    await screenshot(page, "dashboard-deliveries")
    await context.close()


async def test_axe_finds_nothing_serious_signed_out_or_in(seeded: Seeded, browser: Browser) -> None:
    context = await browser.new_context(bypass_csp=True)  # axe is injected inline
    page = await context.new_page()
    await page.goto(seeded.gw.url + "/admin/")
    await expect(page.get_by_label("Partner access token")).to_be_visible(timeout=TIMEOUT)
    assert (violations := await axe(page)) == [], described(violations)
    await page.close()
    page = await signed_in(context, seeded)
    await expect(page.locator("table.deliveries tbody tr").first).to_be_visible(timeout=TIMEOUT)
    await page.get_by_text("Points per day as a table").click()
    await page.get_by_text("Members per tier as a table").click()
    assert (violations := await axe(page)) == [], described(violations)
    await context.close()


# The accessible name of the focused control, roughly: its label's own text (not its
# options'), else its aria-label, else its text.
FOCUSED = """() => { const e = document.activeElement;
  const label = e.labels && e.labels[0];
  if (label) return [...label.childNodes].filter((n) => n.nodeType === Node.TEXT_NODE)
    .map((n) => n.textContent).join("").trim();
  return e.getAttribute("aria-label") || e.textContent.trim(); }"""


async def test_the_keyboard_reaches_every_control(seeded: Seeded, browser: Browser) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(seeded.gw.url + "/admin/")
    field = page.get_by_label("Partner access token")
    await expect(field).to_be_visible(timeout=TIMEOUT)
    await page.keyboard.press("Tab")  # the token field comes first
    assert await page.evaluate(FOCUSED) == "Partner access token"
    await page.keyboard.type(seeded.token)
    await page.keyboard.press("Enter")  # the form submits from the field
    await expect(page.locator("svg.points-chart")).to_be_visible(timeout=TIMEOUT)
    await expect(page.locator("table.deliveries tbody tr").first).to_be_visible(timeout=TIMEOUT)
    order = []
    for _ in range(7):
        await page.keyboard.press("Tab")
        order.append(await page.evaluate(FOCUSED))
    assert [name.split()[0] for name in order] == [
        "Period", "Sign", "Points", "Members", "Direction", "Failed", "Refresh",
    ]  # fmt: skip
    # The period changes from the keyboard: the last 12 months.
    await page.get_by_label("Period").focus()
    await page.keyboard.press("ArrowDown")
    await page.keyboard.press("ArrowDown")
    await expect(page.locator("svg.points-chart g.bucket")).to_have_count(12, timeout=TIMEOUT)
    this_month = seeded.gw.clock.now.astimezone(NEW_YORK).strftime("%Y-%m")
    month = page.locator(f'svg.points-chart g.bucket[data-start^="{this_month}"] rect')
    # This month holds everything but, maybe, the coat's points, which may have turned
    # available in the month before (within the last 21 days).
    issued = 2200 if seeded.purchase_day[:7] == this_month else 1000
    await expect(month.first).to_have_attribute("data-value", str(issued))
    # A table opens from the keyboard.
    await page.get_by_text("Points per month as a table").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("table.series-table tbody tr")).to_have_count(12)
    await context.close()


async def test_the_demo_staff_sign_in_mints_a_token_with_the_dashboard_scopes_only(
    seeded: Seeded, browser: Browser
) -> None:
    gw = seeded.gw
    staff: StaffSignIn = gw.app.state.staff_sign_in
    # Off, as on every gateway but the demo: the page offers no staff sign-in.
    async with gw.http.get(gw.url + "/admin/session") as r:
        assert r.status == 200 and await r.json() == {"demoStaff": False}
    async with gw.http.post(gw.url + "/admin/session") as r:
        assert r.status == 404
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(gw.url + "/admin/")
    await expect(page.get_by_label("Partner access token")).to_be_visible(timeout=TIMEOUT)
    await expect(page.get_by_role("button", name="Sign in as demo staff")).to_have_count(0)
    await context.close()

    staff.client = await demo_client(gw)  # as the demo does
    foreign = {"Origin": "https://shop.example"}
    async with gw.http.post(gw.url + "/admin/session", headers=foreign) as r:
        assert r.status == 403
    async with gw.http.post(gw.url + "/admin/session") as r:
        assert r.status == 200 and r.headers["Cache-Control"] == "no-store"
        minted = await r.json()
    assert minted["scope"] == "analytics:read webhooks:manage"
    denied = await gw.graphql("{ members { edges { node { id } } } }", None, minted["access_token"])
    assert denied.codes == ["FORBIDDEN"]

    context = await browser.new_context()
    page = await context.new_page()
    seen = watch(page)
    await page.goto(gw.url + "/admin/")
    await page.get_by_role("button", name="Sign in as demo staff").click()
    await expect(page.locator("dl.figures .value").first).to_have_text("4", timeout=TIMEOUT)
    token = await page.evaluate("sessionStorage.getItem('loyalty-admin-token')")
    assert token and not [u for u in seen.requests if token in u]
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_label("Partner access token")).to_be_visible()
    assert await page.evaluate("sessionStorage.getItem('loyalty-admin-token')") is None
    await context.close()
