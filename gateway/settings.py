"""Settings: read once from the environment (prefix `LOYALTY_`) into one object."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ledger.program import DEMO_PROGRAM, Program, load_programs


class Settings(BaseSettings):
    """Every `LOYALTY_*` variable of DESIGN §2. No other module reads the environment."""

    model_config = SettingsConfigDict(env_prefix="LOYALTY_", extra="ignore", frozen=True)

    database_url: str = "sqlite+aiosqlite:///./loyalty.db"
    # PostgreSQL connections one replica opens at most, its workers together
    database_pool: int = Field(default=30, ge=2)
    workers: int = Field(default=1, gt=0)  # set by `serve --workers` for its workers only
    broker_url: str = "memory://"
    programs: Path = DEMO_PROGRAM
    issuer: str = "http://127.0.0.1:8000"
    signing_key_file: Path | None = None
    rate_limit: str = "100/second"
    oauth_rate_limit: str = "10/second"
    webhook_rate_limit: str = "50/second"  # inbound deliveries per program and source
    introspection: bool = True
    jobs_interval: float = Field(default=60, gt=0)
    operation_timeout: float = Field(default=15, gt=0)
    allowed_origins: str = ""  # origins separated by spaces or commas
    connection_init_timeout: float = Field(default=10, gt=0)  # seconds, on a WebSocket
    max_subscriptions: int = Field(default=20, gt=0)  # per WebSocket connection
    subscriber_queue: int = Field(default=256, gt=0)  # events waiting for one subscriber
    # seconds between two reads of the revocation list for the tokens connections hold
    revocation_check: float = Field(default=2.0, gt=0)
    allow_private_webhooks: bool = False
    webhook_timeout: float = Field(default=10, gt=0)  # seconds per outgoing webhook call
    metrics_token: str | None = None
    crm_write_back_interval: float = Field(default=1.0, gt=0)  # seconds between CRM writes

    def pool_per_worker(self) -> int:
        """Each worker's share of `database_pool` (`workers_problem` keeps it at 2 or
        more, so a request and the background work never wait on each other alone)."""
        return max(2, self.database_pool // self.workers)

    def workers_problem(self, workers: int) -> str | None:
        """Why `serve` cannot run `workers` workers within the connection budget."""
        if workers < 1:
            return "--workers must be 1 or more"
        if not self.database_url.startswith("sqlite") and self.database_pool // workers < 2:
            return (
                f"--workers {workers} needs LOYALTY_DATABASE_POOL of {2 * workers} or more "
                f"(2 connections a worker), not {self.database_pool}"
            )
        return None

    def origins(self) -> list[str]:
        return [origin for origin in self.allowed_origins.replace(",", " ").split() if origin]

    def signing_key_pem(self) -> bytes | None:
        """The configured private key, read once at start, or None (kept in the database)."""
        return self.signing_key_file.read_bytes() if self.signing_key_file else None

    def load_programs(self) -> dict[str, Program]:
        """The program files, validated; a bad file raises `ProgramFileError`."""
        return load_programs(self.programs)


def export_workers(workers: int) -> None:
    """Tells the worker processes `serve` starts how many they are: uvicorn builds each
    worker's app from the environment (`LOYALTY_WORKERS`), which they inherit."""
    os.environ["LOYALTY_WORKERS"] = str(workers)
