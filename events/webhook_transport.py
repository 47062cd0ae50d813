"""Signing and sending one outgoing webhook, per Standard Webhooks.

Every attempt of one delivery carries the same `webhook-id`; `webhook-timestamp` is the
moment of sending (receivers check it against their clock), and `webhook-signature`
holds one `v1,` signature per secret of the endpoint (rotation). The signatures are
made by the `standardwebhooks` package.

The HTTP session's connector has the address guard (`events/webhook_guard.py`) as its
resolver, so the addresses actually connected to are the ones checked. Every call has
a connect and a total timeout, no redirect is followed, and the answer is read up to
`BODY_LIMIT` bytes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
from standardwebhooks.webhooks import Webhook

from events import webhook_guard
from ledger import webhooks
from ledger.program import OutgoingWebhook, Program

ERROR_LIMIT = 200
USER_AGENT = "loyalty-gateway-webhooks"
REFUSED = "private address refused"  # the error of an attempt the guard stopped


@dataclass
class Attempt:
    """What one call to an endpoint gave."""

    status: int | None
    latency_ms: int | None
    body: str | None = None
    error: str | None = None
    refused: bool = False


def signature_header(
    endpoint: OutgoingWebhook, message_id: str, timestamp: datetime, body: str
) -> str:
    """One `v1,<base64>` signature per secret of the endpoint, separated by spaces."""
    return signature(signers(endpoint), message_id, timestamp, body)


def signers(endpoint: OutgoingWebhook) -> tuple[Webhook, ...]:
    """One signer per secret of the endpoint, made once (each decodes its secret)."""
    return tuple(Webhook(secret) for secret in endpoint.signing_secrets)


def signature(signing: tuple[Webhook, ...], message_id: str, timestamp: datetime, body: str) -> str:
    return " ".join(signer.sign(message_id, timestamp, body) for signer in signing)


def connector(allow_private: bool) -> aiohttp.TCPConnector:
    """The connector of the webhook session: the address guard as its resolver."""
    resolver = None if allow_private else webhook_guard.GuardedResolver()
    return aiohttp.TCPConnector(resolver=resolver, limit=0)


def new_session(allow_private: bool, timeout: aiohttp.ClientTimeout) -> aiohttp.ClientSession:
    """The HTTP session every attempt of a dispatcher goes through."""
    return aiohttp.ClientSession(
        connector=connector(allow_private),
        timeout=timeout,
        headers={"User-Agent": USER_AGENT},
    )


def refused_endpoints(programs: Mapping[str, Program]) -> list[tuple[str, str]]:
    """(program id, url) of the endpoints whose URL names a refused address literally."""
    return [
        (program.id, hook.url)
        for program in programs.values()
        for hook in program.webhooks
        if webhook_guard.refused_literal(hook.url)
    ]


async def send(
    session: aiohttp.ClientSession,
    url: str,
    message_id: str,
    body: str,
    signing: tuple[Webhook, ...],
) -> Attempt:
    """One signed POST; never raises for what the endpoint or the network does."""
    sent = datetime.now(UTC)  # the receiver checks this against its own clock
    headers = {
        "Content-Type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(sent.timestamp())),
        "webhook-signature": signature(signing, message_id, sent, body),
    }
    started = time.perf_counter()
    try:
        async with session.post(
            url, data=body.encode(), headers=headers, allow_redirects=False
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


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"[:ERROR_LIMIT]
