"""The machinery of the HTTP rows: servers in their own processes pinned to CPU 0, `wrk`
pinned to CPU 1, and the two measurements of DESIGN §10.

Throughput is `wrk -t1 -c16` at saturation. The latencies are a second `wrk` run at
half of that rate: `wrk` (not wrk2, which Debian does not package) with a Lua `delay()`
after each response on each connection, the connections and the pause chosen so that
the offered rate is about half the maximum; the table prints the rate reached. On a
machine with one core nothing is pinned, and the table says so.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.replicas import CLI, cli

ROOT = Path(__file__).resolve().parents[1]
CONNECTIONS = 16
SERVER_CPU, LOAD_CPU = 0, 1


def pinned() -> bool:
    """Whether server and load generator get a core each (not on a 1-core machine)."""
    return len(os.sched_getaffinity(0)) > 1 and (os.cpu_count() or 1) > 1


def pin(pid: int, cpu: int) -> None:
    if pinned():
        os.sched_setaffinity(pid, {cpu})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A server process on a free loopback port, pinned to the server's core."""

    def __init__(self, name: str, command: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.port = free_port()
        handle, log_path = tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")
        os.close(handle)
        self.log = Path(log_path)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [*command, "--host", "127.0.0.1", "--port", str(self.port)],
                env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        pin(self.process.pid, SERVER_CPU)

    def wait(self) -> Server:
        """Return once the server listens."""
        name = self.name
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{name} exited: {self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{name} did not listen in time: {self.output()}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        found = re.search(r"VmRSS:\s+(\d+) kB", status)
        assert found is not None
        return int(found.group(1)) / 1024

    def post(self, path: str, body: dict[str, Any], token: str | None = None) -> Any:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(
            self.url + path, json.dumps(body).encode(), headers, method="POST"
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            # A kill takes effect once the process leaves the kernel: right after a
            # multi-gigabyte database was built, its last write can wait a while behind
            # the system flushing that build to disk.
            self.process.wait(120)
        self.log.unlink(missing_ok=True)


def gateway(database_url: str, issuer_port: int | None = None) -> Server:
    """`loyalty-gateway serve` over the database, no rate limit in the way."""
    env = {
        "LOYALTY_DATABASE_URL": database_url,
        "LOYALTY_RATE_LIMIT": "1000000/second",
        "LOYALTY_OAUTH_RATE_LIMIT": "1000000/second",
        "LOYALTY_JOBS_INTERVAL": "3600",
    }
    return Server("gateway", [sys.executable, "-c", CLI, "serve"], env)


def floor(database_url: str) -> Server:
    return Server(
        "floor", [sys.executable, "-m", "bench.floors"], {"BENCH_FLOOR_URL": database_url}
    )


def partner_token(server: Server, database_url: str) -> str:
    """A token of a new partner client with every scope, the way a partner gets one:
    `loyalty-gateway clients create`, then the client-credentials grant."""
    from auth import scopes

    every = scopes.render(scopes.ALL)
    env = {**os.environ, "LOYALTY_DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)}
    create = ["clients", "create", "--program", "acme", "--name", "bench", "--scopes", every]
    client = json.loads(cli(env, *create))
    form = urllib.parse.urlencode(
        {
            "grant_type": "client_credentials",
            "client_id": client["client_id"],
            "client_secret": client["client_secret"],
            "scope": every,
        }
    ).encode()
    with urllib.request.urlopen(server.url + "/oauth/token", form, timeout=30) as answer:
        return str(json.loads(answer.read())["access_token"])


# The Lua for wrk: each body is JSON in which `{id}` becomes a fresh id (for keys and
# order ids) and `{m}` a member number, per request.
LUA = """
local counter = 0
local members = {members}
local prefix = "{prefix}"
local headers = {{["Content-Type"] = "application/json"{auth}}}
local bodies = {{ {bodies} }}
request = function()
  counter = counter + 1
  local body = bodies[counter % #bodies + 1]
  local id = prefix .. counter
  body = body:gsub("{{id}}", id):gsub("{{m}}", tostring(counter % members + 1))
  return wrk.format("POST", nil, headers, body)
end
{delay}
"""


@dataclass
class Load:
    """What one scenario posts: a path, the bodies (taken in turn), a token."""

    path: str
    bodies: list[str]  # JSON with `{id}` (a fresh id) and `{m}` (a member number)
    members: int
    token: str | None = None

    def script(self, prefix: str, delay_ms: int | None) -> str:
        quoted = ", ".join(json.dumps(body) for body in self.bodies)
        auth = f', ["Authorization"] = "Bearer {self.token}"' if self.token else ""
        delay = f"delay = function() return {delay_ms} end" if delay_ms else ""
        return LUA.format(
            members=self.members, prefix=prefix, auth=auth, bodies=quoted, delay=delay
        )


@dataclass
class Run:
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def _ms(text: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    assert found is not None, text
    return float(found.group(1)) * _UNITS[found.group(2)]


_runs = 0


def wrk(server: Server, load: Load, seconds: int, connections: int, delay_ms: int | None) -> Run:
    global _runs
    _runs += 1
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(load.script(f"b{os.getpid()}-{_runs}-{time.time_ns()}-", delay_ms))
    try:
        # A 30 s timeout: a slow answer is a latency to count, not a dropped request.
        command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s"]
        command += ["--latency"]
        command += ["-s", lua.name, server.url + load.path]
        if pinned():
            command = ["taskset", "-c", str(LOAD_CPU), *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    finally:
        os.unlink(lua.name)
    out = done.stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"\s50%\s+(\S+)", out)
    p99 = re.search(r"\s99%\s+(\S+)", out)
    if done.returncode or rate is None or p50 is None or p99 is None:
        raise RuntimeError(f"wrk failed: {done.stderr}\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    failed = re.search(r"Socket errors:.*?timeout (\d+)", out)
    errors = (int(bad.group(1)) if bad else 0) + (int(failed.group(1)) if failed else 0)
    return Run(float(rate.group(1)), _ms(p50.group(1)), _ms(p99.group(1)), errors)


@dataclass
class Measure:
    maximum: Run
    half: Run

    @property
    def rate(self) -> float:
        return self.maximum.rate


def measure(server: Server, load: Load, seconds: int) -> Measure:
    """Max req/s, then p50/p99 at about half of it (see the module's note)."""
    maximum = wrk(server, load, seconds, CONNECTIONS, None)
    target = max(maximum.rate / 2, 1.0)
    # Connections each pausing ~20 ms between requests reach the target rate; the pause
    # is whole milliseconds (wrk's delay), so fewer connections at high rates lose less.
    connections = max(1, min(1000, round(target * 0.02)))
    service_ms = 1000 / max(maximum.rate, 1.0)
    delay_ms = max(1, round(connections * 1000 / target - service_ms))
    half = wrk(server, load, seconds, connections, delay_ms)
    return Measure(maximum, half)


def machine() -> dict[str, str]:
    """Date, CPU, load and versions, for RESULTS.md."""
    import sqlite3
    from importlib.metadata import version

    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"model name\s*:\s*(.+)", cpuinfo)
    postgres = "absent"
    for bindir in (Path("/usr/lib/postgresql/15/bin"),):
        if (bindir / "postgres").exists():
            postgres = subprocess.run(
                [str(bindir / "postgres"), "--version"], capture_output=True, text=True
            ).stdout.strip()
    packages = ["starlette", "uvicorn", "strawberry-graphql", "sqlalchemy", "aiosqlite"]
    packages += ["asyncpg", "graphql-core"]
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": f"{model.group(1).strip() if model else platform.processor()}, "
        f"{os.cpu_count()} cores",
        "pinning": "server on CPU 0, load generator on CPU 1"
        if pinned()
        else "none (one core: server and load share it)",
        "load average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres,
        "wrk": (wrk_version.splitlines() or ["?"])[0],
        "packages": ", ".join(f"{name} {version(name)}" for name in packages),
    }


def require_wrk() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: `apt-get install wrk` (make bench installs it)")
