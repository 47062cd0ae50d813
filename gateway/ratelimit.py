"""Per-client rate limits (`LOYALTY_RATE_LIMIT`, the `limits` package's notation).

A moving window per caller: a partner's client id, a member, or else the remote
address. The storage is in memory for one process; the `limits` package's Redis
storage takes its place when replicas must share the count.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import limits
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int  # seconds, when refused


class RateLimiter:
    def __init__(self, rate: str, storage: Storage | None = None) -> None:
        self.item = limits.parse(rate)
        self.limiter = MovingWindowRateLimiter(storage or MemoryStorage())

    async def hit(self, caller: str) -> Verdict:
        if await self.limiter.hit(self.item, caller):
            return Verdict(True, 0)
        stats = await self.limiter.get_window_stats(self.item, caller)
        return Verdict(False, max(1, math.ceil(stats.reset_time - time.time())))
