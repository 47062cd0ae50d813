"""The common flow of every inbound webhook: verify, identify, dedupe, parse, act.

`receive` turns one delivery into an `Answer` (status, JSON body, headers) that the
gateway sends as it is. The answers of DESIGN §7:

| case | status | recorded as |
|---|---|---|
| bad or missing signature | 401 | nothing |
| applied (committed) | 200 | APPLIED |
| repeat of a settled delivery id | 200 | one more attempt, unchanged |
| the effect was already there (same order, same customer) | 200 | DUPLICATE |
| a topic with nothing to do; a purchase of a customer who is no member | 200 | IGNORED |
| a payload that can never apply | 422 (409 for a reused idempotency key) | REJECTED |
| database unavailable, platform API down | 503 + Retry-After | FAILED (if it can be) |
| the platform's signature-checking API down | 503 + Retry-After | nothing |
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError

from backends.inbound import (
    BadSignature,
    Delivery,
    Identity,
    Ignored,
    InboundError,
    SourceUnavailable,
    Unprocessable,
    WebhookSource,
)
from ledger import inbound, rules
from ledger.commands import Command, Problem
from ledger.db import Database, is_unavailable
from ledger.models import DeliveryOutcome
from ledger.service import LoyaltyService

log = logging.getLogger("loyalty.webhooks.in")

RETRY_AFTER_SECONDS = 5
CONFLICT_CODES = frozenset({"IDEMPOTENCY_CONFLICT"})


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def unavailable(reason: str) -> Answer:
    return Answer(
        503,
        {"error": "SERVICE_UNAVAILABLE", "reason": reason},
        {"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def receive(
    service: LoyaltyService, database: Database, source: WebhookSource, delivery: Delivery
) -> Answer:
    """One delivery, answered. The caller has checked that the program configures the
    source (404 otherwise) and capped the body."""
    return await _Flow(service, database, source, delivery).run()


@dataclass
class _Flow:
    service: LoyaltyService
    database: Database
    source: WebhookSource
    delivery: Delivery

    @property
    def program_id(self) -> str:
        return self.delivery.program.id

    async def run(self) -> Answer:
        where = f"{self.program_id}/{self.source.name}"
        try:
            await self.source.verify(self.delivery, self.source.secrets(self.delivery.program))
        except BadSignature as exc:
            log.info("%s: signature refused: %s", where, exc.reason)
            return Answer(401, {"error": exc.code, "reason": exc.reason})
        except SourceUnavailable as exc:  # the platform's verification API is down
            log.warning("%s: signature not checked: %s", where, exc.reason)
            return unavailable(exc.reason)
        try:
            try:
                identity = _storable(self.source.identify(self.delivery))
            except Unprocessable as exc:
                # No id of its own: the body's hash stands in, so repeats count as one.
                digest = hashlib.sha256(self.delivery.body).hexdigest()
                return await self._refused(Identity(f"sha256:{digest}", ""), exc.code, exc.reason)
            return await self._act(identity)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            log.warning("%s: database unavailable: %r", where, exc)
            return unavailable("the ledger cannot be reached now; retry later")

    async def _act(self, identity: Identity) -> Answer:
        async with self.database.reading() as session:
            settled = await inbound.settled(
                session, self.program_id, self.source.name, identity.event_id
            )
        commands: list[Command] = []  # a repeat: one more attempt on the record, nothing runs
        if settled is None:
            try:
                parsed = await self.source.parse(self.delivery, identity)
            except SourceUnavailable as exc:
                log.warning("%s %s: %s", self.source.name, identity, exc.reason)
                await self._failed(identity, exc.reason)
                return unavailable(exc.reason)
            except InboundError as exc:
                return await self._refused(identity, exc.code, exc.reason)
            if isinstance(parsed, Ignored):
                return await self._ignored(identity, parsed.reason)
            commands = list(parsed)
        for attempt in range(2):
            try:
                async with self.database.transaction() as session:
                    receipt = await inbound.apply(
                        self.service,
                        session,
                        self.program_id,
                        self.source.name,
                        identity.event_id,
                        identity.topic,
                        commands,
                    )
                break
            except inbound.Rejected as exc:  # the transaction is rolled back: nothing kept
                problem = exc.problem
                return await self._refused(identity, problem.code, problem.message, problem)
            except IntegrityError:
                # The same delivery id received twice at once: the other committed
                # first, so this one is a repeat now.
                if attempt:
                    raise
                commands = []
        return Answer(200, _receipt_body(receipt))

    async def _ignored(self, identity: Identity, reason: str) -> Answer:
        receipt = await self._record(identity, DeliveryOutcome.IGNORED, 200, reason)
        return Answer(200, {**_receipt_body(receipt), "reason": reason})

    async def _refused(
        self, identity: Identity, code: str, reason: str, problem: Problem | None = None
    ) -> Answer:
        status = 409 if code in CONFLICT_CODES else Unprocessable.status
        log.info("%s %s: refused, %s: %s", self.source.name, identity, code, reason)
        receipt = await self._record(
            identity, DeliveryOutcome.REJECTED, status, f"{code}: {reason}"
        )
        if receipt.repeat:  # settled meanwhile by a concurrent delivery of the same id
            return Answer(200, _receipt_body(receipt))
        body: dict[str, Any] = {
            "error": code,
            "reason": reason,
            "delivery": str(receipt.delivery_id),
        }
        if problem is not None and problem.field:
            body["field"] = problem.field
        return Answer(status, body)

    async def _failed(self, identity: Identity, reason: str) -> None:
        try:
            await self._record(identity, DeliveryOutcome.FAILED, 503, reason)
        except Exception as exc:  # the answer is a 503 anyway: the platform retries
            if not is_unavailable(exc):
                raise
            log.warning("%s %s: failure not recorded: %r", self.source.name, identity, exc)

    async def _record(
        self, identity: Identity, outcome: DeliveryOutcome, status: int, reason: str
    ) -> inbound.Receipt:
        for attempt in range(2):
            try:
                async with self.database.transaction() as session:
                    return await inbound.record(
                        session,
                        self.program_id,
                        self.source.name,
                        identity.event_id,
                        identity.topic,
                        outcome,
                        status=status,
                        reason=reason,
                        now=self.service.clock(),
                    )
            except IntegrityError:  # recorded by a concurrent delivery of the same id
                if attempt:
                    raise
        raise AssertionError("unreachable")


def _storable(identity: Identity) -> Identity:
    """The identity as the record can hold it: an id too long or with text no database
    stores is kept as its hash (still one record per id); such a topic as its repr."""
    event_id, topic = identity.event_id, identity.topic
    if len(event_id) > inbound.MAX_EVENT_ID or rules.text_problem(event_id):
        event_id = "sha256:" + hashlib.sha256(event_id.encode("utf-8", "surrogatepass")).hexdigest()
    if len(topic) > inbound.MAX_TOPIC or rules.text_problem(topic):
        topic = ascii(topic)[: inbound.MAX_TOPIC]
    return Identity(event_id, topic)


def _receipt_body(receipt: inbound.Receipt) -> dict[str, Any]:
    body: dict[str, Any] = {"outcome": receipt.outcome.value, "delivery": str(receipt.delivery_id)}
    if receipt.repeat:
        body["repeat"] = True
    return body
