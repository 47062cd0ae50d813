"""`docker-compose.yml` and its nginx configuration: the topology of DESIGN §9 (Docker does
not run here, so the file is read, and nginx checks its configuration for real)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.settings import Settings
from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
NGINX = ROOT / "deploy" / "nginx.conf"


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def test_the_services_of_the_topology() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "redis", "migrate", "gateway-1", "gateway-2", "lb"}
    assert services["postgres"]["image"] == "postgres:15"
    assert services["redis"]["image"].startswith("redis:")
    assert services["lb"]["image"].startswith("nginx:")
    for name in ("gateway-1", "gateway-2", "migrate"):
        assert services[name]["image"] == "loyalty-gateway:latest"
        assert services[name]["build"] == "."
    assert services["migrate"]["command"] == ["loyalty-gateway", "migrate"]
    assert (ROOT / "Dockerfile").exists()


def test_health_checks_and_start_order() -> None:
    services = compose()["services"]
    for name in ("postgres", "redis", "gateway-1", "gateway-2", "lb"):
        assert services[name]["healthcheck"]["test"], name
    for name in ("gateway-1", "gateway-2"):
        depends = services[name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}
        assert depends["postgres"] == {"condition": "service_healthy"}
        assert depends["redis"] == {"condition": "service_healthy"}
        assert "/readyz" in " ".join(services[name]["healthcheck"]["test"])
    assert set(services["lb"]["depends_on"]) == {"gateway-1", "gateway-2"}


def test_the_replicas_share_one_database_and_one_broker() -> None:
    services = compose()["services"]
    fields = {f"LOYALTY_{name.upper()}" for name in Settings.model_fields}
    environments = [services[name]["environment"] for name in ("gateway-1", "gateway-2")]
    assert environments[0] == environments[1]
    environment = environments[0]
    assert set(environment) <= fields  # names of DESIGN §2, spelled exactly
    assert environment["LOYALTY_DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert environment["LOYALTY_DATABASE_URL"].split("@")[1].startswith("postgres:5432/")
    assert environment["LOYALTY_BROKER_URL"] == "redis://redis:6379/0"
    assert (
        services["migrate"]["environment"]["LOYALTY_DATABASE_URL"]
        == (environment["LOYALTY_DATABASE_URL"])
    )


def test_the_balancer_passes_websocket_upgrades(tmp_path: Path) -> None:
    config = NGINX.read_text()
    assert "proxy_set_header Upgrade $http_upgrade;" in config
    assert "proxy_set_header Connection $connection_upgrade;" in config
    assert "server gateway-1:8000;" in config and "server gateway-2:8000;" in config
    volume = compose()["services"]["lb"]["volumes"][0]
    assert volume.startswith("./deploy/nginx.conf:/etc/nginx/nginx.conf")
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if nginx is None:
        if IN_CI:
            raise AssertionError("nginx is not installed")
        pytest.skip("nginx is not installed")
    local = config.replace("gateway-1:8000", "127.0.0.1:8001").replace(
        "gateway-2:8000", "127.0.0.1:8002"
    )
    (tmp_path / "logs").mkdir()
    (tmp_path / "nginx.conf").write_text(local)
    checked = subprocess.run(
        [
            nginx,
            "-t",
            "-p",
            str(tmp_path),
            "-c",
            "nginx.conf",
            "-g",
            "error_log stderr; pid nginx.pid;",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
