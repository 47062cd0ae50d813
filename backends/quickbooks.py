"""QuickBooks Online Accounting API, read side: the payments, invoices, refund receipts
and credit memos a webhook notification names
(`GET /v3/company/{realmId}/{entity}/{id}?minorversion=N`).

One call per entity on the gateway's shared aiohttp session, with a connect and a total
timeout (Intuit wants its webhook answered within 3 seconds). Failures are translated
at this edge: a network fault, a timeout, a 429 or 5xx and a `SystemFault` are
`SourceUnavailable` (the gateway answers 503, Intuit retries); any other `Fault` (the
body QuickBooks sends for errors, even with a 200) or 4xx is `Unprocessable` naming
QuickBooks' own message. Amounts are read as Decimal.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from backends import payloads
from backends.inbound import SourceUnavailable, Unprocessable
from ledger.program_sections import QuickBooks

CONNECT_TIMEOUT = 1.0
TOTAL_TIMEOUT = 2.5
MAX_RESPONSE_BYTES = 1024 * 1024
TRANSIENT_FAULTS = frozenset({"SystemFault", "SYSTEM"})


class QuickBooksClient:
    def __init__(
        self,
        http: aiohttp.ClientSession,
        config: QuickBooks,
        *,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> None:
        self.http = http
        self.config = config
        self.timeout = timeout or aiohttp.ClientTimeout(
            total=TOTAL_TIMEOUT, connect=CONNECT_TIMEOUT
        )

    async def payment(self, realm: str, payment_id: str) -> dict[str, Any]:
        return await self._read(realm, "payment", payment_id, "Payment")

    async def invoice(self, realm: str, invoice_id: str) -> dict[str, Any]:
        return await self._read(realm, "invoice", invoice_id, "Invoice")

    async def refund_receipt(self, realm: str, refund_id: str) -> dict[str, Any]:
        return await self._read(realm, "refundreceipt", refund_id, "RefundReceipt")

    async def credit_memo(self, realm: str, memo_id: str) -> dict[str, Any]:
        return await self._read(realm, "creditmemo", memo_id, "CreditMemo")

    async def _read(self, realm: str, entity: str, entity_id: str, key: str) -> dict[str, Any]:
        where = f"QuickBooks {entity} {entity_id}"
        url = (
            f"{self.config.base_url.rstrip('/')}/v3/company/{_segment(realm)}"
            f"/{entity}/{_segment(entity_id)}"
        )
        headers = {"Authorization": f"Bearer {self.config.token}", "Accept": "application/json"}
        params = {"minorversion": str(self.config.minor_version)}
        try:
            async with self.http.get(
                url, headers=headers, params=params, timeout=self.timeout, allow_redirects=False
            ) as response:
                status = response.status
                raw = await response.content.read(MAX_RESPONSE_BYTES + 1)
        except TimeoutError:
            raise SourceUnavailable(f"{where}: QuickBooks did not answer in time") from None
        except aiohttp.ClientError as exc:
            raise SourceUnavailable(f"{where}: QuickBooks cannot be reached ({exc})") from None
        if status == 429 or status >= 500:
            raise SourceUnavailable(f"{where}: QuickBooks answered {status}")
        if len(raw) > MAX_RESPONSE_BYTES:
            raise Unprocessable(f"{where}: the answer is over {MAX_RESPONSE_BYTES} bytes")
        try:
            body = payloads.loads(raw, f"{where}: the answer")
        except Unprocessable:
            if status >= 400:
                raise Unprocessable(f"{where}: QuickBooks answered {status}") from None
            raise
        fault = body.get("Fault") if isinstance(body, dict) else None
        if fault is not None:
            raise _fault(where, status, fault)
        if status >= 300:
            raise Unprocessable(f"{where}: QuickBooks answered {status}")
        found = body.get(key) if isinstance(body, dict) else None
        if not isinstance(found, dict):
            raise Unprocessable(f"{where}: the answer has no {key}")
        return found


def _segment(value: str) -> str:
    if not value.isascii() or not value.replace("-", "").isalnum():
        raise Unprocessable(f"{value!r} is not a QuickBooks id")
    return value


def _fault(where: str, status: int, fault: object) -> Exception:
    kind = fault.get("type") if isinstance(fault, dict) else None
    errors = fault.get("Error") if isinstance(fault, dict) else None
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    message = (
        "; ".join(str(part) for part in (first.get("Message"), first.get("Detail")) if part)
        or "no message"
    )
    label = " ".join(str(part) for part in (kind or "Fault", first.get("code")) if part)
    reason = f"{where}: QuickBooks {label} ({status}): {message}"
    if kind in TRANSIENT_FAULTS:
        return SourceUnavailable(reason)
    return Unprocessable(reason)
