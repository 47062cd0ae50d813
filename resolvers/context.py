"""The typed context of one GraphQL request: who is asking, for which program, and the
request's own DataLoaders (never shared between requests: they cache)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from auth.principals import Anonymous, Partner, Principal, Shopper
from backends.registry import Backends
from events.bus import Hub
from ledger.commands import member_client_key
from ledger.db import Database, is_unavailable
from ledger.program import Program
from ledger.service import LoyaltyService
from resolvers.errors import UNAUTHENTICATED, ApiError
from resolvers.loaders import Loaders, Reader

log = logging.getLogger("loyalty.graphql")


@dataclass
class Context:
    database: Database
    service: LoyaltyService
    principal: Principal
    request_id: str
    clock: Callable[[], datetime]
    backends: Backends | None = None  # the programs' CRM and store clients
    hub: Hub | None = None  # the live events, on a WebSocket connection
    hang_up: Callable[[int, str], Awaitable[None]] | None = None  # closes that connection
    _loaders: Loaders | None = field(default=None, repr=False)
    _reader: Reader | None = field(default=None, repr=False)

    @property
    def program(self) -> Program:
        if isinstance(self.principal, Anonymous):
            raise ApiError("a bearer token is required", UNAUTHENTICATED)
        return self.service.program(self.principal.program_id)

    @property
    def program_id(self) -> str:
        return self.program.id

    @property
    def client_key(self) -> str:
        """Whose idempotency keys these are: the client, or the member signed in."""
        principal = self.principal
        if isinstance(principal, Partner):
            return principal.client_id
        if isinstance(principal, Shopper):
            return member_client_key(principal.customer_id)
        raise ApiError("a bearer token is required", UNAUTHENTICATED)

    @property
    def reader(self) -> Reader:
        """The request's read transaction (opened on first use)."""
        if self._reader is None:
            self._reader = Reader(self.database)
        return self._reader

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            self._loaders = Loaders(self.reader, self.program, self.clock, self.backends)
        return self._loaders

    async def forget_loaded(self) -> None:
        """After a write, what the loaders cached and the read snapshot are stale."""
        self._loaders = None
        await self.close()

    async def close(self) -> None:
        """End the read transaction; the next read begins a new one, even when ending
        this one failed."""
        reader, self._reader = self._reader, None
        if reader is None:
            return
        try:
            await reader.close()
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            # The connection is gone, and its transaction with it: nothing to end.
            log.warning("request %s: read transaction not closed: %r", self.request_id, exc)
