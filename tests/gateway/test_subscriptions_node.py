"""The npm graphql-ws client (pinned in tests/audit) receives a purchase's event with the
exact balances, over graphql-transport-ws with its token in connectionParams."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from subprocess import DEVNULL, PIPE

import pytest

from tests.support.gateway import running_gateway
from tests.support.live import POINTS_CHANGED, hub_of, until, ws_url
from tests.support.operations import buy, enroll, line

REPO_ROOT = Path(__file__).resolve().parents[2]
CLIENT = REPO_ROOT / "tests" / "audit" / "node_modules" / "graphql-ws"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_graphql_ws_client_receives_a_purchase(database_url: str) -> None:
    if not CLIENT.is_dir():
        pytest.fail("tests/audit/node_modules is missing: run `npm ci --prefix tests/audit`")
    async with running_gateway(database_url) as gw:
        ada = await enroll(gw, "ada")
        process = await asyncio.create_subprocess_exec(
            "node",
            "tests/audit/subscribe.mjs",
            ws_url(gw.url),
            gw.member_token("ada"),
            POINTS_CHANGED,
            "1",
            cwd=REPO_ROOT,
            stdin=DEVNULL,
            stdout=PIPE,
            stderr=PIPE,
        )
        try:
            await until(lambda: hub_of(gw).stats.subscriptions == 1, within=20)
            bought = await buy(gw, "ada", "o-1", line("30.00"), line("20.00", 2, "shoes"))
            async with asyncio.timeout(20):
                stdout, stderr = await process.communicate()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert process.returncode == 0, stderr.decode()
        transaction = bought["transaction"]
        assert json.loads(stdout.decode().splitlines()[0]) == {
            "data": {
                "pointsChanged": {
                    "memberId": ada["id"],
                    "transactionId": transaction["id"],
                    "kind": "EARN",
                    "delta": 110,
                    "available": 100,
                    "pending": 110,
                    "held": 0,
                    "tier": "Bronze",
                    "occurredAt": transaction["occurredAt"],
                }
            },
            "extensions": {"cost": {"limit": 5000, "requested": 10}},  # as over HTTP
        }
        await until(lambda: hub_of(gw).stats.subscriptions == 0)
