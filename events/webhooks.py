"""The outgoing-webhook dispatcher: due deliveries to each `[[webhooks]]` endpoint,
signed per Standard Webhooks, at least once, across restarts and replicas.

A change writes its delivery rows in its own transaction (`ledger/webhooks.py`). The
dispatcher claims due rows per endpoint under a lease (`ledger/deliveries_repository.py`),
sends them with no transaction open, and records each attempt: time, status, latency
and the first KiB of the answer. Then:

- 2xx: DELIVERED.
- 410: the endpoint is disabled (no more attempts to it until an operator retries one).
- 5xx, 408, 429, timeouts, refused or reset connections: again after 5 s, 5 min,
  30 min, 2 h, 5 h, 10 h, then DEAD (seven attempts).
- another 4xx, or a redirect (never followed): the same schedule, but DEAD after three.
- an address the guard refuses: REFUSED at once, nothing sent, not retried.

Every attempt of one delivery carries the same `webhook-id`; `webhook-timestamp` is the
moment of sending (receivers check it against their clock), and `webhook-signature`
holds one `v1,` signature per secret of the endpoint (rotation).

Each endpoint has at most `concurrency` attempts in flight in a process, and every call
has a connect and a total timeout, so a slow or dead endpoint holds only its own slots:
other endpoints and ledger writes never wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import aiohttp
from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from events import webhook_guard
from ledger import deliveries_repository, rules, webhooks
from ledger.db import Database
from ledger.models import DeliveryOutcome, WebhookDelivery
from ledger.program import OutgoingWebhook, Program

log = logging.getLogger("loyalty.webhooks")

CONCURRENCY = 4  # attempts in flight per endpoint, per process
CONNECT_TIMEOUT = 5.0  # seconds to open the connection (and TLS)
TIMEOUT = 10.0  # seconds for the whole call
LEASE_MARGIN = timedelta(seconds=5)  # past the timeout, before another dispatcher may retry
INTERVAL = 1.0  # seconds between looks for due deliveries when nothing woke the dispatcher
RETRY_DELAY = 0.5  # seconds before looking again after the database failed
ERROR_LIMIT = 200
USER_AGENT = "loyalty-gateway-webhooks"
_WROTE_DELIVERY = "loyalty_wrote_delivery"
SEQUENCED_TYPES = tuple(webhooks.TOPIC_OF)  # the outbox types a member's sequence counts


class DeliveryObserver(Protocol):
    """What the dispatcher reports to the metrics."""

    def attempted(self, outcome: str, seconds: float | None) -> None: ...

    def endpoint_disabled(self) -> None: ...


@dataclass
class Attempt:
    """What one call to an endpoint gave."""

    status: int | None
    latency_ms: int | None
    body: str | None = None
    error: str | None = None
    refused: bool = False


@dataclass
class _Claimed:
    delivery_id: int
    program_id: str
    endpoint: OutgoingWebhook
    message_id: str
    body: str
    sequence: int
    attempts: int
    lease: str


@dataclass
class DispatchReport:
    """Attempts of one `run_due`, by outcome, per program."""

    outcomes: dict[str, dict[str, int]] = field(default_factory=dict)

    def count(self, program_id: str, outcome: str) -> None:
        per_program = self.outcomes.setdefault(program_id, {})
        per_program[outcome] = per_program.get(outcome, 0) + 1


def signature_header(
    endpoint: OutgoingWebhook, message_id: str, timestamp: datetime, body: str
) -> str:
    """One `v1,<base64>` signature per secret of the endpoint, separated by spaces."""
    return " ".join(
        Webhook(secret).sign(message_id, timestamp, body) for secret in endpoint.signing_secrets
    )


def connector(allow_private: bool) -> aiohttp.TCPConnector:
    """The connector of the webhook session: the address guard as its resolver."""
    resolver = None if allow_private else webhook_guard.GuardedResolver()
    return aiohttp.TCPConnector(resolver=resolver, limit=0)


def refused_endpoints(programs: Mapping[str, Program]) -> list[tuple[str, str]]:
    """(program id, url) of the endpoints whose URL names a refused address literally."""
    return [
        (program.id, hook.url)
        for program in programs.values()
        for hook in program.webhooks
        if webhook_guard.refused_literal(hook.url)
    ]


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
        observer: DeliveryObserver | None = None,
    ) -> None:
        self.database = database
        self.programs = programs
        self.clock = clock
        self.allow_private = allow_private
        self.concurrency = concurrency
        self.timeout = aiohttp.ClientTimeout(
            total=timeout, connect=min(connect_timeout, timeout), sock_connect=connect_timeout
        )
        self.lease_for = timedelta(seconds=timeout) + LEASE_MARGIN
        self.interval = interval
        self.observer = observer
        self.wake = asyncio.Event()
        self._endpoints = {
            (program.id, hook.url): hook
            for program in programs.values()
            for hook in program.webhooks
        }
        self._in_flight: dict[tuple[str, str], int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._report: DispatchReport | None = None
        self._now: datetime | None = None  # the instant of a `run_due`, else the clock's
        if not allow_private:
            for program_id, url in refused_endpoints(programs):
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
        async with self._http():
            try:
                while True:
                    await self._fill(now or self.clock())
                    if not self._tasks:
                        return report
                    await asyncio.wait(set(self._tasks), return_when=asyncio.FIRST_COMPLETED)
            finally:
                self._report = self._now = None

    # -- running inside the server ---------------------------------------------------

    def start(self) -> None:
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
        if session.info.pop(_WROTE_DELIVERY, False):
            self.wake.set()

    async def _run_forever(self) -> None:
        self._session = self._new_session()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self.wake.wait()
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
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._session.close()
            self._session = None

    def _new_session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=connector(self.allow_private),
            timeout=self.timeout,
            headers={"User-Agent": USER_AGENT},
        )

    async def _fill(self, now: datetime) -> None:
        """Claim due deliveries for every endpoint with a free slot and start them."""
        async with self.database.transaction() as session:
            due = await deliveries_repository.due_endpoints(session, now)
            if not due:
                return
            disabled = await deliveries_repository.disabled_endpoints(session)
        for key in due:
            if key in disabled:
                async with self.database.transaction() as session:
                    await deliveries_repository.disable_endpoint(
                        session, key[0], key[1], now, "disabled"
                    )
                continue
            endpoint = self._endpoints.get(key)
            free = self.concurrency - self._in_flight.get(key, 0)
            if endpoint is None or free <= 0:
                continue  # an endpoint no longer in the program file waits for it to return
            for claimed in await self._claim(key[0], endpoint, now, free):
                self._in_flight[key] = self._in_flight.get(key, 0) + 1
                task = asyncio.create_task(self._deliver(claimed))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _claim(
        self, program_id: str, endpoint: OutgoingWebhook, now: datetime, limit: int
    ) -> list[_Claimed]:
        lease = secrets.token_hex(16)
        async with self.database.transaction() as session:
            rows = await deliveries_repository.claim_due(
                session,
                program_id,
                endpoint.url,
                now,
                limit,
                lease=lease,
                lease_until=now + self.lease_for,
                skip_locked=not self.database.is_sqlite,
            )
            if not rows:
                return []
            events = await deliveries_repository.events_by_ids(
                session, [row.outbox_id for row in rows if row.outbox_id is not None]
            )
            members = await deliveries_repository.members_by_ids(
                session, [e.member_id for e in events.values() if e.member_id is not None]
            )
            claimed = []
            for row in rows:
                outbox_event = events[row.outbox_id] if row.outbox_id is not None else None
                if outbox_event is None:
                    continue  # an outbound delivery always names its event
                sequence = row.sequence
                if sequence is None:
                    sequence = (
                        await deliveries_repository.member_sequence(
                            session,
                            outbox_event.member_id,
                            outbox_event.id,
                            list(webhooks.TOPIC_OF),
                        )
                        if outbox_event.member_id is not None
                        else 0
                    )
                member = members.get(outbox_event.member_id or 0)
                body = json.dumps(
                    webhooks.payload(row, outbox_event, member, sequence or 0),
                    separators=(",", ":"),
                )
                claimed.append(
                    _Claimed(
                        row.id,
                        program_id,
                        endpoint,
                        webhooks.message_id(row),
                        body,
                        sequence or 0,
                        row.attempts,
                        lease,
                    )
                )
        return claimed

    async def _deliver(self, claimed: _Claimed) -> None:
        key = (claimed.program_id, claimed.endpoint.url)
        try:
            attempt = await self._attempt(claimed)
            await self._record(claimed, attempt, self._now or self.clock())
        except (SQLAlchemyError, OSError) as exc:
            # The lease runs out and the delivery is tried again: at least once.
            log.warning("webhook attempt not recorded: %s", exc)
        finally:
            self._in_flight[key] -= 1
            self.wake.set()

    async def _attempt(self, claimed: _Claimed) -> Attempt:
        """One signed POST; never raises for what the endpoint or the network does."""
        url = claimed.endpoint.url
        if not self.allow_private and webhook_guard.refused_literal(url):
            return Attempt(None, None, error="private address refused", refused=True)
        assert self._session is not None
        sent = datetime.now(UTC)  # the receiver checks this against its own clock
        headers = {
            "Content-Type": "application/json",
            "webhook-id": claimed.message_id,
            "webhook-timestamp": str(int(sent.timestamp())),
            "webhook-signature": signature_header(
                claimed.endpoint, claimed.message_id, sent, claimed.body
            ),
        }
        started = time.perf_counter()
        try:
            async with self._session.post(
                url, data=claimed.body.encode(), headers=headers, allow_redirects=False
            ) as response:
                answer = await response.content.read(webhooks.BODY_LIMIT)
                status = response.status
        except aiohttp.ClientConnectorDNSError as exc:
            if isinstance(exc.os_error, webhook_guard.RefusedAddress):
                return Attempt(None, None, error=str(exc.os_error)[:ERROR_LIMIT], refused=True)
            return Attempt(None, _ms(started), error=_describe(exc))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return Attempt(None, _ms(started), error=_describe(exc))
        text = answer.decode("utf-8", errors="replace")
        return Attempt(status, _ms(started), body=text)

    async def _record(self, claimed: _Claimed, attempt: Attempt, now: datetime) -> None:
        attempts = claimed.attempts + 1
        disable = attempt.status == 410
        if attempt.refused:
            outcome, next_at = DeliveryOutcome.REFUSED, None
        elif attempt.status is not None and 200 <= attempt.status < 300:
            outcome, next_at = DeliveryOutcome.DELIVERED, None
        elif disable:
            outcome, next_at = DeliveryOutcome.DISABLED, None
        else:
            next_at = rules.webhook_retry_at(attempts, attempt.status, now)
            outcome = DeliveryOutcome.PENDING if next_at is not None else DeliveryOutcome.DEAD
        entry = {
            "at": now.isoformat(),
            "status": attempt.status,
            "latencyMs": attempt.latency_ms,
            "error": attempt.error,
            "body": attempt.body,
        }
        async with self.database.transaction() as session:
            recorded = await deliveries_repository.record_attempt(
                session,
                claimed.delivery_id,
                claimed.lease,
                outcome=outcome,
                next_attempt_at=next_at,
                status=attempt.status,
                sequence=claimed.sequence,
                attempt=entry,
                log_limit=webhooks.ATTEMPT_LOG_LIMIT,
                at=now,
            )
            if recorded and disable:
                await deliveries_repository.disable_endpoint(
                    session, claimed.program_id, claimed.endpoint.url, now, "410 Gone"
                )
        if not recorded:
            return
        label = "RETRYING" if outcome == DeliveryOutcome.PENDING else str(outcome)
        if self._report is not None:
            self._report.count(claimed.program_id, label)
        if self.observer is not None:
            seconds = None if attempt.latency_ms is None else attempt.latency_ms / 1000
            self.observer.attempted(label, seconds)
            if disable:
                self.observer.endpoint_disabled()


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"[:ERROR_LIMIT]
