"""The outgoing-webhook dispatcher: due deliveries to each `[[webhooks]]` endpoint,
signed per Standard Webhooks, at least once, across restarts and replicas.

A change writes its delivery rows in its own transaction (`ledger/webhooks.py`). The
dispatcher claims due rows per endpoint under a lease, sends them with no transaction
open, and records each attempt: time, status, latency and the first KiB of the answer
(`events/webhook_batches.py`: the claim, the record and the retry schedule;
`events/webhook_transport.py`: the signature and the POST, behind the address guard).

Each endpoint has at most `concurrency` attempts in flight in a process, and every call
has a connect and a total timeout, so a slow or dead endpoint holds only its own slots:
other endpoints and ledger writes never wait for it.

Claims, sends and records overlap: an endpoint's next batch is claimed while the current
one goes out (up to `AHEAD` batches held, fewer for an endpoint whose pace would keep
them queued past half the lease margin). Attempts are recorded by the next claim, in
its own transaction, or by the recorder in one transaction per `RECORD_BATCH` or
`RECORD_WINDOW`, whichever comes first, after any claim under way: on a busy endpoint
a batch of sends costs about one commit. A delivery is done only once its attempt is
recorded; until then its lease holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from events import webhook_batches, webhook_guard, webhook_transport
from events.webhook_batches import Claimed, DeliveryObserver, DispatchReport
from events.webhook_transport import Attempt
from ledger import deliveries_repository
from ledger.db import Database
from ledger.models import WebhookDelivery
from ledger.program import OutgoingWebhook, Program

log = logging.getLogger("loyalty.webhooks")

CONCURRENCY = 4  # attempts in flight per endpoint, per process
BATCH = 500  # deliveries claimed per endpoint at a time, at most
AHEAD = 3  # batches an endpoint holds claimed at most, so the next claim overlaps sending
RECORD_BATCH = 500  # attempts recorded in one transaction, when that many come quickly
# Seconds the recorder waits for more attempts to finish. Recording later costs nothing
# but the wait (the attempt is made; the lease holds the delivery meanwhile), and each
# transaction it saves is a commit (a disk flush) and the writer lock taken from claims.
RECORD_WINDOW = 0.1
CONNECT_TIMEOUT = 5.0  # seconds to open the connection (and TLS)
TIMEOUT = 10.0  # seconds for the whole call
# A lease lasts the timeout and this margin; a claimed delivery still waiting in the
# queue after the margin is left for its lease to run out.
LEASE_MARGIN = timedelta(seconds=5)
INTERVAL = 1.0  # seconds between looks for due deliveries when nothing woke the dispatcher
RETRY_DELAY = 0.5  # seconds before looking again after the database failed
_WROTE_DELIVERY = "loyalty_wrote_delivery"
_WORKER = "webhook-worker"


@dataclass
class _Endpoint:
    """One endpoint's deliveries claimed by this process, and its workers."""

    program_id: str
    hook: OutgoingWebhook
    signers: tuple[Webhook, ...]
    refused: bool  # the URL names a refused address literally
    queue: deque[Claimed] = field(default_factory=deque)
    workers: int = 0
    latency: float | None = None  # seconds per attempt, a moving average
    refill_asked: bool = False
    drained: bool = False  # the last claim found fewer than it asked for: wait for a scan


class WebhookDispatcher:
    def __init__(
        self,
        database: Database,
        programs: Mapping[str, Program],
        clock: Callable[[], datetime],
        *,
        allow_private: bool = False,
        concurrency: int = CONCURRENCY,
        connect_timeout: float = CONNECT_TIMEOUT,
        timeout: float = TIMEOUT,
        interval: float = INTERVAL,
        batch: int = BATCH,
        observer: DeliveryObserver | None = None,
    ) -> None:
        self.database = database
        self.programs = programs
        self.clock = clock
        self.allow_private = allow_private
        self.concurrency = concurrency
        self.batch = batch
        self.timeout = aiohttp.ClientTimeout(
            total=timeout, connect=min(connect_timeout, timeout), sock_connect=connect_timeout
        )
        self.lease_for = timedelta(seconds=timeout) + LEASE_MARGIN
        self.interval = interval
        self.observer = observer
        self.wake = asyncio.Event()
        self._endpoints = {
            (program.id, hook.url): _Endpoint(
                program.id,
                hook,
                webhook_transport.signers(hook),
                not allow_private and webhook_guard.refused_literal(hook.url),
            )
            for program in programs.values()
            for hook in program.webhooks
        }
        self._tasks: set[asyncio.Task[None]] = set()
        self._results: list[tuple[Claimed, Attempt]] = []
        self._recording = False
        # Look for due endpoints (one read) on the next `_fill`: at the start, after a
        # commit that wrote deliveries, when a queue ran dry, and every `interval`; in
        # between, an endpoint whose queue runs low is only refilled (one claim).
        self._scan = True
        self._claiming = 0  # claims under way: the recorder waits for them (they feed sends)
        self._no_claims = asyncio.Event()
        self._no_claims.set()
        self._progress = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._report: DispatchReport | None = None
        self._now: datetime | None = None  # the instant of a `run_due`, else the clock's
        if not allow_private:
            for program_id, url in webhook_transport.refused_endpoints(programs):
                log.warning(
                    "program %s: webhook endpoint %s is a private address; its deliveries "
                    "are refused (LOYALTY_ALLOW_PRIVATE_WEBHOOKS=true allows it)",
                    program_id,
                    url,
                )

    # -- one run, as `jobs run` does it ----------------------------------------------

    async def run_due(self, now: datetime | None = None) -> DispatchReport:
        """Attempt every delivery due at `now` (the clock's when None) and wait for the
        attempts; a delivery that fails is due again later, not in this run."""
        report = self._report = DispatchReport()
        self._now = now
        self._scan = True
        async with self._http():
            try:
                while True:
                    self._progress.clear()
                    await self._fill(now or self.clock())
                    if not self._tasks:
                        return report
                    await self._progress.wait()
            finally:
                self._report = self._now = None

    # -- running inside the server ---------------------------------------------------

    def start(self) -> None:
        if not self._endpoints:
            return  # no program has an endpoint: nothing to look for
        event.listen(Session, "after_flush", self._after_flush)
        event.listen(Session, "after_commit", self._after_commit)
        self._task = asyncio.create_task(self._run_forever())

    async def stop(self) -> None:
        if self._task is None:
            return
        event.remove(Session, "after_flush", self._after_flush)
        event.remove(Session, "after_commit", self._after_commit)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def _ours(self, session: Session) -> bool:
        bind = session.bind
        return bind is not None and bind.engine is self.database.engine.sync_engine

    def _after_flush(self, session: Session, context: Any) -> None:
        if any(isinstance(obj, WebhookDelivery) for obj in session.new) and self._ours(session):
            session.info[_WROTE_DELIVERY] = True

    def _after_commit(self, session: Session) -> None:
        if session.get_nested_transaction() is not None:
            return  # a released savepoint: the deliveries are not committed yet
        if session.info.pop(_WROTE_DELIVERY, False):
            self._scan = True
            self.wake.set()

    async def _run_forever(self) -> None:
        self._session = self._new_session()
        while True:
            try:
                async with asyncio.timeout(self.interval):
                    await self.wake.wait()
            except TimeoutError:
                self._scan = True
            self.wake.clear()
            try:
                await self._fill(self.clock())
            except (SQLAlchemyError, OSError) as exc:
                log.warning("webhook deliveries not read: %s", exc)
                await asyncio.sleep(RETRY_DELAY)

    # -- claiming and attempting -----------------------------------------------------

    @contextlib.asynccontextmanager
    async def _http(self) -> AsyncIterator[None]:
        if self._session is not None:
            yield
            return
        self._session = self._new_session()
        try:
            yield
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._session.close()
            self._session = None

    def _new_session(self) -> aiohttp.ClientSession:
        return webhook_transport.new_session(self.allow_private, self.timeout)

    def _spawn(self, work: Any, name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.get_name() == _WORKER or not self._tasks:
            self._progress.set()  # a queue ran dry, or everything is done

    async def _fill(self, now: datetime) -> None:
        """Claim due deliveries for every endpoint with room in its queue, and start
        workers on each queue, up to the endpoint's concurrency. Between scans, only
        the endpoints that asked for more are refilled."""
        if not self._endpoints:
            return
        if not self._scan:
            for endpoint in self._endpoints.values():
                if endpoint.refill_asked:
                    await self._refill(endpoint, now)
            return
        self._scan = False
        async with self.database.reading() as session:
            due = await deliveries_repository.due_endpoints(session, now)
            disabled = await deliveries_repository.disabled_endpoints(session) if due else set()
        for key in due:
            if key in disabled:
                async with self.database.transaction() as session:
                    await deliveries_repository.disable_endpoint(
                        session, key[0], key[1], now, "disabled"
                    )
                continue
            found = self._endpoints.get(key)
            if found is None:
                continue  # an endpoint no longer in the program file waits for it to return
            found.drained = False
            await self._refill(found, now)

    async def _refill(self, endpoint: _Endpoint, now: datetime) -> None:
        target = self._target(endpoint)
        if len(endpoint.queue) <= target // 2:  # claim in batches, not row by row
            room = min(self.batch, target - len(endpoint.queue) - endpoint.workers)
            if room > 0:
                claimed = await self._claim_first(endpoint, now, room)
                endpoint.queue.extend(claimed)
                endpoint.drained = len(claimed) < room
            endpoint.refill_asked = False
        while endpoint.queue and endpoint.workers < self.concurrency:
            endpoint.workers += 1
            self._spawn(self._work(endpoint), _WORKER)

    def _target(self, endpoint: _Endpoint) -> int:
        """How many deliveries the endpoint holds claimed at most: `AHEAD` batches when
        it answers fast, so that the next claim is made while the current one goes
        out; fewer when, at its pace, they would wait in the queue past half the lease
        margin (one batch until its pace is known)."""
        if endpoint.latency is None:
            return self.batch
        in_time = self.concurrency * LEASE_MARGIN.total_seconds() / 2 / endpoint.latency
        return max(self.concurrency, min(AHEAD * self.batch, int(in_time)))

    async def _claim_first(self, endpoint: _Endpoint, now: datetime, limit: int) -> list[Claimed]:
        """`_claim`, ahead of the recorder: a claim keeps the sends going, while an
        attempt waiting to be recorded only waits."""
        self._claiming += 1
        self._no_claims.clear()
        try:
            return await self._claim(endpoint, now, limit)
        finally:
            self._claiming -= 1
            if not self._claiming:
                self._no_claims.set()

    async def _claim(self, endpoint: _Endpoint, now: datetime, limit: int) -> list[Claimed]:
        """The claim records every attempt made so far in its own transaction (the
        recorder gets what is left). Should it fail, those attempts go back to the
        recorder: an attempt is recorded only while its lease is still ours, so one the
        failed claim had recorded after all is not recorded or counted twice."""
        results, self._results = self._results, []
        try:
            return await webhook_batches.claim(
                self.database,
                endpoint.program_id,
                endpoint.hook,
                now,
                limit,
                self.lease_for,
                results=results,
                report=self._report,
                observer=self.observer,
            )
        except BaseException as failed:
            self._results[:0] = results
            if not isinstance(failed, asyncio.CancelledError):  # stopping: the leases run out
                self._start_recorder()
            raise

    async def _work(self, endpoint: _Endpoint) -> None:
        """Attempt the endpoint's queued deliveries one after the other. A delivery that
        waited in the queue too long to finish within its lease is left to the lease:
        tried again once it runs out, never by two dispatchers at once."""
        try:
            while endpoint.queue:
                claimed = endpoint.queue.popleft()
                if time.monotonic() - claimed.claimed_at > LEASE_MARGIN.total_seconds():
                    continue
                if self._runs_low(endpoint):
                    endpoint.refill_asked = True
                    self.wake.set()  # claim the next ones while these go out
                    self._progress.set()
                started = time.monotonic()
                attempt = await self._attempt(endpoint, claimed)
                took = max(time.monotonic() - started, 1e-4)
                average = endpoint.latency
                endpoint.latency = took if average is None else 0.8 * average + 0.2 * took
                self._results.append((claimed, attempt))
                self._start_recorder()
        finally:
            endpoint.workers -= 1
            self._scan = True
            self.wake.set()

    def _start_recorder(self) -> None:
        if self._results and not self._recording:
            self._recording = True
            self._spawn(self._record_results(), "webhook-recorder")

    def _runs_low(self, endpoint: _Endpoint) -> bool:
        """Whether to ask for the endpoint's next batch now, while these go out."""
        if endpoint.refill_asked or endpoint.drained:
            return False
        return len(endpoint.queue) <= self._target(endpoint) // 2

    async def _record_results(self) -> None:
        """Record every attempt made so far in one transaction, until none is left."""
        try:
            while self._results:
                # A moment for the attempts in flight to finish: one transaction records
                # them all (a write costs a disk flush; an attempt to a fast receiver less).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(RECORD_WINDOW):
                        while len(self._results) < RECORD_BATCH and self._busy_workers():  # noqa: ASYNC110
                            await asyncio.sleep(RECORD_WINDOW / 10)
                await self._no_claims.wait()
                results, self._results = self._results, []
                try:
                    if results:  # else a claim recorded them all meanwhile
                        await self._record(results, self._now or self.clock())
                except (SQLAlchemyError, OSError) as exc:
                    # The leases run out and the deliveries are tried again: at least once.
                    log.warning("webhook attempts not recorded: %s", exc)
                self._progress.set()
        finally:
            self._recording = False

    def _busy_workers(self) -> bool:
        return any(endpoint.workers for endpoint in self._endpoints.values())

    async def _attempt(self, endpoint: _Endpoint, claimed: Claimed) -> Attempt:
        """One signed POST; never raises for what the endpoint or the network does."""
        if endpoint.refused:
            return Attempt(None, None, error=webhook_transport.REFUSED, refused=True)
        assert self._session is not None
        return await webhook_transport.send(
            self._session, claimed.endpoint.url, claimed.message_id, claimed.body, endpoint.signers
        )

    async def _record(self, results: list[tuple[Claimed, Attempt]], now: datetime) -> None:
        await webhook_batches.record(
            self.database, results, now, report=self._report, observer=self.observer
        )
