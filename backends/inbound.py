"""Inbound webhook adapters: the shape every platform source has, and their registry.

`POST /webhooks/{program}/{source}` (DESIGN §7) hands the raw delivery to the source
named in the URL; `backends.receiving.receive` runs the common flow around it:

1. the program must exist and configure the source's secret (else 404);
2. `verify` checks the signature on the raw bytes, before anything is parsed or stored
   (a bad or missing signature is 401 and nothing is recorded);
3. `identify` names the delivery: the platform's event or delivery id (the dedupe key)
   and its topic; a settled delivery id answers 200 and changes nothing;
4. `parse` maps the payload to ledger commands (`ledger/commands.py`), or returns
   `Ignored(reason)` for a topic with nothing to do (200), or raises `Unprocessable`
   for a payload that can never apply (4xx, only the delivery is recorded), or
   `SourceUnavailable` when a platform API it needs is down (503, the platform retries);
5. the commands run through `LoyaltyService.execute` (the same functions the GraphQL
   mutations call) in one transaction with the delivery record; 2xx after the commit.

Adapters hold no business rule: they translate. Points, refunds, duplicates of an
order, pending refunds are the ledger's. Money goes through `money()` (the Decimal
rules of the GraphQL scalar).

Adding a source
---------------
Create `backends/sources/<name>.py` defining `SOURCE`, an instance of a `WebhookSource`
subclass whose `name` is the URL segment (and the `[webhook_secrets]` key, unless the
class overrides `secrets`):

    class AcmePos(WebhookSource):
        name = "acmepos"

        async def verify(self, delivery: Delivery, secrets: tuple[str, ...]) -> None:
            try:
                given = bytes.fromhex(delivery.header("x-acme-sig") or "")
            except ValueError:
                raise BadSignature("X-Acme-Sig is not hex") from None
            if not any(same(hmac_sha256(s, delivery.body), given) for s in secrets):
                raise BadSignature("X-Acme-Sig does not match the body")

        def identify(self, delivery: Delivery) -> Identity:
            topic = delivery.header("x-acme-topic") or ""
            return Identity(required_header(delivery, "x-acme-id"), topic)

        async def parse(self, delivery: Delivery, identity: Identity) -> Parsed:
            body = json_object(delivery)
            if identity.topic != "sale.done":
                return Ignored(f"topic {identity.topic!r} is not handled")
            return [RecordPurchase(...)]

    SOURCE = AcmePos()

Only the three errors above may leave an adapter (anything else is a 500): turn a
platform's malformed input into `Unprocessable`, a timeout or 5xx of its API (always
called with a timeout, through `delivery.http`) into `SourceUnavailable`.

The registry finds every module of `backends/sources/` by itself; nothing else needs
editing, bar the program file's key: add `<name>: Secrets = ()` to `WebhookSecrets` in
`ledger/program_sections.py` (one secret or a list, for rotation). Refunds from a platform set
`keep_until_purchase=True` (they may come before the purchase; the ledger keeps them),
and refer to lines by the platform's own line id (`Line.ref` on the purchase,
`RefundPurchase.line_refs`) when it sends one. Tests go
in `tests/backends/test_<name>.py`, over real HTTP (`tests/support/gateway.py`).
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import pkgutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any

import aiohttp

from ledger import rules
from ledger.commands import Command
from ledger.program import Program

MAX_JSON_DEPTH = 64


class InboundError(Exception):
    """A delivery refused before it reaches the ledger; `status` is the HTTP answer."""

    status = 400
    code = "BAD_REQUEST"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BadSignature(InboundError):
    """A missing, malformed, stale or wrong signature: 401, nothing stored."""

    status = 401
    code = "INVALID_SIGNATURE"


class Unprocessable(InboundError):
    """A signed payload that can never apply (malformed, missing fields): 422."""

    status = 422
    code = "INVALID_PAYLOAD"


class SourceUnavailable(InboundError):
    """A platform API the source must call is down or timed out: 503, retried."""

    status = 503
    code = "SOURCE_UNAVAILABLE"


@dataclass(frozen=True)
class Delivery:
    """One webhook request as received: raw bytes, lower-cased header names."""

    program: Program
    source: str
    body: bytes
    headers: Mapping[str, str]
    received_at: datetime
    http: aiohttp.ClientSession | None = None  # for sources that call their platform back

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class Identity:
    """The platform's id of the delivery (the dedupe key) and its topic."""

    event_id: str
    topic: str


@dataclass(frozen=True)
class Ignored:
    """A verified delivery with nothing to do in the ledger: answered 200, recorded."""

    reason: str


Parsed = Sequence[Command] | Ignored


class WebhookSource:
    """The base of every source; subclasses set `name` and implement the three steps."""

    name: str = ""

    def secrets(self, program: Program) -> tuple[str, ...]:
        """The secrets to verify with, current first; () means the source answers 404."""
        return program.webhook_secrets.of(self.name)

    async def verify(self, delivery: Delivery, secrets: tuple[str, ...]) -> None:
        """Raise `BadSignature` unless the raw body is signed with one of `secrets`;
        `SourceUnavailable` when the platform API that checks signatures is down (503,
        nothing recorded)."""
        raise NotImplementedError

    def identify(self, delivery: Delivery) -> Identity:
        """The dedupe key and topic of a verified delivery; `Unprocessable` if absent."""
        raise NotImplementedError

    async def parse(self, delivery: Delivery, identity: Identity) -> Parsed:
        """Ledger commands for the delivery, or `Ignored`; `Unprocessable` if it never
        applies, `SourceUnavailable` on a transient fault of a platform API."""
        raise NotImplementedError

    def response_body(self, status: int, body: dict[str, Any]) -> dict[str, Any]:
        """The JSON answered for `status`; a platform that reads the answer's body (Adobe
        Commerce) reshapes it here. The status and headers stay as the flow decided."""
        return body


@cache
def sources() -> dict[str, WebhookSource]:
    """Every source of `backends/sources/`, by name."""
    from backends import sources as package

    found: dict[str, WebhookSource] = {}
    for module in pkgutil.iter_modules(package.__path__):
        loaded = importlib.import_module(f"{package.__name__}.{module.name}")
        source = getattr(loaded, "SOURCE", None)
        if isinstance(source, WebhookSource):
            if source.name in found:
                raise RuntimeError(f"two webhook sources are named {source.name!r}")
            found[source.name] = source
    return found


# -- helpers for adapters ---------------------------------------------------------------


def hmac_sha256(secret: str | bytes, message: bytes) -> bytes:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, message, hashlib.sha256).digest()


def same(expected: bytes, given: bytes) -> bool:
    """Constant-time comparison."""
    return hmac.compare_digest(expected, given)


def required_header(delivery: Delivery, name: str) -> str:
    value = delivery.header(name)
    if not value:
        raise Unprocessable(f"the {name} header is missing")
    return value


def json_object(delivery: Delivery) -> dict[str, Any]:
    """The body as a JSON object (nesting bounded), or `Unprocessable`."""
    try:
        value = json.loads(delivery.body)
    except RecursionError:
        raise Unprocessable("the JSON is nested too deeply") from None
    except ValueError:
        raise Unprocessable("the body is not JSON") from None
    if not isinstance(value, dict):
        raise Unprocessable("the body must be a JSON object")
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise Unprocessable(f"the JSON is nested more than {MAX_JSON_DEPTH} deep")
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        pending.extend((child, depth + 1) for child in children)
    return value


def money(value: object, field: str) -> Decimal:
    """A money amount as the platform sends it (a decimal string, or an integer), by the
    rules of the GraphQL Decimal scalar; `Unprocessable` naming `field` otherwise."""
    try:
        return rules.decimal_text(value)
    except ValueError as exc:
        raise Unprocessable(f"{field}: {exc}") from None


def text(value: object, field: str) -> str:
    """An id the platform sends as a string or an integer, as a string."""
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise Unprocessable(f"{field} is missing or not a string")
    return str(value)


def integer(value: object, field: str, *, low: int = -(2**31), high: int = 2**31 - 1) -> int:
    """An integer within GraphQL Int's bounds (or narrower)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Unprocessable(f"{field} must be an integer between {low} and {high}")
    return value
