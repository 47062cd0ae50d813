"""The command line, run as a user runs it: a real process, real files, real exit codes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ledger.program import DEMO_PROGRAM
from tests.support.server import free_port

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_migrate_creates_the_schema(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
    result = run("migrate", env={"LOYALTY_DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(tmp_path / "ledger.db") as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert {"members", "accounts", "entries", "lots", "holds", "outbox"} <= tables
    again = run("migrate", env={"LOYALTY_DATABASE_URL": url})
    assert again.returncode == 0, again.stderr


def test_jobs_run_as_of_a_given_time_reports_per_program(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
    assert run("migrate", env={"LOYALTY_DATABASE_URL": url}).returncode == 0
    result = run("jobs", "run", "--now", "2026-05-01T00:00:00Z", env={"LOYALTY_DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report == {
        "acme": {
            "activated": 0,
            "expired": 0,
            "expired_points": 0,
            "holds_released": 0,
            "birthdays": 0,
            "tier_changes": 0,
            "keys_purged": 0,
        }
    }


def test_jobs_run_refuses_a_time_without_offset() -> None:
    result = run("jobs", "run", "--now", "2026-05-01T00:00:00")
    assert result.returncode == 2
    assert "--now needs a UTC offset" in result.stderr


def test_a_bad_program_file_stops_start_with_file_key_and_reason(tmp_path: Path) -> None:
    program = tmp_path / "acme.toml"
    text = DEMO_PROGRAM.read_text().replace('min_tier = "Silver"', 'min_tier = "Platinum"')
    program.write_text(text)
    result = run("jobs", "run", env={"LOYALTY_PROGRAMS": str(program)})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"loyalty-gateway: invalid program file: {program}: rewards.0.min_tier: "
        "unknown tier 'Platinum'"
    )
    assert "Traceback" not in result.stderr


def _graphql(base: str, token: str, query: str) -> dict[str, object]:
    request = urllib.request.Request(
        base + "/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def test_demo_serves_graphiql_with_tokens_that_answer_the_readme_query() -> None:
    from gateway.demo import FIRST_MUTATION, FIRST_QUERY

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "demo", "--port", str(port)],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 90
        while not any(line.startswith("Metrics:") for line in lines):
            assert time.monotonic() < deadline, "".join(lines)
            line = process.stdout.readline()
            assert line, process.stderr.read() if process.stderr else ""
            lines.append(line)
        output = "".join(lines)
        table = {line.split()[0]: line.split()[1:] for line in lines[2:6] if line.strip()}
        # Grace: signup 100 + a 1180.00 coat 60 days ago (available, Silver), a 500-point
        # free-shipping redemption, a 50-point goodwill adjustment.
        assert table["1002"] == ["830", "0", "0", "1280", "Silver"]
        # Ada: signup 100 + (100 shoes × 2 + 25 socks; gift card excluded) + 50 review,
        # 100 held at checkout; the hat bought today is pending (×1.5 on a Tuesday).
        available, pending, held, lifetime, tier = table["1001"]
        assert (available, held, lifetime, tier) == ("275", "100", "375", "Bronze")
        assert pending in {"45", "67"}
        base = f"http://127.0.0.1:{port}"
        assert f"GraphiQL: {base}/graphql" in output
        assert f"Storefront:  {base}/demo/" in output and f"Dashboard:   {base}/admin/" in output
        assert f"Widget:      {base}/widget.js" in output
        member_token, partner_token = (part.split('"')[0] for part in output.split("Bearer ")[1:3])

        me = _graphql(base, member_token, FIRST_QUERY)
        assert me["data"]["me"]["customerId"] == "1001"  # type: ignore[index]
        assert me["data"]["me"]["points"] == {  # type: ignore[index]
            "available": 275,
            "pending": int(pending),
            "held": 100,
            "lifetimeEarned": 375,
        }
        assert me["data"]["me"]["tier"] == {  # type: ignore[index]
            "current": {"name": "Bronze"},
            "next": {"name": "Silver"},
            "toNext": 1000 - 225,  # the 225 purchase points of the available order
        }
        profile = _graphql(base, member_token, "{ me { profile { firstName source } } }")
        assert profile["data"] == {"me": {"profile": {"firstName": "Ada", "source": "hubspot"}}}
        orders = _graphql(base, member_token, "{ me { orders { name total currency } } }")
        assert orders["data"] == {  # from the fake Shopify, newest first
            "me": {
                "orders": [
                    {"name": "#1014", "total": "24.00", "currency": "USD"},
                    {"name": "#1001", "total": "112.50", "currency": "USD"},
                ]
            }
        }
        bought = _graphql(base, partner_token, FIRST_MUTATION)["data"]["recordPurchase"]  # type: ignore[index]
        assert bought["userErrors"] == []
        assert bought["transaction"]["points"] in {160, 240}  # 80.00 shoes × 2 (× 1.5 Tuesday)
        with urllib.request.urlopen(
            urllib.request.Request(base + "/graphql", headers={"Accept": "text/html"}), timeout=10
        ) as page:
            assert "graphiql" in page.read().decode().lower()
    finally:
        process.send_signal(signal.SIGINT)
        try:
            assert process.wait(timeout=30) == 0
            assert process.stderr is not None
            assert "Traceback" not in process.stderr.read()
        finally:
            if process.poll() is None:
                process.kill()
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()


def test_clients_create_prints_credentials_that_authenticate(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
    env = {"LOYALTY_DATABASE_URL": url}
    assert run("migrate", env=env).returncode == 0
    result = run(
        "clients",
        "create",
        "--program",
        "acme",
        "--name",
        "Till 7",
        "--scopes",
        "points:write rewards:redeem",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    credentials = json.loads(result.stdout)
    assert set(credentials) == {"client_id", "client_secret"}
    with sqlite3.connect(tmp_path / "ledger.db") as connection:
        row = connection.execute(
            "SELECT program_id, name, scopes, secret_hash FROM oauth_clients WHERE client_id = ?",
            (credentials["client_id"],),
        ).fetchone()
    assert row[:3] == ("acme", "Till 7", "points:write rewards:redeem")
    assert credentials["client_secret"] not in row[3]


def test_clients_create_refuses_unknown_programs_and_scopes() -> None:
    unknown = run(
        "clients", "create", "--program", "nope", "--name", "X", "--scopes", "points:write"
    )
    assert (unknown.returncode, unknown.stderr.strip()) == (
        2,
        "loyalty-gateway: no program 'nope' is loaded",
    )
    bad = run("clients", "create", "--program", "acme", "--name", "X", "--scopes", "root")
    assert (bad.returncode, bad.stderr.strip()) == (2, "loyalty-gateway: unknown scope(s): root")


def test_serve_answers_health_checks(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
    env = {**os.environ, "LOYALTY_DATABASE_URL": url}
    assert run("migrate", env=env).returncode == 0
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    assert (r.status, json.loads(r.read())) == (200, {"status": "ready"})
                    break
            except OSError:
                assert time.monotonic() < deadline, "serve did not come up"
                time.sleep(0.2)
    finally:
        server.terminate()
        # uvicorn shuts down gracefully, then re-raises SIGTERM as its exit status
        assert server.wait(timeout=30) in (0, -signal.SIGTERM)
