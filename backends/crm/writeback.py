"""The CRM write-back: each member's points and tier, as the ledger's events say them,
copied to the program's CRM (`loyalty_points`, `loyalty_tier`), coalesced per member.

`offer` is told of every event the outbox relay published and only notes, per member,
the newest balances (by event id): it never waits, so no write waits for a CRM. Every
`interval` seconds `flush` sends what was noted, one batch per program (HubSpot's
`batch/update`), after looking up the members' customer ids (forgotten members are
not written). A CRM that cannot take it keeps the values noted for the next round,
unless a newer value came in the meantime; noting more than `MAX_PENDING` members drops
the oldest (the next change of each will be written).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from backends.crm.base import LoyaltyStanding
from backends.errors import BackendError
from backends.registry import Backends
from ledger import read_repository
from ledger.db import Database

log = logging.getLogger("loyalty.backends")

MAX_PENDING = 100_000
INTERVAL = 1.0


class CrmWriteBack:
    def __init__(self, database: Database, backends: Backends, interval: float = INTERVAL) -> None:
        self.database = database
        self.backends = backends
        self.interval = interval
        # (program, member id) -> (event id, standing), oldest first
        self._pending: OrderedDict[tuple[str, int], tuple[int, LoyaltyStanding]] = OrderedDict()
        # (program, member id) -> the newest event id written: the relay may publish an
        # event again (its catch-up after the commit's own publication), which is not news
        self._written: OrderedDict[tuple[str, int], int] = OrderedDict()
        self._task: asyncio.Task[None] | None = None

    def offer(self, program_id: str, member_id: int | None, event_id: int, payload: Any) -> None:
        """Note an event's balances, if it has them and the program's CRM writes back."""
        if member_id is None or not isinstance(payload, Mapping):
            return
        points, tier = payload.get("available"), payload.get("tier")
        if not isinstance(points, int) or not isinstance(tier, str):
            return
        if not self._writes_back(program_id):
            return
        self._note((program_id, member_id), event_id, LoyaltyStanding(points, tier))

    def _note(self, key: tuple[str, int], event_id: int, standing: LoyaltyStanding) -> None:
        noted = self._pending.get(key)
        if noted is not None and noted[0] >= event_id:
            return  # an older event, or the same one published again
        if self._written.get(key, -1) >= event_id:
            return  # written already
        self._pending[key] = (event_id, standing)
        self._pending.move_to_end(key)
        while len(self._pending) > MAX_PENDING:
            self._pending.popitem(last=False)

    def _writes_back(self, program_id: str) -> bool:
        try:
            crm = self.backends.crm(program_id)
        except BackendError:
            return False
        return crm is not None and crm.writes_back

    @property
    def pending(self) -> int:
        return len(self._pending)

    def noted(self) -> dict[tuple[str, int], LoyaltyStanding]:
        """What the next round will write, by (program, member id)."""
        return {key: standing for key, (_, standing) in self._pending.items()}

    async def flush(self) -> None:
        """Send everything noted so far, one program after another."""
        noted, self._pending = self._pending, OrderedDict()
        by_program: dict[str, dict[int, tuple[int, LoyaltyStanding]]] = {}
        for (program_id, member_id), value in noted.items():
            by_program.setdefault(program_id, {})[member_id] = value
        for program_id, members in by_program.items():
            try:
                await self._write(program_id, members)
            except (BackendError, SQLAlchemyError, OSError) as exc:  # the CRM or the database
                log.warning("program %s: CRM write-back failed, retried later: %r", program_id, exc)
                for member_id, (event_id, standing) in members.items():
                    self._note((program_id, member_id), event_id, standing)
                continue
            for member_id, (event_id, _) in members.items():
                key = (program_id, member_id)
                self._written[key] = max(event_id, self._written.get(key, -1))
                self._written.move_to_end(key)
            while len(self._written) > MAX_PENDING:
                self._written.popitem(last=False)

    async def _write(
        self, program_id: str, members: dict[int, tuple[int, LoyaltyStanding]]
    ) -> None:
        crm = self.backends.crm(program_id)
        if crm is None:
            return
        async with self.database.reading() as session:
            found = await read_repository.members_by_ids(session, program_id, list(members))
        standings = {
            found[member_id][0].customer_id: standing
            for member_id, (_, standing) in members.items()
            if member_id in found  # a forgotten member is written no more
        }
        if standings:
            await crm.write_loyalty(standings)

    # -- running inside the server ---------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if not self._pending:
                continue
            try:
                await self.flush()
            except Exception:  # the database away, or a defect: logged, tried next round
                log.exception("CRM write-back round failed")
