"""PayPal's REST API, as the `paypal` webhook source calls it (`[paypal]` of the program):

- `POST /v1/oauth2/token` (HTTP Basic `client_id:client_secret`,
  `grant_type=client_credentials`): an access token, kept until `expires_in` runs out
  (one per app and base URL, shared by the process; dropped when PayPal refuses it);
- `POST /v1/notifications/verify-webhook-signature`: PayPal checks a delivery's
  transmission headers against our Webhook ID and the event, `verification_status`
  `SUCCESS` or `FAILURE`;
- `GET /v2/payments/captures/{capture_id}`: the capture a refund belongs to.

The event is sent to PayPal as the bytes we received (spliced into the request), not
re-serialized: PayPal's signature covers the CRC-32 of those bytes.

A network fault, a timeout, 429 or a 5xx is `SourceUnavailable` (503: PayPal retries the
delivery); refused app credentials are too (nothing can be verified until the program
file is fixed, and PayPal keeps retrying for three days).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from backends.inbound import SourceUnavailable, Unprocessable
from ledger.program_sections import Paypal

TIMEOUT = aiohttp.ClientTimeout(total=5.0, connect=2.0)
MAX_ANSWER = 1024 * 1024
TOKEN_MARGIN = 60.0  # seconds before `expires_in` runs out that a token is renewed


@dataclass(frozen=True)
class Transmission:
    """The five PAYPAL-* headers of one delivery."""

    transmission_id: str
    transmission_time: str
    transmission_sig: str
    cert_url: str
    auth_algo: str


@dataclass
class _Token:
    value: str
    expires: float  # time.monotonic()


_tokens: dict[tuple[str, str], _Token] = {}
_locks: dict[tuple[str, str, int], asyncio.Lock] = {}  # per event loop: a Lock binds to one


def _base(config: Paypal) -> str:
    return config.base_url.rstrip("/")


def _reason(answer: Any) -> str:
    """PayPal's error shape (`name`, `message`, `details[].issue`), or OAuth's
    (`error`, `error_description`), shortened."""
    if not isinstance(answer, dict):
        return "no error body"
    if "error" in answer:
        return f"{answer.get('error')}: {answer.get('error_description', '')}".strip(": ")
    parts = [f"{answer.get('name')}: {answer.get('message')}"]
    details = answer.get("details")
    if isinstance(details, list):
        parts += [
            f"{item.get('field')} {item.get('issue')}"
            for item in details[:3]
            if isinstance(item, dict)
        ]
    return "; ".join(parts)


async def _call(
    http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, Any]:
    try:
        async with http.request(
            method, url, timeout=TIMEOUT, allow_redirects=False, **kwargs
        ) as response:
            raw = await response.content.read(MAX_ANSWER + 1)
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise SourceUnavailable(f"PayPal's API cannot be reached: {exc!r}") from None
    try:
        answer = json.loads(raw) if len(raw) <= MAX_ANSWER else None
    except ValueError:
        answer = None
    if status == 429 or status >= 500:
        raise SourceUnavailable(f"PayPal's API answered {status}: {_reason(answer)}")
    return status, answer


async def access_token(http: aiohttp.ClientSession, config: Paypal) -> str:
    """The app's access token, fetched once and kept until it expires."""
    key = (_base(config), config.client_id)
    token = _tokens.get(key)
    if token is not None and token.expires > time.monotonic():
        return token.value
    async with _locks.setdefault((*key, id(asyncio.get_running_loop())), asyncio.Lock()):
        token = _tokens.get(key)
        if token is not None and token.expires > time.monotonic():
            return token.value
        started = time.monotonic()
        status, answer = await _call(
            http,
            "POST",
            f"{_base(config)}/v1/oauth2/token",
            data={"grant_type": "client_credentials"},
            headers={
                "Accept": "application/json",
                "Authorization": aiohttp.encode_basic_auth(config.client_id, config.client_secret),
            },
        )
        value = answer.get("access_token") if isinstance(answer, dict) else None
        lifetime = answer.get("expires_in") if isinstance(answer, dict) else None
        if status != 200 or not isinstance(value, str) or not value:
            raise SourceUnavailable(
                f"PayPal refused the app's credentials ({status}, {_reason(answer)}): "
                "check [paypal] client_id and client_secret"
            )
        seconds = float(lifetime) if isinstance(lifetime, int | float) and lifetime > 0 else 0.0
        margin = min(TOKEN_MARGIN, seconds / 2)
        _tokens[key] = _Token(value, started + seconds - margin)
        return value


def _forget(config: Paypal, value: str) -> None:
    key = (_base(config), config.client_id)
    token = _tokens.get(key)
    if token is not None and token.value == value:
        del _tokens[key]


async def _authorized(
    http: aiohttp.ClientSession, config: Paypal, method: str, path: str, **kwargs: Any
) -> tuple[int, Any]:
    """A call with the app's token; a refused token is renewed once."""
    extra = kwargs.pop("headers", {})
    for attempt in range(2):
        token = await access_token(http, config)
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json", **extra}
        status, answer = await _call(
            http, method, f"{_base(config)}{path}", headers=headers, **kwargs
        )
        if status != 401 or attempt:
            return status, answer
        _forget(config, token)
    raise AssertionError("unreachable")


async def verify_signature(
    http: aiohttp.ClientSession, config: Paypal, transmission: Transmission, body: bytes
) -> tuple[bool, str]:
    """PayPal's verdict on a delivery: (True, "SUCCESS"), or (False, why)."""
    fields = {
        "auth_algo": transmission.auth_algo,
        "cert_url": transmission.cert_url,
        "transmission_id": transmission.transmission_id,
        "transmission_sig": transmission.transmission_sig,
        "transmission_time": transmission.transmission_time,
        "webhook_id": config.webhook_id,
    }
    # The raw event bytes as the last member: `body` is a JSON object (checked before).
    request = json.dumps(fields).encode()[:-1] + b', "webhook_event": ' + body + b"}"
    status, answer = await _authorized(
        http,
        config,
        "POST",
        "/v1/notifications/verify-webhook-signature",
        data=request,
        headers={"Content-Type": "application/json"},
    )
    if status != 200:
        return False, f"PayPal answered {status}: {_reason(answer)}"
    verdict = answer.get("verification_status") if isinstance(answer, dict) else None
    if verdict == "SUCCESS":
        return True, "SUCCESS"
    return False, f"PayPal's verification_status is {verdict!r}"


async def capture(http: aiohttp.ClientSession, config: Paypal, capture_id: str) -> dict[str, Any]:
    """A capture (`GET /v2/payments/captures/{id}`)."""
    status, answer = await _authorized(
        http, config, "GET", f"/v2/payments/captures/{quote(capture_id, safe='')}"
    )
    if status != 200 or not isinstance(answer, dict):
        raise Unprocessable(f"PayPal answered {status} for capture {capture_id}: {_reason(answer)}")
    return answer
