"""QuickBooks Online's Accounting API on a loopback port, for the `quickbooks` webhook
source: `GET /v3/company/{realmId}/payment/{id}`, `/invoice/{id}`, `/refundreceipt/{id}`
and `/creditmemo/{id}`, answered as
Intuit answers them (`{"Payment": {...}, "time": ...}`, amounts as JSON numbers), with
the bearer token checked and errors in Intuit's `Fault` shape.

Knobs for tests: `latency` (seconds before each answer), `status` (answer every
request with this HTTP status and a `SystemFault`, as an outage does), `fault_on_ok`
(a `SystemFault` inside a 200, which QuickBooks also sends), `requests` (paths read).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aiohttp import web

from backends.fakes.loopback import loopback
from ledger.program_sections import QuickBooks

ENTITIES = {
    "payment": "Payment",
    "invoice": "Invoice",
    "refundreceipt": "RefundReceipt",
    "creditmemo": "CreditMemo",
}
_NUMBER = re.compile(r'"@decimal:([-0-9.E+]+)@"')


def dumps(value: Any) -> str:
    """JSON with Decimals written as the exact numbers QuickBooks sends (`12.75`)."""

    def number(item: object) -> str:
        if isinstance(item, Decimal):
            return f"@decimal:{item}@"
        raise TypeError(f"{type(item).__name__} is not JSON")

    return _NUMBER.sub(r"\1", json.dumps(value, default=number))


def fault(kind: str, code: str, message: str, detail: str = "") -> dict[str, Any]:
    return {
        "Fault": {
            "Error": [{"Message": message, "Detail": detail, "code": code, "element": ""}],
            "type": kind,
        },
        "time": datetime.now(UTC).isoformat(),
    }


class FakeQuickBooks:
    def __init__(self, token: str = "qbo-access-token") -> None:
        self.token = token
        self.entities: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.latency = 0.0
        self.status: int | None = None
        self.fault_on_ok = False
        self.requests: list[str] = []
        self.base = ""

    def config(self, **overrides: Any) -> QuickBooks:
        """The program's `[quickbooks]` section pointing here."""
        return QuickBooks(**{"base_url": self.base, "token": self.token, **overrides})

    def add(self, realm: str, entity: str, value: dict[str, Any]) -> None:
        """Store a Payment, Invoice, RefundReceipt or CreditMemo (its `Id` names it) under
        its path segment (`payment`, `invoice`, `refundreceipt`, `creditmemo`)."""
        self.entities[(realm, entity, str(value["Id"]))] = value

    async def _read(self, request: web.Request) -> web.Response:
        self.requests.append(request.path_qs)
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.status is not None:
            return self._answer(
                fault("SystemFault", "10000", "An application error has occurred"), self.status
            )
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            body = fault(
                "AUTHENTICATION",
                "3200",
                "message=AuthenticationFailed; errorCode=003200; statusCode=401",
            )
            return self._answer(body, 401)
        if not request.query.get("minorversion", "").isdigit():
            return self._answer(fault("ValidationFault", "2010", "minorversion is missing"), 400)
        if self.fault_on_ok:
            return self._answer(fault("SystemFault", "10000", "An application error occurred"))
        entity = request.match_info["entity"]
        found = self.entities.get((request.match_info["realm"], entity, request.match_info["id"]))
        if entity not in ENTITIES or found is None:
            body = fault(
                "ValidationFault",
                "610",
                "Object Not Found",
                f"Object Not Found : Something you're trying to use has been made inactive "
                f"or is not found: {request.match_info['id']}",
            )
            return self._answer(body, 400)
        return self._answer({ENTITIES[entity]: found, "time": datetime.now(UTC).isoformat()})

    @staticmethod
    def _answer(body: dict[str, Any], status: int = 200) -> web.Response:
        return web.Response(text=dumps(body), status=status, content_type="application/json")

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[FakeQuickBooks]:
        app = web.Application()
        app.router.add_get("/v3/company/{realm}/{entity}/{id}", self._read)
        async with loopback(app) as self.base:
            yield self
