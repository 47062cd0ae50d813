"""Square's Orders API, read by the `square` webhook source: `GET /v2/orders/{order_id}`
with `Authorization: Bearer <token>` and `Square-Version` (`[square]` of the program).

Errors are translated for the inbound flow: a network fault, a timeout, 429 or a 5xx is
`SourceUnavailable` (503, Square retries the notification); another 4xx is
`Unprocessable` naming Square's `errors[]` code (the order can never be read as it is).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import aiohttp

from backends.inbound import SourceUnavailable, Unprocessable
from ledger.program_sections import Square

TIMEOUT = aiohttp.ClientTimeout(total=4.0, connect=2.0)
MAX_ANSWER = 1024 * 1024


def _errors(answer: Any) -> str:
    """Square's `errors[]` as `CODE: detail; ...`, or '' if there are none."""
    errors = answer.get("errors") if isinstance(answer, dict) else None
    if not isinstance(errors, list):
        return ""
    parts = []
    for error in errors[:3]:
        if isinstance(error, dict):
            code, detail = error.get("code"), error.get("detail")
            parts.append(f"{code}: {detail}" if detail else str(code))
    return "; ".join(parts)


async def retrieve_order(
    http: aiohttp.ClientSession, square: Square, order_id: str
) -> dict[str, Any]:
    """The order, as Square's RetrieveOrder answers it (`order`)."""
    url = f"{square.base_url.rstrip('/')}/v2/orders/{quote(order_id, safe='')}"
    headers = {
        "Authorization": f"Bearer {square.token}",
        "Square-Version": square.version,
        "Accept": "application/json",
    }
    try:
        async with http.get(
            url, headers=headers, timeout=TIMEOUT, allow_redirects=False
        ) as response:
            raw = await response.content.read(MAX_ANSWER + 1)
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise SourceUnavailable(f"Square's Orders API cannot be reached: {exc!r}") from None
    try:
        answer = json.loads(raw) if len(raw) <= MAX_ANSWER else None
    except ValueError:
        answer = None
    if status == 429 or status >= 500:
        raise SourceUnavailable(f"Square's Orders API answered {status} {_errors(answer)}".strip())
    if status != 200:
        reason = _errors(answer) or "no errors[] in the answer"
        raise Unprocessable(f"Square's Orders API answered {status} for order {order_id}: {reason}")
    order = answer.get("order") if isinstance(answer, dict) else None
    if not isinstance(order, dict):
        raise SourceUnavailable("Square's Orders API answered 200 without an order")
    return order
