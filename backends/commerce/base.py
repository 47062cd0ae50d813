"""What a store client gives: each customer's newest orders, many customers in one call."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import ClassVar

from backends.client import BackendClient, in_chunks
from ledger.program_sections import Commerce


@dataclass(frozen=True)
class StoreOrder:
    """An order in the store, as `Member.orders` shows it."""

    id: str
    name: str | None
    total: Decimal
    currency: str
    created_at: datetime
    status: str | None = None


class CommerceClient(BackendClient, abc.ABC):
    """A store. Subclasses implement `fetch_orders`; callers use `orders`."""

    role: ClassVar[str] = "commerce"
    config: Commerce
    max_batch: ClassVar[int] = 100  # customers one backend call may carry
    max_orders: ClassVar[int] = 50  # the largest `first` the store is asked for

    async def orders(
        self, customer_ids: Sequence[str], first: int
    ) -> dict[str, list[StoreOrder] | None]:
        """Each customer's `first` newest orders, newest first (None: the store has no
        such customer), cached for `cache_ttl`. Raises a `BackendError` when the store
        cannot answer."""
        first = max(1, min(first, self.max_orders))
        return await self.cached(
            ("orders", first),
            customer_ids,
            lambda ids: in_chunks(
                ids, self.batch_size(first), lambda c: self.fetch_orders(c, first)
            ),
        )

    def batch_size(self, first: int) -> int:
        """Customers per call when each asks for `first` orders."""
        return self.max_batch

    @abc.abstractmethod
    async def fetch_orders(
        self, customer_ids: list[str], first: int
    ) -> Mapping[str, list[StoreOrder]]:
        """At most `batch_size(first)` customers in one call; absent customers omitted."""
