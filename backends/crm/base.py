"""What a CRM client gives: a profile per customer id, many customers in one call."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from backends.client import BackendClient, in_chunks
from ledger.program_sections import Crm


@dataclass(frozen=True)
class LoyaltyStanding:
    """What the CRM is told of a member: the points available and the tier."""

    points: int
    tier: str


@dataclass(frozen=True)
class CrmProfile:
    """A member's contact in the CRM. `source` is the CRM's kind (`hubspot`)."""

    source: str
    first_name: str | None = None
    last_name: str | None = None
    lifecycle_stage: str | None = None
    company: str | None = None


class CrmClient(BackendClient, abc.ABC):
    """A CRM. Subclasses implement `fetch_profiles`; callers use `profiles`."""

    role: ClassVar[str] = "crm"
    config: Crm
    max_batch: ClassVar[int] = 100  # customer ids one backend call may carry

    async def profiles(self, customer_ids: Sequence[str]) -> dict[str, CrmProfile | None]:
        """Each customer's profile (None: the CRM has no such contact), cached for
        `cache_ttl`; the ids not cached are asked for in as few calls as the API allows,
        made concurrently. Raises a `BackendError` when the CRM cannot answer."""
        return await self.cached(
            "profile", customer_ids, lambda ids: in_chunks(ids, self.max_batch, self.fetch_profiles)
        )

    writes_back: ClassVar[bool] = False  # whether `write_loyalty` is implemented

    async def write_loyalty(self, standings: Mapping[str, LoyaltyStanding]) -> None:
        """Set each customer's `loyalty_points` and `loyalty_tier` in the CRM (a write:
        never retried here; the write-back tries again on its next round)."""
        raise NotImplementedError(f"{self.kind} has no write-back")

    @abc.abstractmethod
    async def fetch_profiles(self, customer_ids: list[str]) -> Mapping[str, CrmProfile]:
        """At most `max_batch` ids in one call (`self.call(...)`); absent ids omitted."""
