"""The base of every backend client: one HTTP session, a deadline, retries, a circuit
breaker and a short cache, so that a CRM or a store can be slow, down or wrong without
making a query slow, failing or wrong for anything else.

A client belongs to one program and one backend (`Program.crm`, `Program.commerce`): its
credentials, its cache and its circuit are that program's alone, so one program's
answers and tokens never serve another.

Every call a client makes goes through `call`:

- **deadline**: the whole call, retries and waits included, ends within the backend's
  `timeout` (default 1 s) or raises `BackendTimeout`;
- **retries** (`tenacity`): reads only, on `BackendUnavailable` (network errors, 5xx,
  429 / throttling), with full jitter, at most `attempts` tries and never a wait that
  would cross the deadline; a 429's `Retry-After` is honoured or, if it is longer than
  the time left, the call gives up at once;
- **circuit breaker** (`purgatory`: asyncio-native and maintained, where `aiobreaker`
  has had no release since 2021 and `pybreaker`'s async support goes through Tornado):
  after `breaker_failures` failed calls in a row the circuit opens and calls raise
  `CircuitOpen` at once; after `breaker_cooldown` seconds calls go through again
  (half-open) and the first outcome closes the circuit or opens it again;
- **cache** (`cachetools.TTLCache`): `cached` serves keys asked for within `cache_ttl`
  seconds from memory, absent ones included, and asks the backend only for the rest.

`send` makes one HTTP exchange and turns what can go wrong into `backends.errors`:
aiohttp and OS errors and 5xx are `BackendUnavailable`, 401 / 403 `BadCredentials`,
429 `BackendThrottled`, other statuses and bodies that are not JSON `BadAnswer`.

Adding a backend: subclass `backends.crm.base.CrmClient` or
`backends.commerce.base.CommerceClient`, set `kind`, implement its one batch method
with `send` inside `call` (and `cached` around it), and add the class to the table in
`backends/registry.py`. A fake of its API goes in `backends/fakes/`.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

import aiohttp
from cachetools import TTLCache
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState
from purgatory.service._async.repository import AsyncInMemoryRepository
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_before_delay

from backends.errors import (
    BackendError,
    BackendThrottled,
    BackendTimeout,
    BackendUnavailable,
    BadAnswer,
    BadCredentials,
    CircuitOpen,
)
from ledger.program_sections import BackendSection

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

MAX_BODY = 4 * 1024 * 1024  # bytes of one answer; a longer one is a BadAnswer
FIRST_WAIT = 0.05  # seconds: the jittered waits between retries grow from here ...
LONGEST_WAIT = 0.25  # ... to at most this
_ABSENT = object()


class CallObserver(Protocol):
    """Told of every call a client makes (the gateway's metrics): its outcome, how long
    it took, and the state of the program's circuit for that backend after it."""

    def called(
        self, backend: str, outcome: str, seconds: float, *, program: str, circuit: str
    ) -> None: ...


OUTCOMES: tuple[tuple[type[BackendError], str], ...] = (
    (CircuitOpen, "circuit_open"),
    (BackendTimeout, "timeout"),
    (BackendThrottled, "throttled"),
    (BackendUnavailable, "unavailable"),
    (BadCredentials, "bad_credentials"),
    (BadAnswer, "bad_answer"),
)


def outcome_of(error: BackendError | None) -> str:
    """A call's outcome as the metrics label it: `ok`, or the kind of failure."""
    if error is None:
        return "ok"
    return next((name for kind, name in OUTCOMES if isinstance(error, kind)), "error")


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: its status, its JSON body and its headers."""

    status: int
    body: Any
    headers: Mapping[str, str]


class Breakers:
    """The circuits of every client, one per program and backend, in this process."""

    def __init__(self, observer: CallObserver | None = None) -> None:
        self.observer = observer
        # A request cancelled from outside (the operation's own timeout) says nothing
        # about the backend: it is no failure.
        self.factory = AsyncCircuitBreakerFactory(exclude=[asyncio.CancelledError])

    def state(self, name: str) -> str:
        """`closed`, `opened` or `half-opened` (a circuit never used is closed)."""
        contexts = self.factory.uow.contexts
        context = (
            contexts.breakers.get(name) if isinstance(contexts, AsyncInMemoryRepository) else None
        )
        return "closed" if context is None else str(context.state)


class BackendClient:
    """What every backend client shares. Subclasses set `role` and `kind`."""

    role: ClassVar[str]  # "crm" or "commerce": the program file's section
    kind: ClassVar[str]  # "hubspot", "shopify", ...: that section's `kind`

    def __init__(
        self,
        program_id: str,
        config: BackendSection,
        session: aiohttp.ClientSession,
        breakers: Breakers,
    ) -> None:
        self.program_id = program_id
        self.config = config
        self.session = session
        self.breakers = breakers
        self.base_url = config.base_url.rstrip("/")
        self.timeout = config.timeout
        self.circuit = f"{program_id}:{self.role}:{self.kind}"
        self._cache: TTLCache[Hashable, Any] = TTLCache(
            maxsize=config.cache_size, ttl=config.cache_ttl
        )
        self.calls = 0  # HTTP exchanges made (attempts, not calls)

    # -- one exchange ---------------------------------------------------------------

    async def send(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        accept: Sequence[int] = (200,),
    ) -> Answer:
        """One HTTP exchange; any status in `accept` with a JSON body is an answer."""
        self.calls += 1
        try:
            async with self.session.request(
                method,
                self.base_url + path,
                json=json_body,
                params=params,
                headers=headers,
                allow_redirects=False,
            ) as response:
                status = response.status
                raw = await _body(response, self.kind)
                answer_headers = dict(response.headers)
        except BackendError:
            raise
        except (aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
            if isinstance(exc, TimeoutError):
                raise BackendTimeout(self.kind, "no answer in time") from None
            raise BackendUnavailable(self.kind, f"unreachable: {type(exc).__name__}") from None
        if status in (401, 403):
            raise BadCredentials(self.kind, f"credentials refused ({status})")
        if status == 429:
            wait = _seconds(answer_headers.get("Retry-After"))
            raise BackendThrottled(self.kind, "rate limited (429)", wait)
        if status >= 500:
            raise BackendUnavailable(self.kind, f"failing ({status})")
        if status not in accept:
            raise BadAnswer(self.kind, f"unexpected status {status}")
        try:
            body = json.loads(raw)
        except ValueError:  # UnicodeDecodeError among them
            raise BadAnswer(self.kind, "the answer is not JSON") from None
        return Answer(status, body, answer_headers)

    # -- one call: deadline, breaker, retries ------------------------------------------

    async def call(self, attempt: Callable[[], Awaitable[T]], *, read: bool = True) -> T:
        """`attempt` (one or more `send`s) under the deadline, the breaker and, for
        reads, the retries."""
        started = time.monotonic()
        failure: BackendError | None = None
        try:
            return await self._guarded(attempt, read)
        except BackendError as exc:
            failure = exc
            raise
        finally:
            observer = self.breakers.observer
            if observer is not None:
                observer.called(
                    self.kind,
                    outcome_of(failure),
                    time.monotonic() - started,
                    program=self.program_id,
                    circuit=self.breakers.state(self.circuit),
                )

    async def _guarded(self, attempt: Callable[[], Awaitable[T]], read: bool) -> T:
        try:
            breaker = await self.breakers.factory.get_breaker(
                self.circuit,
                threshold=self.config.breaker_failures,
                ttl=self.config.breaker_cooldown,
            )
            async with breaker:
                return await self._retried(attempt, read)
        except OpenedState:
            raise CircuitOpen(self.kind, "circuit open after repeated failures") from None

    async def _retried(self, attempt: Callable[[], Awaitable[T]], read: bool) -> T:
        started = time.monotonic()
        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda exc: read and isinstance(exc, BackendUnavailable)),
            stop=stop_after_attempt(self.config.attempts) | stop_before_delay(self.timeout),
            wait=_wait,
            reraise=True,
        )
        try:
            async with asyncio.timeout(self.timeout):
                async for try_ in retrying:
                    with try_:
                        return await attempt()
        except TimeoutError:
            spent = time.monotonic() - started
            raise BackendTimeout(self.kind, f"no answer within {spent:.2f} s") from None
        raise AssertionError("tenacity re-raises the last error once it stops")

    # -- cache ---------------------------------------------------------------------------

    async def cached(
        self,
        namespace: Hashable,
        keys: Sequence[K],
        fetch: Callable[[list[K]], Awaitable[Mapping[K, V]]],
    ) -> dict[K, V | None]:
        """Each key's value, from the cache when asked for within `cache_ttl`; `fetch`
        is called once with the others (absent keys are cached as absent too)."""
        found: dict[K, V | None] = {}
        missing: list[K] = []
        for key in dict.fromkeys(keys):
            value = self._cache.get((namespace, key), _ABSENT)
            if value is _ABSENT:
                missing.append(key)
            else:
                found[key] = value
        if missing:
            fetched = await fetch(missing)
            for key in missing:
                value = fetched.get(key)
                found[key] = value
                if self.config.cache_ttl > 0:
                    self._cache[(namespace, key)] = value
        return found


def _wait(state: RetryCallState) -> float:
    """Retry-After when the backend said it, else full jitter growing per attempt."""
    outcome = state.outcome
    error = outcome.exception() if outcome is not None and outcome.failed else None
    if isinstance(error, BackendThrottled) and error.retry_after is not None:
        return error.retry_after
    ceiling = min(LONGEST_WAIT, FIRST_WAIT * 2 ** (state.attempt_number - 1))
    return random.uniform(0, ceiling)


def _seconds(value: str | None) -> float | None:
    """A Retry-After in seconds (the HTTP-date form is read as no hint)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds < 86400 else None


async def _body(response: aiohttp.ClientResponse, kind: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(65536):
        size += len(chunk)
        if size > MAX_BODY:
            raise BadAnswer(kind, f"answer longer than {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def client_session(config: BackendSection) -> aiohttp.ClientSession:
    """The session one backend client uses: its own pool, no cookies kept, and a
    timeout that backs up the client's own deadline."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=config.timeout, connect=config.timeout),
        cookie_jar=aiohttp.DummyCookieJar(),
        connector=aiohttp.TCPConnector(limit=20, ttl_dns_cache=60),
    )


async def in_chunks(
    keys: list[K], size: int, fetch: Callable[[list[K]], Awaitable[Mapping[K, V]]]
) -> dict[K, V]:
    """`fetch` for every `size` keys at once, concurrently; the answers merged. The first
    error raised is raised (the other calls are cancelled)."""
    chunks = [keys[i : i + size] for i in range(0, len(keys), size)]
    if len(chunks) == 1:
        return dict(await fetch(chunks[0]))
    found: dict[K, V] = {}
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_as_dict(fetch(chunk))) for chunk in chunks]
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None
    for task in tasks:
        found.update(task.result())
    return found


async def _as_dict(answer: Awaitable[Mapping[K, V]]) -> dict[K, V]:
    return dict(await answer)
