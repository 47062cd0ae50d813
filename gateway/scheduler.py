"""The job scheduler inside `serve`: the scheduled work of every program, every
`LOYALTY_JOBS_INTERVAL` seconds. Replicas may all run it: the ledger serializes runs
of one program, and a run finds nothing left to do after another."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime

from ledger.db import Database
from ledger.service import LoyaltyService

log = logging.getLogger("loyalty.jobs")


async def run_once(
    service: LoyaltyService, database: Database, now: datetime
) -> dict[str, dict[str, int]]:
    """Every program's jobs as of `now`, each program in its own transaction."""
    reports = {}
    for program_id in service.programs:
        async with database.transaction() as session:
            report = await service.run_jobs(session, program_id, now)
        reports[program_id] = asdict(report)
    return reports


async def run_forever(
    service: LoyaltyService, database: Database, interval: float, clock: Callable[[], datetime]
) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            reports = await run_once(service, database, clock())
        except Exception:
            log.exception("scheduled jobs failed")
            continue
        log.info("scheduled jobs: %s", reports)
