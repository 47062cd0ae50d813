"""Per-request DataLoaders: every list of members costs one query per field, not one
query per member. Built by the request's `Context`; results come back in key order."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from aiodataloader import DataLoader
from sqlalchemy.ext.asyncio import AsyncSession

from backends.commerce.base import StoreOrder
from backends.crm.base import CrmProfile
from backends.errors import BackendError
from backends.registry import Backends
from ledger import read_repository, rules, tiers
from ledger.db import Database
from ledger.models import Account, Entry, EntryKind, Hold, Member, Redemption, Reward
from ledger.program import Program
from ledger.scope import LedgerScope

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")
EXPIRING_WITHIN = timedelta(days=30)
# Keys in one batch: one IN list a database takes comfortably (SQLite's default limit
# of bound parameters is far above it); a longer list is read in several statements.
MAX_BATCH = 500


class Reader:
    """One read transaction for the whole request: every loader reads the same snapshot,
    one statement at a time (a session runs one statement at a time)."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._session: AsyncSession | None = None
        self._reading: AbstractAsyncContextManager[AsyncSession] | None = None
        self._lock = asyncio.Lock()

    async def run(self, fetch: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async with self._lock:
            if self._session is None:
                self._reading = self.database.reading()
                self._session = await self._reading.__aenter__()
            return await fetch(self._session)

    async def run_one(self, fetch: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """`fetch`, of one statement, when it is the request's only read: outside any
        transaction if none is open (`Database.reading_one`), else in it."""
        async with self._lock:
            if self._session is not None:
                return await fetch(self._session)
            async with self.database.reading_one() as session:
                return await fetch(session)

    async def close(self) -> None:
        """End the transaction: the next read sees what has been committed since."""
        async with self._lock:
            reading, self._reading, self._session = self._reading, None, None
            if reading is not None:
                await reading.__aexit__(None, None, None)


class BatchLoader(DataLoader[K, V], Generic[K, V]):
    """A DataLoader whose batch is one function call in the request's read transaction."""

    def __init__(
        self,
        reader: Reader,
        fetch: Callable[[Any, list[K]], Awaitable[dict[K, V]]],
        default: V,
        max_batch_size: int | None = None,
    ) -> None:
        super().__init__(max_batch_size=max_batch_size)
        self.reader = reader
        self.fetch = fetch
        self.default = default

    async def batch_load_fn(self, keys: list[K]) -> list[V]:
        # A text no database can store (NUL, a lone surrogate) names nothing: not asked.
        wanted = [k for k in keys if not (isinstance(k, str) and rules.text_problem(k))]
        found = await self.reader.run(lambda session: self.fetch(session, wanted)) if wanted else {}
        return [found.get(key, self.default) for key in keys]


class BackendLoader(DataLoader[K, V], Generic[K, V]):
    """A DataLoader whose batch is one call to a CRM or a store (no SQL): the whole page
    of members in one call, each backend's loader dispatched at once beside the others.
    When the backend cannot answer, every key of the batch gets its `BackendError`."""

    def __init__(self, fetch: Callable[[list[K]], Awaitable[Mapping[K, V]]]) -> None:
        super().__init__()
        self.fetch = fetch

    async def batch_load_fn(self, keys: list[K]) -> list[Any]:  # V, or the error of each
        try:
            found = await self.fetch(keys)
        except BackendError as exc:
            return [exc for _ in keys]
        return [found[key] for key in keys]


@dataclass(frozen=True)
class PageKey:
    """One member's page of a history: newest first, ids below `before`."""

    member_id: int
    before: int | None
    limit: int
    kinds: tuple[EntryKind, ...] | None = None  # None: every kind (`rules.kinds_matching`)


# What a page asks for, whoever's it is: ids below, how many, which kinds.
PageShape = tuple[int | None, int, tuple[EntryKind, ...] | None]


class Loaders:
    """The DataLoaders of one request, for one program."""

    def __init__(
        self,
        reader: Reader,
        program: Program,
        clock: Callable[[], datetime],
        backends: Backends | None = None,
    ):
        self.reader = reader
        self.backends = backends
        self.program = program
        self.now = clock()
        pid = program.id

        def loader(
            fetch: Callable[[Any, list[Any]], Awaitable[dict[Any, Any]]], default: Any = None
        ) -> Any:
            return BatchLoader(reader, fetch, default, max_batch_size=MAX_BATCH)

        self.account_by_member_id: DataLoader[int, Account | None] = loader(
            lambda s, ids: read_repository.accounts_by_member_ids(s, pid, ids)
        )
        self.member_by_id: DataLoader[int, Member | None] = loader(
            lambda s, ids: self._members(read_repository.members_by_ids(s, pid, ids))
        )
        self.any_member_by_id: DataLoader[int, Member | None] = loader(
            lambda s, ids: self._members(
                read_repository.members_by_ids(s, pid, ids, forgotten=True)
            )
        )
        self.member_by_customer_id: DataLoader[str, Member | None] = loader(
            lambda s, ids: self._members(read_repository.members_by_customer_ids(s, pid, ids))
        )
        self.qualifying_value: DataLoader[int, int] = loader(self._qualifying, 0)
        self.expiring_points: DataLoader[int, list[tuple[datetime, int]]] = loader(
            lambda s, ids: read_repository.expiring_points(
                s, ids, self.now, self.now + EXPIRING_WITHIN
            ),
            [],
        )
        self.redemption_counts: DataLoader[int, dict[str, int]] = loader(
            lambda s, ids: read_repository.redemption_counts(s, ids), {}
        )
        self.transactions: DataLoader[PageKey, list[Entry]] = loader(self._transactions, [])
        self.redemptions: DataLoader[PageKey, list[Redemption]] = loader(self._redemptions, [])
        self.reward_by_id: DataLoader[str, Reward | None] = loader(
            lambda s, ids: read_repository.rewards_by_ids(s, pid, ids)
        )
        self.entry_by_id: DataLoader[int, Entry | None] = loader(
            lambda s, ids: read_repository.by_ids(s, Entry, pid, ids)
        )
        self.hold_by_id: DataLoader[int, Hold | None] = loader(
            lambda s, ids: read_repository.by_ids(s, Hold, pid, ids)
        )
        self.redemption_by_id: DataLoader[int, Redemption | None] = loader(
            lambda s, ids: read_repository.by_ids(s, Redemption, pid, ids)
        )
        self.active_rewards: DataLoader[str, list[Reward]] = loader(self._active_rewards, [])
        self.profile: DataLoader[str, CrmProfile | None] = BackendLoader(self._profiles)
        self.orders: DataLoader[tuple[str, int], list[StoreOrder] | None] = BackendLoader(
            self._orders
        )

    async def _members(
        self, found: Awaitable[Mapping[K, tuple[Member, Account | None]]]
    ) -> dict[K, Member]:
        """Members read with their accounts: the accounts are primed, so the points and
        tier of these members cost no statement of their own."""
        members: dict[K, Member] = {}
        for key, (member, account) in (await found).items():
            members[key] = member
            self.account_by_member_id.prime(member.id, account)
        return members

    async def _profiles(self, customer_ids: list[str]) -> dict[str, CrmProfile | None]:
        crm = self.backends.crm(self.program.id) if self.backends is not None else None
        if crm is None:  # the program has no CRM: nobody has a profile
            return {customer_id: None for customer_id in customer_ids}
        return await crm.profiles(customer_ids)

    async def _orders(
        self, keys: list[tuple[str, int]]
    ) -> dict[tuple[str, int], list[StoreOrder] | None]:
        store = self.backends.commerce(self.program.id) if self.backends is not None else None
        if store is None:  # the program has no store: nobody has orders there
            return {key: None for key in keys}
        found: dict[tuple[str, int], list[StoreOrder] | None] = {}
        by_size: dict[int, list[str]] = defaultdict(list)
        for customer_id, first in keys:
            by_size[first].append(customer_id)
        # One call per page size asked for (a page asks for one): concurrently.
        answers = await asyncio.gather(
            *(store.orders(ids, first) for first, ids in by_size.items())
        )
        for (first, _), orders in zip(by_size.items(), answers, strict=True):
            found.update({(customer_id, first): value for customer_id, value in orders.items()})
        return found

    async def _qualifying(self, session: Any, member_ids: list[int]) -> dict[int, int]:
        scope = LedgerScope(session, self.program, self.now)
        return await tiers.qualifying_value(scope, member_ids)

    async def _active_rewards(self, session: Any, keys: list[str]) -> dict[str, list[Reward]]:
        rewards = await read_repository.active_rewards(session, self.program.id)
        return {key: rewards for key in keys}

    async def _transactions(self, session: Any, keys: list[PageKey]) -> dict[PageKey, list[Entry]]:
        found: dict[PageKey, list[Entry]] = {}
        for (before, limit, kinds), group in _grouped(keys).items():
            pages = await read_repository.transaction_pages(
                session, self.program.id, [key.member_id for key in group], kinds, before, limit
            )
            found.update({key: pages.get(key.member_id, []) for key in group})
        return found

    async def _redemptions(
        self, session: Any, keys: list[PageKey]
    ) -> dict[PageKey, list[Redemption]]:
        found: dict[PageKey, list[Redemption]] = {}
        for (before, limit, _), group in _grouped(keys).items():
            pages = await read_repository.redemption_pages(
                session, self.program.id, [key.member_id for key in group], before, limit
            )
            found.update({key: pages.get(key.member_id, []) for key in group})
        return found


def _grouped(keys: Sequence[PageKey]) -> dict[PageShape, list[PageKey]]:
    """Keys that ask for the same page of different members: one query per group."""
    groups: dict[PageShape, list[PageKey]] = defaultdict(list)
    for key in keys:
        groups[(key.before, key.limit, key.kinds)].append(key)
    return groups
