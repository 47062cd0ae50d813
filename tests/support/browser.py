"""A real browser for the page tests: Debian's Chromium (`/usr/bin/chromium`, which
`.ci/run` installs when it is missing) driven by Playwright, headless; never a browser
download.

One browser per test module (`browser` in tests/conftest.py, on the module's event
loop, so the module's gateway and the browser share it); each test opens its own
context. The helpers: `watch` collects what a page logged as an error (a refused
Content-Security-Policy, a failed script), `offline` aborts every request to another
origin, `axe` runs axe-core (vendored, pinned) and returns the serious and critical
violations, `screenshot` saves the page under `test-artifacts/` (gitignored).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.async_api import Browser, ConsoleMessage, Page, Route, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
AXE = Path(__file__).parent / "vendor" / "axe-core@4.14.1" / "axe.min.js"
SERIOUS = ("serious", "critical")


class BrowserUnavailable(Exception):
    """No Chromium at /usr/bin/chromium."""


@asynccontextmanager
async def launched() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, without the background traffic of a desktop browser."""
    if not os.access(CHROMIUM, os.X_OK):
        raise BrowserUnavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Watch:
    """The errors a page logged, and the requests it made, by URL."""

    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def clean(self) -> bool:
        return not self.errors


def watch(page: Page) -> Watch:
    seen = Watch()

    def logged(message: ConsoleMessage) -> None:
        if message.type == "error":
            seen.errors.append(message.text)

    page.on("console", logged)
    page.on("pageerror", lambda error: seen.errors.append(f"uncaught: {error}"))
    page.on("request", lambda request: seen.requests.append(request.url))
    return seen


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def offline(page: Page, *allowed: str) -> list[str]:
    """Abort every request (WebSocket handshakes aside) to an origin not in `allowed`;
    returns the aborted URLs as they happen."""
    aborted: list[str] = []
    origins = {origin_of(url) for url in allowed}

    async def decide(route: Route) -> None:
        if origin_of(route.request.url) in origins:
            await route.continue_()
        else:
            aborted.append(route.request.url)
            await route.abort("internetdisconnected")

    await page.route(re.compile(".*"), decide)
    return aborted


async def axe(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now. The page's
    context must be made with `bypass_csp=True`: the pages' policy refuses the inline
    script that axe is injected as (as it should)."""
    await page.add_script_tag(path=str(AXE))
    results: dict[str, Any] = await page.evaluate(
        "async () => JSON.parse(JSON.stringify(await axe.run(document)))"
    )
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]]}
        for v in results["violations"]
        if v.get("impact") in SERIOUS
    ]


def described(violations: list[dict[str, Any]]) -> str:
    return json.dumps(violations, indent=2)


async def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """`test-artifacts/<name>.png`; the folder is made on first use."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=full_page)
    return path
