"""Per-client rate limits (`LOYALTY_RATE_LIMIT`, the `limits` package's notation).

A moving window per caller: a partner's client id, a member, or else the remote
address. The storage is in memory for one process; with a Redis broker the counts live
in Redis, shared by every replica. While Redis cannot be reached each process counts
on its own (a broker outage never turns into refused requests).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import limits
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.asyncio import ConnectionPool

log = logging.getLogger("loyalty.ratelimit")

REDIS_TIMEOUT = 0.5  # seconds: a rate-limit check must not hold a request up for long


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int  # seconds, when refused


class RateLimiter:
    def __init__(
        self, rate: str, storage: Storage | None = None, pool: ConnectionPool | None = None
    ) -> None:
        self.item = limits.parse(rate)
        self.limiter = MovingWindowRateLimiter(storage or MemoryStorage())
        self.local = MovingWindowRateLimiter(MemoryStorage())
        self.pool = pool

    @classmethod
    def for_broker(cls, rate: str, broker_url: str) -> RateLimiter:
        """Counts in Redis when the broker is Redis, else in this process."""
        if not broker_url.startswith(("redis://", "rediss://")):
            return cls(rate)
        pool = ConnectionPool.from_url(
            broker_url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
        )
        storage = RedisStorage(
            f"async+{broker_url}",
            wrap_exceptions=True,
            implementation="redispy",
            connection_pool=pool,  # type: ignore[arg-type]
        )
        return cls(rate, storage, pool)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.aclose()

    async def hit(self, caller: str) -> Verdict:
        try:
            return await self._hit(self.limiter, caller)
        except StorageError as exc:
            log.warning("shared rate-limit counts unavailable, counting locally: %s", exc)
            return await self._hit(self.local, caller)

    async def _hit(self, limiter: MovingWindowRateLimiter, caller: str) -> Verdict:
        if await limiter.hit(self.item, caller):
            return Verdict(True, 0)
        stats = await limiter.get_window_stats(self.item, caller)
        return Verdict(False, max(1, math.ceil(stats.reset_time - time.time())))
