"""The pages' infrastructure in a real browser: GraphiQL from the gateway's own assets
with every other origin unreachable, the headers of pages and assets, CORS for the
allowed origins only."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, expect

from gateway import pages
from tests.conftest import sqlite_url
from tests.support.browser import AXE, axe, offline, screenshot, watch
from tests.support.gateway import Gateway, running_gateway

pytestmark = pytest.mark.asyncio(loop_scope="module")

VENDOR_TESTS = AXE.parent.parent
STORE = "http://127.0.0.1:9"  # an allowed origin (nothing listens there; only its name counts)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateway(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Gateway]:
    url = sqlite_url(sqlite_template, tmp_path_factory.mktemp("pages"))
    async with running_gateway(url, settings={"allowed_origins": STORE}) as running:
        yield running


async def test_graphiql_renders_and_runs_a_query_with_only_the_gateway_reachable(
    gateway: Gateway, browser: Browser
) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    seen = watch(page)
    aborted = await offline(page, gateway.url)
    await page.goto(gateway.url + "/graphql", wait_until="load")
    editor = page.locator(".graphiql-query-editor .CodeMirror")
    await expect(editor).to_be_visible(timeout=15_000)
    await page.evaluate(
        """document.querySelector('.graphiql-query-editor .CodeMirror')
        .CodeMirror.setValue('{ tiers { name threshold } }')"""
    )
    await page.get_by_role("button", name="Headers").click()
    headers = json.dumps({"Authorization": f"Bearer {await gateway.token()}"})
    await page.evaluate(
        """(headers) => document.querySelector(
            '.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror'
        ).CodeMirror.setValue(headers)""",
        headers,
    )
    await page.get_by_role("button", name="Execute query (Ctrl-Enter)").click()
    response = page.locator(".graphiql-response")
    await expect(response).to_contain_text('"name": "Silver"', timeout=10_000)
    await expect(response).to_contain_text('"threshold": 1000')
    await screenshot(page, "graphiql")
    assert aborted == [], aborted  # it asked for nothing outside the gateway
    assert all(url.startswith(gateway.url) for url in seen.requests), seen.requests
    assert seen.clean(), seen.errors  # no refused policy, no failed script
    await context.close()


async def test_graphiql_has_no_serious_accessibility_violations(
    gateway: Gateway, browser: Browser
) -> None:
    context = await browser.new_context(bypass_csp=True)  # axe is injected inline
    page = await context.new_page()
    await page.goto(gateway.url + "/graphql", wait_until="load")
    await expect(page.locator(".graphiql-query-editor .CodeMirror")).to_be_visible(timeout=15_000)
    await page.get_by_role("button", name="Headers").click()  # the editor tools open too
    assert await axe(page) == []
    await context.close()


async def test_a_page_carries_its_policy_and_headers(gateway: Gateway) -> None:
    async with gateway.http.get(gateway.url + "/graphql", headers={"Accept": "text/html"}) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "text/html; charset=utf-8"
        policy = r.headers["Content-Security-Policy"]
        host = gateway.url.removeprefix("http://")
        assert policy == pages.content_security_policy(host)
        assert "script-src 'self';" in policy and "'unsafe-inline'" not in policy
        assert f"connect-src 'self' ws://{host} wss://{host};" in policy
        assert "frame-ancestors 'none'" in policy
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert "cdn" not in (await r.text()).lower()


async def test_a_host_header_that_is_no_host_stays_out_of_the_policy(gateway: Gateway) -> None:
    forged = "evil.example; script-src *"
    policy = pages.content_security_policy(forged)
    assert "evil" not in policy and policy.count("script-src") == 1


async def test_vendored_assets_are_cached_a_year_and_our_own_revalidated(
    gateway: Gateway,
) -> None:
    vendored = "/static/vendor/graphiql@3.8.3/graphiql.min.js"
    async with gateway.http.get(gateway.url + vendored) as r:
        assert r.status == 200
        assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Content-Type"].startswith("text/javascript")
    async with gateway.http.get(gateway.url + "/static/graphiql.js") as r:
        assert r.status == 200
        assert r.headers["Cache-Control"] == "no-cache"
        assert r.headers["ETag"]
    async with gateway.http.get(gateway.url + "/static/../pages.py") as r:
        assert r.status == 404
    async with gateway.http.get(gateway.url + "/static/nothing-here.js") as r:
        assert r.status == 404


async def test_cors_answers_the_allowed_origins_only(gateway: Gateway) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    async with gateway.http.options(
        gateway.url + "/graphql", headers={"Origin": STORE, **preflight}
    ) as r:
        assert r.status == 200
        assert r.headers["Access-Control-Allow-Origin"] == STORE
        assert "authorization" in r.headers["Access-Control-Allow-Headers"].lower()
        assert "Access-Control-Allow-Credentials" not in r.headers
    async with gateway.http.options(
        gateway.url + "/graphql", headers={"Origin": "http://evil.example", **preflight}
    ) as r:
        assert r.status == 400
        assert "Access-Control-Allow-Origin" not in r.headers
    query = {"query": "{ tiers { name } }"}
    async with gateway.http.post(
        gateway.url + "/graphql", json=query, headers={"Origin": "http://evil.example"}
    ) as r:
        assert "Access-Control-Allow-Origin" not in r.headers
    token = {"Authorization": f"Bearer {await gateway.token()}"}
    async with gateway.http.post(
        gateway.url + "/graphql", json=query, headers={"Origin": STORE, **token}
    ) as r:
        assert r.status == 200
        assert r.headers["Access-Control-Allow-Origin"] == STORE
        assert (await r.json())["data"]["tiers"][0]["name"] == "Bronze"


async def test_the_widget_script_is_one_script_for_any_origin(gateway: Gateway) -> None:
    async with gateway.http.get(gateway.url + "/widget.js") as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "text/javascript; charset=utf-8"
        assert r.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        text = await r.text()
    assert 'customElements.define("loyalty-widget"' in text


async def test_the_vendored_files_are_the_published_builds_listed() -> None:
    """Each file of the vendor README's table, with the checksum written there."""
    readme = (pages.STATIC / "vendor" / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| ") and "sha256" not in line]
    checked = 0
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        if len(cells) != 6:
            continue
        files = re.findall(r"`([^`]+)`", cells[2])
        sums = re.findall(r"[0-9a-f]{64}", cells[5])
        folder = files[0].split("/")[0]
        root = VENDOR_TESTS if "tests only" in cells[0] else pages.STATIC / "vendor"
        for name, expected in zip(files, sums, strict=True):
            path = root / (name if "/" in name else f"{folder}/{name}")
            assert hashlib.sha256(path.read_bytes()).hexdigest() == expected, path
            assert any(p.name.startswith("LICENSE") for p in path.parent.iterdir()), path
            checked += 1
    assert checked == 7
