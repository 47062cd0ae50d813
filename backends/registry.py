"""Every program's backend clients, built once at start-up and closed at shutdown.

`CRM_CLIENTS` and `COMMERCE_CLIENTS` map a program file's `kind` to its client class:
adding a backend is one line here (see `backends.client` for the rest). A program whose
`kind` has no client yet gets `UnsupportedBackend` for that section: its fields answer
BACKEND_UNAVAILABLE, the rest of the gateway runs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TypeVar

import aiohttp

from backends.client import BackendClient, Breakers, CallObserver, client_session
from backends.commerce.base import CommerceClient
from backends.commerce.shopify import ShopifyClient
from backends.commerce.woocommerce import WooCommerceClient
from backends.crm.base import CrmClient
from backends.crm.hubspot import HubSpotClient
from backends.crm.salesforce import SalesforceClient
from backends.errors import BackendUnavailable
from ledger.program import Program
from ledger.program_sections import BackendSection

C = TypeVar("C", bound=BackendClient)
log = logging.getLogger("loyalty.backends")

CRM_CLIENTS: dict[str, type[CrmClient]] = {
    "hubspot": HubSpotClient,
    "salesforce": SalesforceClient,
}
COMMERCE_CLIENTS: dict[str, type[CommerceClient]] = {
    "shopify": ShopifyClient,
    "woocommerce": WooCommerceClient,
}


class UnsupportedBackend(BackendUnavailable):
    """A program file names a backend kind this gateway has no client for."""


class Backends:
    """The clients of every program: `crm(program_id)` and `commerce(program_id)`.
    Each client has its own `aiohttp.ClientSession` (one per program and backend),
    owned here and closed by `close()`: build it in the running loop (the lifespan)."""

    def __init__(
        self, programs: Mapping[str, Program], observer: CallObserver | None = None
    ) -> None:
        self.breakers = Breakers(observer)
        self._sessions: list[aiohttp.ClientSession] = []
        self._crm: dict[str, CrmClient] = {}
        self._commerce: dict[str, CommerceClient] = {}
        self._unsupported: dict[tuple[str, str], str] = {}
        for program in programs.values():
            if program.crm is not None:
                crm = CRM_CLIENTS.get(program.crm.kind)
                if crm is None:
                    self._unsupported[(program.id, "crm")] = program.crm.kind
                else:
                    self._crm[program.id] = self._client(crm, program.id, program.crm)
            if program.commerce is not None:
                store = COMMERCE_CLIENTS.get(program.commerce.kind)
                if store is None:
                    self._unsupported[(program.id, "commerce")] = program.commerce.kind
                else:
                    self._commerce[program.id] = self._client(store, program.id, program.commerce)
        for (program_id, role), kind in self._unsupported.items():
            log.warning("program %s: no client for [%s] kind %r", program_id, role, kind)

    def _client(self, cls: type[C], program_id: str, config: BackendSection) -> C:
        session = client_session(config)
        self._sessions.append(session)
        return cls(program_id, config, session, self.breakers)

    def crm(self, program_id: str) -> CrmClient | None:
        """The program's CRM client; None when its file has no `[crm]`."""
        self._supported(program_id, "crm")
        return self._crm.get(program_id)

    def commerce(self, program_id: str) -> CommerceClient | None:
        """The program's store client; None when its file has no `[commerce]`."""
        self._supported(program_id, "commerce")
        return self._commerce.get(program_id)

    def clients(self) -> list[BackendClient]:
        return [*self._crm.values(), *self._commerce.values()]

    def _supported(self, program_id: str, role: str) -> None:
        kind = self._unsupported.get((program_id, role))
        if kind is not None:
            raise UnsupportedBackend(kind, "no client for this kind of backend yet")

    async def close(self) -> None:
        for session in self._sessions:
            await session.close()
        self._sessions.clear()
