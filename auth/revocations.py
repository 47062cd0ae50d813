"""The revoked tokens, held in memory so that checking a token runs no SQL.

The revocation list in the database is the record (`auth.repository.revoke`); this
process holds a copy of its live rows: read at start, added to at once when a token is
revoked here, added to when another replica announces a revocation on the bus, and read
again by the short poll (`LOYALTY_REVOCATION_CHECK`) in case an announcement was lost.
A row is kept until the token would have expired anyway: an expired token is refused
by its `exp` whatever this list says.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from auth import repository


class Revocations:
    """The `jti` of every revoked token not yet expired."""

    def __init__(self, clock: Callable[[], datetime], lifetime: timedelta) -> None:
        self.clock = clock
        self.lifetime = lifetime  # how long an announced token can still be live at most
        self._until: dict[str, datetime] = {}

    def __contains__(self, jti: str) -> bool:
        return jti in self._until

    def __len__(self) -> int:
        return len(self._until)

    def add(self, jti: str, expires_at: datetime | None = None) -> None:
        """`jti` is revoked; an announcement carries no expiry: the longest a token lives."""
        until = expires_at if expires_at is not None else self.clock() + self.lifetime
        self._until[jti] = max(until, self._until.get(jti, until))

    async def load(self, session: AsyncSession) -> None:
        """Read the revocation list again: what another replica revoked is held too, and
        rows of tokens now expired are let go (their tokens are refused by `exp`)."""
        now = self.clock()
        for jti, expires_at in await repository.live_revocations(session, now):
            self.add(jti, _aware(expires_at))
        self._until = {jti: until for jti, until in self._until.items() if until > now}


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; every instant the gateway stores is UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
