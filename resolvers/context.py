"""The typed context of one GraphQL request: who is asking, for which program, and the
request's own DataLoaders (never shared between requests: they cache)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from auth.principals import Anonymous, Partner, Principal, Shopper
from ledger.db import Database
from ledger.program import Program
from ledger.service import LoyaltyService
from resolvers.errors import ApiError
from resolvers.loaders import Loaders


@dataclass
class Context:
    database: Database
    service: LoyaltyService
    principal: Principal
    request_id: str
    clock: Callable[[], datetime]
    _loaders: Loaders | None = field(default=None, repr=False)

    @property
    def program(self) -> Program:
        if isinstance(self.principal, Anonymous):
            raise ApiError("a bearer token is required", "UNAUTHENTICATED")
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
            return f"member:{principal.customer_id}"
        raise ApiError("a bearer token is required", "UNAUTHENTICATED")

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            self._loaders = Loaders(self.database, self.program, self.clock)
        return self._loaders

    def forget_loaded(self) -> None:
        """After a write, what the loaders cached is stale."""
        self._loaders = None
