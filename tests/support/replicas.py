"""Gateway replicas as real `loyalty-gateway serve` processes, which a test may SIGKILL
and start again, for the scale-out topology of DESIGN §9 without Docker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLI = "import sys; from gateway.cli import main; sys.exit(main())"


def environment(**settings: str) -> dict[str, str]:
    """This process's environment with `LOYALTY_<NAME>` set from `settings`."""
    return {**os.environ, **{f"LOYALTY_{name.upper()}": value for name, value in settings.items()}}


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`loyalty-gateway ARGS` in a process of its own, its output captured."""
    return subprocess.run(
        [sys.executable, "-c", CLI, *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def cli(env: dict[str, str], *args: str) -> str:
    """The output of a `loyalty-gateway ARGS` that must succeed."""
    done = run_cli(env, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def create_client(env: dict[str, str], program: str, scopes: str) -> dict[str, str]:
    created: dict[str, str] = json.loads(
        cli(
            env, "clients", "create", "--program", program, "--name", "replicas", "--scopes", scopes
        )
    )
    return created


class Replica:
    def __init__(self, name: str, port: int, env: dict[str, str], logs: Path, *serve: str) -> None:
        self.name = name
        self.serve = serve  # more options of `serve`, e.g. --workers
        self.port = port
        self.env = env
        self.log = logs / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    CLI,
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    *self.serve,
                ],
                env=self.env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.output()}")
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} was not ready in time: {self.output()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown of any kind."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
            self.process = None

    def metric(self, name: str) -> float:
        """A sample of the replica's own /metrics (loopback needs no token)."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as answer:
            text = answer.read().decode()
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise KeyError(name)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
