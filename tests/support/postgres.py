"""A throwaway PostgreSQL 15 server for the test suite, on a free loopback port.

The binaries are found in /usr/lib/postgresql/15/bin (or by `pg_config --bindir`). As
root the server runs as the `postgres` user, which PostgreSQL insists on.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

VERSION = "15"
START_ATTEMPTS = 3


class PostgresUnavailable(RuntimeError):
    """The binaries are missing or the server would not start."""


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    bindir: Path
    data: Path
    sockets: Path
    log: Path
    durable: bool = False  # commits flushed to the WAL before they are acknowledged

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def sqlalchemy_url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://{self.user}@{self.host}:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        psql = self.bindir / "psql"
        command = [
            str(psql if psql.exists() else "psql"),
            *("-h", self.host, "-p", str(self.port), "-U", self.user, "-d", database),
            *("-v", "ON_ERROR_STOP=1", "-At", "-c", sql),
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if result.returncode:
            raise PostgresUnavailable(f"psql failed: {result.stderr.strip()}")
        return result.stdout

    def create_database(self, name: str, template: str | None = None) -> None:
        suffix = f' TEMPLATE "{template}"' if template else ""
        self.psql(f'CREATE DATABASE "{name}"{suffix}')

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`fast`: sessions are told to go; `immediate`: like a crash)."""
        stopped = _run([*_pg_ctl(self.bindir, self.data, self.log), "stop", "-m", mode], 90)
        if stopped.returncode:
            raise PostgresUnavailable(f"the server did not stop: {stopped.stderr.strip()}")

    def start(self) -> None:
        """Start the stopped server again on the same port and data."""
        started = _run([*_pg_ctl(self.bindir, self.data, self.log), *_options(self), "start"], 90)
        if started.returncode:
            raise PostgresUnavailable(f"the server did not start again: {started.stderr.strip()}")


def _bindir() -> Path:
    candidates = [Path(f"/usr/lib/postgresql/{VERSION}/bin")]
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            found = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            )
            candidates.append(Path(found.stdout.strip()))
    for candidate in candidates:
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    raise PostgresUnavailable(f"no PostgreSQL binaries in {', '.join(map(str, candidates))}")


def _as_postgres(command: list[str]) -> list[str]:
    """Run as the `postgres` user when we are root; PostgreSQL refuses to run as root."""
    if os.geteuid() != 0:
        return command
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", "postgres", "--", *command]
    setpriv = shutil.which("setpriv")
    if setpriv:
        return [setpriv, "--reuid=postgres", "--regid=postgres", "--init-groups", *command]
    raise PostgresUnavailable("running as root, and neither runuser nor setpriv is available")


def _run(command: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _as_postgres(command), capture_output=True, text=True, timeout=timeout, check=False
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_postgres(*, durable: bool = False) -> Iterator[PostgresServer]:
    """Start a fresh cluster in a temporary folder; stop and delete it on exit. Not
    `durable`, it acknowledges commits before they reach the WAL (faster): a crash, or
    a stop in `immediate` mode, may lose the last ones."""
    bindir = _bindir()
    root = Path(tempfile.mkdtemp(prefix="loyalty-pg-"))
    data, sockets, log = root / "data", root / "sockets", root / "server.log"
    try:
        sockets.mkdir()
        root.chmod(0o755)
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
            shutil.chown(sockets, "postgres", "postgres")
        init = _run(
            [
                str(bindir / "initdb"),
                *("-D", str(data), "-U", "postgres", "--auth=trust"),
                *("--encoding=UTF8", "--locale=C", "--no-sync"),
            ],
            timeout=120,
        )
        if init.returncode:
            raise PostgresUnavailable(f"initdb failed: {init.stderr.strip()[-2000:]}")
        server = _start(bindir, data, sockets, log, durable)
        try:
            yield server
        finally:
            _run([str(bindir / "pg_ctl"), "-D", str(data), "stop", "-m", "immediate"], 60)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _start(bindir: Path, data: Path, sockets: Path, log: Path, durable: bool) -> PostgresServer:
    error = ""
    for _ in range(START_ATTEMPTS):
        port = _free_port()
        server = PostgresServer("127.0.0.1", port, "postgres", bindir, data, sockets, log, durable)
        started = _run([*_pg_ctl(bindir, data, log), *_options(server), "start"], timeout=90)
        if started.returncode == 0:
            return server
        error = log.read_text(errors="replace")[-2000:] if log.exists() else started.stderr
        time.sleep(0.5)
    raise PostgresUnavailable(f"the server did not start: {error}")


def _pg_ctl(bindir: Path, data: Path, log: Path) -> list[str]:
    return [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60"]


def _options(server: PostgresServer) -> list[str]:
    options = [
        f"-p {server.port}",
        f"-k {server.sockets}",
        f"-c listen_addresses={server.host}",
        "-c fsync=off",
        f"-c synchronous_commit={'on' if server.durable else 'off'}",
        "-c full_page_writes=off",
        "-c max_connections=300",
    ]
    return ["-o", " ".join(options)]
