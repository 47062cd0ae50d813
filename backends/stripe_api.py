"""The Stripe API, as the `stripe` webhook source reads it: one PaymentIntent by id.

Calls go out on the gateway's one aiohttp session with explicit timeouts. A network
error, a timeout, a 429 or a 5xx is `SourceUnavailable` (503: Stripe resends the event
for up to three days); any other 4xx is `Unprocessable` with Stripe's own message.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import aiohttp

from backends.inbound import SourceUnavailable, Unprocessable
from ledger.program_sections import StripeApi

CONNECT_TIMEOUT = 1.0
TOTAL_TIMEOUT = 3.0
MAX_ANSWER = 1 << 20


class StripeClient:
    """`GET /v1/payment_intents/{id}` with the program's secret or restricted key."""

    def __init__(self, http: aiohttp.ClientSession, config: StripeApi) -> None:
        self.http = http
        self.config = config
        self.timeout = aiohttp.ClientTimeout(total=TOTAL_TIMEOUT, connect=CONNECT_TIMEOUT)

    async def payment_intent(self, intent_id: str) -> dict[str, Any]:
        url = f"{self.config.base_url.rstrip('/')}/v1/payment_intents/{quote(intent_id, safe='')}"
        headers = {"Authorization": f"Bearer {self.config.api_key}"}
        try:
            async with self.http.get(url, headers=headers, timeout=self.timeout) as response:
                raw = await response.content.read(MAX_ANSWER + 1)
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SourceUnavailable(
                f"the Stripe API cannot be reached: {type(exc).__name__}"
            ) from None
        if status == 429 or status >= 500:
            raise SourceUnavailable(f"the Stripe API answered {status}; retry later")
        try:
            body = json.loads(raw) if len(raw) <= MAX_ANSWER else None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise SourceUnavailable(f"the Stripe API answered {status} without a JSON object")
        if status != 200:
            error = body.get("error")
            message = error.get("message") if isinstance(error, dict) else None
            raise Unprocessable(
                f"the Stripe API refused to read PaymentIntent {intent_id!r} ({status}): "
                f"{message if isinstance(message, str) else 'no message'}"
            )
        return body
