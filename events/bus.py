"""The event bus: outbox events fanned out to the subscribers of every replica.

`Hub` is the part inside one process: each subscription has its own bounded queue, so
a subscriber that cannot keep up is cut off (`SlowConsumer`) instead of growing memory.
A bus moves events and token revocations to the hub of every process:

- `MemoryBus` (`memory://`): one process, events go straight to its hub.
- `RedisBus` (`redis://...`): `PUBLISH` on one channel, and a listener per process that
  feeds its hub. A publish while Redis is down raises `BrokerUnavailable`; the relay
  then keeps the rows in the outbox and tries again.

Events carry their outbox id: the hub drops an id it has just delivered, so a relay that
publishes a batch again (after a crash before it could mark it) is harmless.

The hub hands the same `Event` object to every subscriber of its member: what they derive
from it alike (a GraphQL selection run over it, its JSON text) is worked out by the first
and kept in `Event.shared` for the others, so 1,000 tabs watching one member cost one
rendering, not 1,000.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Collection, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger("loyalty.events")

QUEUE_SIZE = 256  # events waiting for one subscriber before it counts as too slow
RECENT_IDS = 10_000  # event ids remembered to drop a repeat
EVENTS_CHANNEL = "loyalty:events"
REVOCATIONS_CHANNEL = "loyalty:revocations"
RECONNECT_DELAY = 0.2  # seconds between attempts to reach Redis again
BROKER_TIMEOUT = 2.0  # seconds for one Redis command
HEALTH_CHECK = 5  # seconds between pings of an idle listener connection


class BrokerUnavailable(Exception):
    """The broker cannot take events now; they stay in the outbox."""


class SlowConsumer(Exception):
    """A subscriber's queue overflowed: it is cut off, the events it missed dropped."""


@dataclass(frozen=True)
class Event:
    """One outbox row as it travels: self-contained, no database read to use it."""

    id: int
    program_id: str
    type: str
    member_id: int | None
    payload: dict[str, Any]
    # What the subscribers of this process derived from the event, by what it is derived
    # for (see `shared_value`); never sent on.
    shared: dict[Hashable, Any] = field(default_factory=dict, compare=False, repr=False)

    def shared_value(self, key: Hashable, derive: Callable[[], Any]) -> Any:
        """`derive()` once per key for all the subscribers that see this event."""
        try:
            return self.shared[key]
        except KeyError:
            value = self.shared[key] = derive()
            return value

    def encode(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "program": self.program_id,
                "type": self.type,
                "member": self.member_id,
                "payload": self.payload,
            },
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, text: str | bytes) -> Event:
        data = json.loads(text)
        member = data["member"]
        return cls(
            id=int(data["id"]),
            program_id=str(data["program"]),
            type=str(data["type"]),
            member_id=int(member) if member is not None else None,
            payload=dict(data["payload"]),
        )


@dataclass
class HubStats:
    """Counts for the metrics endpoint."""

    published: int = 0
    delivered: int = 0
    dropped: int = 0
    subscriptions: int = 0


class Subscription:
    """The events of one member, of the types asked for, in a bounded queue.

    A plain deque and one waiter rather than an `asyncio.Queue`: the hub offers each
    event to every subscriber of its member in one pass, so what an offer costs is paid
    a thousand times over for a member watched from a thousand tabs."""

    def __init__(self, hub: Hub, key: tuple[str, int], types: Collection[str], size: int) -> None:
        self.hub = hub
        self.key = key
        self.types = frozenset(types)
        self.size = size
        self.overflowed = False
        self._events: deque[Event] = deque()
        self._waiter: asyncio.Future[None] | None = None

    @property
    def waiting(self) -> int:
        """Events offered and not yet taken."""
        return len(self._events)

    def offer(self, event: Event) -> None:
        if self.overflowed or event.type not in self.types:
            return
        if len(self._events) >= self.size:
            dropped = len(self._events) + 1
            self.overflowed = True
            self._events.clear()  # memory stays flat: what it missed is gone
            self.hub.stats.dropped += dropped
            log.warning("subscriber of %s too slow: %d events dropped", self.key, dropped)
        else:
            self._events.append(event)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        while not self._events and not self.overflowed:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self.overflowed:
            raise SlowConsumer(f"more than {self.size} events waiting")
        self.hub.stats.delivered += 1
        return self._events.popleft()


class Hub:
    """The subscriptions of this process, by (program, member)."""

    def __init__(self, queue_size: int = QUEUE_SIZE) -> None:
        self.queue_size = queue_size
        self.stats = HubStats()
        self._subscriptions: dict[tuple[str, int], set[Subscription]] = {}
        self._recent: OrderedDict[int, None] = OrderedDict()
        self._revocation_listeners: set[Callable[[str], None]] = set()

    @contextlib.contextmanager
    def subscribe(
        self, program_id: str, member_id: int, types: Collection[str]
    ) -> Iterator[Subscription]:
        key = (program_id, member_id)
        subscription = Subscription(self, key, types, self.queue_size)
        self._subscriptions.setdefault(key, set()).add(subscription)
        self.stats.subscriptions += 1
        try:
            yield subscription
        finally:
            self.stats.subscriptions -= 1
            subscribers = self._subscriptions.get(key, set())
            subscribers.discard(subscription)
            if not subscribers:
                self._subscriptions.pop(key, None)

    def deliver(self, event: Event) -> None:
        if event.id in self._recent:
            return  # published again after a relay could not mark it
        self._recent[event.id] = None
        if len(self._recent) > RECENT_IDS:
            self._recent.popitem(last=False)
        if event.member_id is None:
            return
        for subscription in tuple(self._subscriptions.get((event.program_id, event.member_id), ())):
            subscription.offer(event)

    @contextlib.contextmanager
    def on_revocation(self, listener: Callable[[str], None]) -> Iterator[None]:
        self._revocation_listeners.add(listener)
        try:
            yield
        finally:
            self._revocation_listeners.discard(listener)

    def revoked(self, jti: str) -> None:
        for listener in tuple(self._revocation_listeners):
            listener(jti)


class Bus:
    """Moves events and revocations to the hub of every process."""

    def __init__(self, hub: Hub | None = None) -> None:
        self.hub = hub or Hub()

    @property
    def ready(self) -> bool:
        """This process would receive what it published now."""
        return True

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def publish(self, events: Sequence[Event]) -> None:
        raise NotImplementedError

    async def publish_revocation(self, jti: str) -> None:
        raise NotImplementedError


class MemoryBus(Bus):
    """One process: published events go straight to its hub."""

    async def publish(self, events: Sequence[Event]) -> None:
        for event in events:
            self.hub.stats.published += 1
            self.hub.deliver(event)

    async def publish_revocation(self, jti: str) -> None:
        self.hub.revoked(jti)


@dataclass
class _Listener:
    task: asyncio.Task[None] | None = None
    subscribed_at: float | None = None  # monotonic time the channels were subscribed
    stopping: bool = False
    errors: list[str] = field(default_factory=list)


class RedisBus(Bus):
    """Several processes: Redis pub/sub carries events and revocations between them."""

    def __init__(self, url: str, hub: Hub | None = None) -> None:
        super().__init__(hub)
        self.url = url
        self.redis = redis.Redis.from_url(
            url, socket_timeout=BROKER_TIMEOUT, socket_connect_timeout=BROKER_TIMEOUT
        )
        # The listener's own connection: no read timeout (a quiet channel is not a dead
        # broker); the health check pings it instead.
        self.listening = redis.Redis.from_url(
            url, socket_connect_timeout=BROKER_TIMEOUT, health_check_interval=HEALTH_CHECK
        )
        self.listener = _Listener()

    @property
    def ready(self) -> bool:
        # Subscribed for a moment: the other replicas' listeners, which retry on the same
        # schedule, are back too after an outage.
        since = self.listener.subscribed_at
        return since is not None and time.monotonic() - since >= 2 * RECONNECT_DELAY

    async def start(self) -> None:
        self.listener.task = asyncio.create_task(self._listen_forever())

    async def close(self) -> None:
        self.listener.stopping = True
        if self.listener.task is not None:
            self.listener.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.listener.task
        await self.listening.aclose()
        await self.redis.aclose()

    async def publish(self, events: Sequence[Event]) -> None:
        if not events:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for event in events:
                    pipe.publish(EVENTS_CHANNEL, event.encode())
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"Redis at {self._where()}: {exc}") from exc
        self.hub.stats.published += len(events)

    async def publish_revocation(self, jti: str) -> None:
        try:
            await self.redis.publish(REVOCATIONS_CHANNEL, jti)
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"Redis at {self._where()}: {exc}") from exc

    def _where(self) -> str:
        kwargs = self.redis.connection_pool.connection_kwargs
        return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"

    async def _listen_forever(self) -> None:
        while not self.listener.stopping:
            try:
                await self._listen()
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                if self.listener.subscribed_at is not None:
                    log.warning("lost the broker at %s: %s", self._where(), exc)
            self.listener.subscribed_at = None
            await asyncio.sleep(RECONNECT_DELAY)

    async def _listen(self) -> None:
        pubsub = self.listening.pubsub()
        try:
            await pubsub.subscribe(EVENTS_CHANNEL, REVOCATIONS_CHANNEL)
            async for message in self._messages(pubsub):
                channel = (message.get("channel") or b"").decode()
                if message["type"] == "subscribe":
                    if self.listener.subscribed_at is None:
                        self.listener.subscribed_at = time.monotonic()
                        log.info("listening to the broker at %s", self._where())
                elif message["type"] != "message":
                    continue
                elif channel == EVENTS_CHANNEL:
                    self._deliver(message["data"])
                elif channel == REVOCATIONS_CHANNEL:
                    self.hub.revoked(message["data"].decode())
        finally:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    @staticmethod
    async def _messages(pubsub: Any) -> AsyncIterator[dict[str, Any]]:
        while True:
            message = await pubsub.get_message(timeout=1.0)
            if message is not None:
                yield message

    def _deliver(self, data: bytes) -> None:
        try:
            event = Event.decode(data)
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed event on %s", EVENTS_CHANNEL)
            return
        self.hub.deliver(event)


def connect(url: str, hub: Hub | None = None) -> Bus:
    """The bus `LOYALTY_BROKER_URL` names."""
    if url.startswith("memory://"):
        return MemoryBus(hub)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisBus(url, hub)
    raise ValueError(f"unsupported broker URL {url!r}: use memory:// or redis://")
