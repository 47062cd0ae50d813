"""Apollo Automatic Persisted Queries (DESIGN §4).

A client sends `extensions.persistedQuery = {"version": 1, "sha256Hash": ...}`, at first
without the query text. An unknown hash is answered with the error
`PERSISTED_QUERY_NOT_FOUND` (message `PersistedQueryNotFound`, as Apollo's clients expect);
the client then sends the hash with the text once, the gateway checks that the hash is
the text's SHA-256 and keeps the pair, and from then on the hash alone will do, over POST
and over GET (so a CDN can cache a read by its URL).

Only a text the schema would run is kept (it parses and passes validation and the
query limits): anyone may register, so garbage must not take room. The store is an LRU
of `MAX_ENTRIES` texts of at most `MAX_QUERY_BYTES` each in every process; with a Redis
broker the pairs of at most `REDIS_MAX_BYTES` live in Redis too (each for `REDIS_TTL`
seconds, the newest `REDIS_MAX_ENTRIES` of them), so a text registered on one replica is
found by the others: at most about 80 MB of Redis however many texts are sent. Redis is
a cache here: when it cannot answer, the lookup is a miss and the client sends the text
again.

Apollo's protocol is small and no library of the stack speaks it on the server side
(Strawberry has no such extension), hence this module.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import redis.asyncio as redis
from cachetools import LRUCache
from redis.exceptions import RedisError

log = logging.getLogger("loyalty.persisted")

VERSION = 1
NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
NOT_FOUND_MESSAGE = "PersistedQueryNotFound"  # the message Apollo's clients match on
MAX_ENTRIES = 1000
MAX_QUERY_BYTES = 64 * 1024
REDIS_PREFIX = "loyalty:apq:"
REDIS_INDEX = "loyalty:apq-index"  # the shared hashes, scored by when they were kept
REDIS_TTL = 7 * 24 * 3600
REDIS_MAX_ENTRIES = 5000
REDIS_MAX_BYTES = 16 * 1024  # a longer text is kept by each process for itself
REDIS_TIMEOUT = 0.5  # seconds; a slow Redis is a miss, not a slow request


class PersistedQueryError(Exception):
    """A persisted-query request the gateway does not run: `status` and `code` say why."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def sha256_hex(query: str) -> str:
    return hashlib.sha256(query.encode("utf-8", "surrogatepass")).hexdigest()


def requested_hash(extensions: Mapping[str, Any] | None) -> str | None:
    """The hash a request names in `extensions.persistedQuery`, checked; None when it
    names none."""
    if not extensions or "persistedQuery" not in extensions:
        return None
    persisted = extensions["persistedQuery"]
    if not isinstance(persisted, dict):
        raise PersistedQueryError(400, "BAD_REQUEST", "persistedQuery must be an object")
    if persisted.get("version") != VERSION:
        raise PersistedQueryError(400, "BAD_REQUEST", "Unsupported persisted query version")
    digest = persisted.get("sha256Hash")
    if not (
        isinstance(digest, str)
        and len(digest) == 64
        and all(c in "0123456789abcdef" for c in digest)
    ):
        raise PersistedQueryError(
            400, "BAD_REQUEST", "sha256Hash must be 64 lowercase hexadecimal digits"
        )
    return digest


# Keeps a text and drops the oldest past the bound, in one step on the server (a
# client that died between the two would leave the index and the texts apart). The
# evicted texts' keys are not declared in KEYS, so this runs on one Redis node, not on
# Redis Cluster; "oldest" is by the registering replica's clock.
# KEYS: the text's key, the index; ARGV: the hash, the text, the TTL, now, the bound.
_KEEP_SHARED = (
    """
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[5])
if over > 0 then
  for _, digest in ipairs(redis.call('ZRANGE', KEYS[2], 0, over - 1)) do
    redis.call('DEL', '"""
    + REDIS_PREFIX
    + """' .. digest)
  end
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, over - 1)
end
redis.call('EXPIRE', KEYS[2], ARGV[3])
"""
)


def _anything(query: str) -> bool:
    return True


class PersistedQueries:
    """The texts of persisted queries by hash: bounded in memory, shared through Redis
    when the broker is Redis. `admits` says whether a text is worth keeping (the
    gateway's: the schema would run it)."""

    def __init__(
        self,
        broker_url: str = "memory://",
        max_entries: int | None = None,
        admits: Callable[[str], bool] = _anything,
    ) -> None:
        self.local: LRUCache[str, str] = LRUCache(maxsize=max_entries or MAX_ENTRIES)
        self.admits = admits
        self.redis: redis.Redis | None = None
        if broker_url.startswith(("redis://", "rediss://")):
            self.redis = redis.Redis.from_url(
                broker_url,
                socket_timeout=REDIS_TIMEOUT,
                socket_connect_timeout=REDIS_TIMEOUT,
                decode_responses=True,
            )
            self.keep_shared = self.redis.register_script(_KEEP_SHARED)

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()

    async def resolve(self, query: str | None, extensions: Mapping[str, Any] | None) -> str | None:
        """The query text to run: the request's own (kept when it names a hash that
        matches it), or the stored text of the hash it names. `PersistedQueryError`
        when the hash is unknown or does not match the text."""
        digest = requested_hash(extensions)
        if digest is None:
            return query
        if query is not None:
            if sha256_hex(query) != digest:
                raise PersistedQueryError(400, "BAD_REQUEST", "provided sha does not match query")
            await self._keep(digest, query)
            return query
        found = await self._find(digest)
        if found is None:
            raise PersistedQueryError(200, NOT_FOUND, NOT_FOUND_MESSAGE)
        return found

    async def _keep(self, digest: str, query: str) -> None:
        size = len(query.encode("utf-8", "surrogatepass"))
        if size > MAX_QUERY_BYTES:
            return  # runs, but is not kept: the client sends it again next time
        if self.local.get(digest) == query or not self.admits(query):
            return  # known already, or it would not run (its errors answer the request)
        self.local[digest] = query
        if self.redis is not None and size <= REDIS_MAX_BYTES:
            try:
                await self.keep_shared(
                    keys=[REDIS_PREFIX + digest, REDIS_INDEX],
                    args=[digest, query, REDIS_TTL, time.time(), REDIS_MAX_ENTRIES],
                )
            except (RedisError, OSError) as exc:
                log.warning("persisted query not shared, Redis unavailable: %r", exc)

    async def _find(self, digest: str) -> str | None:
        found = self.local.get(digest)
        if found is not None or self.redis is None:
            return found
        try:
            shared = await self.redis.get(REDIS_PREFIX + digest)
        except (RedisError, OSError) as exc:
            log.warning("persisted query not looked up, Redis unavailable: %r", exc)
            return None
        # A text is only ever stored under its own hash, but Redis is not ours alone.
        if isinstance(shared, str) and sha256_hex(shared) == digest:
            self.local[digest] = shared
            return shared
        return None
