"""The GraphQL over HTTP conformance audit of the npm package graphql-http, run against a
running gateway: no audit may end in "error", nor in "warn".

The audit needs Node and `npm ci --prefix tests/audit` (its lock pins graphql-http)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from subprocess import DEVNULL, PIPE
from typing import Any

import pytest

from tests.support.gateway import running_gateway

REPO_ROOT = Path(__file__).resolve().parents[2]
AUDIT_DIR = REPO_ROOT / "tests" / "audit"
TIMEOUT_SECONDS = 120
MIN_RESULTS = 20


async def run_audit(url: str) -> list[dict[str, Any]]:
    """The audit results ({id, name, status, reason}) for the GraphQL endpoint at `url`."""
    process = await asyncio.create_subprocess_exec(
        "node",
        "tests/audit/audit.mjs",
        url,
        cwd=REPO_ROOT,
        stdin=DEVNULL,
        stdout=PIPE,
        stderr=PIPE,
    )
    try:
        async with asyncio.timeout(TIMEOUT_SECONDS):
            stdout, stderr = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"the graphql-http audit did not finish within {TIMEOUT_SECONDS} s")
    output, errors = stdout.decode(), stderr.decode()
    assert process.returncode == 0, f"node exited {process.returncode}:\n{errors}"
    try:
        results = json.loads(output)
    except ValueError:
        pytest.fail(f"the audit printed no JSON.\nstdout:\n{output}\nstderr:\n{errors}")
    assert isinstance(results, list), output
    return results


def describe(results: list[dict[str, Any]]) -> str:
    return "\n".join(f"  [{r['id']}] {r['name']}: {r['reason']}" for r in results)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_graphql_over_http_audit_passes(database_url: str) -> None:
    if not (AUDIT_DIR / "node_modules" / "graphql-http").is_dir():
        pytest.fail(
            "tests/audit/node_modules is missing: run `npm ci --prefix tests/audit` "
            "(needs Node and npm) before running this test"
        )

    async with running_gateway(database_url) as gw:
        results = await run_audit(gw.url + "/graphql")

    assert len(results) >= MIN_RESULTS, f"only {len(results)} audit results: {results}"
    errors = [r for r in results if r["status"] == "error"]
    assert errors == [], (
        f"{len(errors)} GraphQL over HTTP audit(s) failed "
        f"(requirements the gateway does not meet):\n{describe(errors)}"
    )
    # The SHOULDs too (application/graphql-response+json, 400 on requests that never ran).
    warnings = [r for r in results if r["status"] != "ok"]
    assert warnings == [], f"{len(warnings)} audit warning(s):\n{describe(warnings)}"
