"""A throwaway nginx (Debian's package) balancing loopback upstreams, WebSocket upgrades
passed, as `deploy/nginx.conf` does for docker-compose."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.support.server import free_port

CONFIG = """
worker_processes 1;
error_log {root}/error.log warn;
pid {root}/nginx.pid;
{user}
events {{ worker_connections 1024; }}

http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;

    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ""      close;
    }}

    upstream gateway {{
{servers}
    }}

    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://gateway;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $http_host;
            proxy_read_timeout 3600s;
        }}
    }}
}}
"""


class NginxUnavailable(RuntimeError):
    """No nginx binary, or it would not start."""


def nginx_binary() -> str | None:
    return shutil.which("nginx", path="/usr/sbin:/usr/bin:/sbin:/bin")


@contextlib.contextmanager
def running_nginx(upstreams: Sequence[int], port: int | None = None) -> Iterator[str]:
    """nginx on loopback `port` (a free one by default) in front of `upstreams` (ports);
    yields its URL."""
    binary = nginx_binary()
    if binary is None:
        raise NginxUnavailable("nginx is not installed")
    root = Path(tempfile.mkdtemp(prefix="loyalty-nginx-"))
    port = port or free_port()
    servers = "\n".join(f"        server 127.0.0.1:{upstream};" for upstream in upstreams)
    user = "user root;" if _is_root() else ""
    (root / "nginx.conf").write_text(
        CONFIG.format(root=root, port=port, servers=servers, user=user)
    )
    process = subprocess.Popen(
        [binary, "-p", str(root), "-c", "nginx.conf", "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait(process, port, root)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        if process.stderr is not None:
            process.stderr.close()
        shutil.rmtree(root, ignore_errors=True)


def _is_root() -> bool:
    return os.geteuid() == 0


def _wait(process: subprocess.Popen[bytes], port: int, root: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = root / "error.log"
            detail = log.read_text(errors="replace") if log.exists() else ""
            raise NginxUnavailable(f"nginx exited: {detail[-1000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise NginxUnavailable("nginx did not listen in time")
