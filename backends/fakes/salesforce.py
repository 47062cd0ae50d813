"""Salesforce on a loopback port: the OAuth 2.0 client credentials token endpoint, SOQL
queries on Contact with `IN (...)` and their `nextRecordsUrl` pages, and the upsert of a
Contact by external id (`?updateOnly=true`: 404 `NOT_FOUND` when no Contact matches), with
Salesforce's paths, payloads and error shapes
(docs/platforms/salesforce.md).

The SOQL it understands is the one the client sends:
`SELECT <fields> FROM Contact WHERE <field> IN ('a', 'b', ...)`; string literals are read
with SOQL's escapes and a stray backslash is `MALFORMED_QUERY`, as on Salesforce, so a
client that does not escape is caught.

Knobs: `latency` (seconds before every answer), `hang` (never answer), `outage` (every
connection dropped unanswered), `fail(status, times)` (the next data calls answer `status`),
`throttle(retry_after, times)` (429 with `Retry-After`), `limit_exceeded(times)` (403
`REQUEST_LIMIT_EXCEEDED`), `malformed` (200 that is not JSON), `expire_tokens()` (every
issued token becomes `INVALID_SESSION_ID`), `page_size` (records per query page). Calls are
counted per route in `calls` (`token`, `query`, `query_more`, `upsert`; injected failures
under `failed`); the SOQL texts received are in `queries`.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

API_VERSION = "v62.0"
EXTERNAL_ID_FIELD = "Loyalty_Customer_Id__c"
LOYALTY_FIELDS = ("Loyalty_Points__c", "Loyalty_Tier__c")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}
_CONTACT_FIELDS = ("Id", "FirstName", "LastName", "Email", "Phone", "Account.Name")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Malformed(Exception):
    pass


@dataclass
class Contact:
    id: str
    customer_id: str
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    company: str | None = None
    loyalty: dict[str, Any] = field(default_factory=dict)


class FakeSalesforce:
    """One org with one connected app (`client_id`, `client_secret`)."""

    def __init__(
        self,
        *,
        client_id: str = "3MVG9fake.consumer.key",
        client_secret: str = "fake-consumer-secret",
        external_id_field: str = EXTERNAL_ID_FIELD,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.external_id_field = external_id_field
        self.contacts: list[Contact] = []
        self.tokens: set[str] = set()
        self.calls: Counter[str] = Counter()
        self.queries: list[str] = []
        self.upserts: list[tuple[str, dict[str, Any]]] = []
        self.base = ""
        self.latency = 0.0
        self.hang = False
        self.outage = False
        self.malformed = False
        self.page_size = 2000
        self._failures: list[tuple[int, float | None, str | None]] = []
        self._cursors: dict[str, list[dict[str, Any]]] = {}

    # -- the org's data ------------------------------------------------------------

    def add_contact(
        self,
        customer_id: str,
        first_name: str | None = None,
        last_name: str | None = None,
        *,
        email: str | None = None,
        phone: str | None = None,
        company: str | None = None,
    ) -> Contact:
        contact = Contact(
            id=f"003FAKE{len(self.contacts) + 1:011d}",
            customer_id=customer_id,
            first_name=first_name,
            last_name=last_name,
            email=email,
            phone=phone,
            company=company,
        )
        self.contacts.append(contact)
        return contact

    def contact(self, customer_id: str) -> Contact | None:
        return next((c for c in self.contacts if c.customer_id == customer_id), None)

    # -- knobs -----------------------------------------------------------------------

    def fail(self, status: int, times: int = 1) -> None:
        """The next `times` data calls answer `status` (5xx: Salesforce's error array)."""
        self._failures.extend([(status, None, None)] * times)

    def throttle(self, retry_after: float, times: int = 1) -> None:
        self._failures.extend([(429, retry_after, None)] * times)

    def limit_exceeded(self, times: int = 1) -> None:
        self._failures.extend([(403, None, "REQUEST_LIMIT_EXCEEDED")] * times)

    def expire_tokens(self) -> None:
        """Every token issued so far is now invalid (the session timed out)."""
        self.tokens.clear()

    @property
    def data_calls(self) -> int:
        return self.calls["query"] + self.calls["query_more"] + self.calls["upsert"]

    # -- the token endpoint ----------------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        self.calls["token"] += 1
        form = await request.post()
        if form.get("grant_type") != "client_credentials":
            return _oauth_error("unsupported_grant_type", "grant type not supported")
        if form.get("client_id") != self.client_id:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if form.get("client_secret") != self.client_secret:
            return _oauth_error("invalid_client", "invalid client credentials")
        token = "00DFAKE000000000!" + secrets.token_urlsafe(48)
        self.tokens.add(token)
        return web.json_response(
            {
                "access_token": token,
                "signature": secrets.token_urlsafe(32),
                "token_format": "opaque",
                "instance_url": self.base,
                "id": f"{self.base}/id/00DFAKE000000000/005FAKE000000000",
                "token_type": "Bearer",
                "issued_at": "1700000000000",
            }
        )

    # -- the data API ------------------------------------------------------------------

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        return header.startswith("Bearer ") and header[len("Bearer ") :] in self.tokens

    async def _query(self, request: web.Request) -> web.Response:
        self.calls["query"] += 1
        if not self._authorized(request):
            return _session_expired()
        soql = request.query.get("q")
        if soql is None:
            return _error(400, "MALFORMED_QUERY", "A query string has to be specified")
        self.queries.append(soql)
        try:
            fields, wanted = self._parse(soql)
        except _Malformed as exc:
            return _error(400, "MALFORMED_QUERY", str(exc))
        except KeyError as exc:
            column = exc.args[0]
            return _error(400, "INVALID_FIELD", f"No such column '{column}' on entity 'Contact'")
        version = request.match_info["version"]
        records = [
            self._record(contact, fields, version)
            for contact in self.contacts
            if contact.customer_id.casefold() in wanted
        ]
        return self._page(records, len(records), version)

    async def _query_more(self, request: web.Request) -> web.Response:
        self.calls["query_more"] += 1
        if not self._authorized(request):
            return _session_expired()
        cursor = request.match_info["cursor"]
        locator, _, offset = cursor.rpartition("-")
        rest = self._cursors.pop(cursor, None)
        if rest is None or not offset.isdigit():
            return _error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        total = int(offset) + len(rest)
        return self._page(rest, total, request.match_info["version"], locator)

    def _page(
        self, records: list[dict[str, Any]], total: int, version: str, locator: str | None = None
    ) -> web.Response:
        page, rest = records[: self.page_size], records[self.page_size :]
        body: dict[str, Any] = {"totalSize": total, "done": not rest, "records": page}
        if rest:
            locator = locator or f"01gFAKE{secrets.token_hex(6).upper()}"
            cursor = f"{locator}-{total - len(rest)}"
            self._cursors[cursor] = rest
            body["nextRecordsUrl"] = f"/services/data/{version}/query/{cursor}"
        return web.json_response(body)

    def _record(self, contact: Contact, fields: list[str], version: str) -> dict[str, Any]:
        values: dict[str, Any] = {
            "Id": contact.id,
            "FirstName": contact.first_name,
            "LastName": contact.last_name,
            "Email": contact.email,
            "Phone": contact.phone,
            self.external_id_field: contact.customer_id,
        }
        record: dict[str, Any] = {
            "attributes": {
                "type": "Contact",
                "url": f"/services/data/{version}/sobjects/Contact/{contact.id}",
            }
        }
        for name in fields:
            if name == "Account.Name":
                record["Account"] = (
                    None
                    if contact.company is None
                    else {
                        "attributes": {
                            "type": "Account",
                            "url": f"/services/data/{version}/sobjects/Account/001FAKE",
                        },
                        "Name": contact.company,
                    }
                )
            else:
                record[name] = values[name]
        return record

    def _parse(self, soql: str) -> tuple[list[str], set[str]]:
        """The selected fields and the (case-folded) values of the IN list."""
        words = soql.split(None, 1)
        if len(words) < 2 or words[0].upper() != "SELECT":
            raise _Malformed("unexpected token: SELECT expected")
        head, sep, tail = words[1].partition(" FROM ")
        if not sep:
            raise _Malformed("unexpected token: FROM expected")
        fields = [name.strip() for name in head.split(",")]
        known = {*_CONTACT_FIELDS, self.external_id_field}
        for name in fields:
            if name not in known:
                raise KeyError(name)
        sobject, _, condition = tail.strip().partition(" ")
        if sobject != "Contact":
            raise _Malformed(f"sObject type '{sobject}' is not supported")
        where, _, condition = condition.strip().partition(" ")
        if where.upper() != "WHERE":
            raise _Malformed("unexpected token: WHERE expected")
        column, _, rest = condition.strip().partition(" ")
        if column != self.external_id_field:
            raise KeyError(column)
        rest = rest.strip()
        if not rest.upper().startswith("IN"):
            raise _Malformed("unexpected token: IN expected")
        return fields, {value.casefold() for value in _in_list(rest[2:].strip())}

    async def _upsert(self, request: web.Request) -> web.Response:
        self.calls["upsert"] += 1
        if not self._authorized(request):
            return _session_expired()
        if request.match_info["field"] != self.external_id_field:
            return _error(
                404,
                "NOT_FOUND",
                "Provided external ID field does not exist or is not accessible: "
                + request.match_info["field"],
            )
        try:
            body = json.loads(await request.read())
        except ValueError:
            return _error(400, "JSON_PARSER_ERROR", "The request body is not JSON")
        if not isinstance(body, dict):
            return _error(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of Contact")
        for name in body:
            if name not in LOYALTY_FIELDS:
                return _error(
                    400, "INVALID_FIELD", f"No such column '{name}' on sobject of type Contact"
                )
        value = request.match_info["value"]
        self.upserts.append((value, body))
        contact = self.contact(value)
        if contact is not None:
            contact.loyalty.update(body)
            return web.Response(status=204)
        if request.query.get("updateOnly") == "true":
            return _error(404, "NOT_FOUND", "The requested resource does not exist")
        contact = self.add_contact(value)
        contact.loyalty.update(body)
        return web.json_response(
            {"id": contact.id, "errors": [], "success": True, "created": True}, status=201
        )

    # -- knobs applied to every answer -----------------------------------------------

    @web.middleware
    async def _knobs(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.hang:
            await asyncio.Event().wait()
        if self.outage:
            assert request.transport is not None
            request.transport.close()
            raise asyncio.CancelledError  # the connection is gone: no answer
        if request.path.startswith("/services/data/"):
            if self._failures:
                status, retry_after, code = self._failures.pop(0)
                self.calls["failed"] += 1
                headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
                return _error(status, code or _code(status), "injected failure", headers)
            if self.malformed:
                return web.Response(status=200, text='{"done": tr', content_type="application/json")
        return await handler(request)

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[FakeSalesforce]:
        # Salesforce takes a URI of up to 16,384 bytes (aiohttp would stop at 8,190)
        app = web.Application(middlewares=[self._knobs], handler_args={"max_line_size": 16384})
        app.router.add_post("/services/oauth2/token", self._token)
        app.router.add_get("/services/data/{version}/query", self._query)
        app.router.add_get("/services/data/{version}/query/", self._query)
        app.router.add_get("/services/data/{version}/query/{cursor}", self._query_more)
        app.router.add_patch(
            "/services/data/{version}/sobjects/Contact/{field}/{value}", self._upsert
        )
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            yield self
        finally:
            await runner.cleanup()


def _in_list(text: str) -> list[str]:
    """The string literals of `('a', 'b\\'c')`, unescaped; anything else is malformed."""
    if not text.startswith("(") or not text.endswith(")"):
        raise _Malformed("unexpected token: ( expected")
    values: list[str] = []
    inner, i = text[1:-1], 0
    while True:
        while i < len(inner) and inner[i] == " ":
            i += 1
        if i >= len(inner) or inner[i] != "'":
            raise _Malformed("unexpected token: a string literal expected")
        i += 1
        chars: list[str] = []
        while True:
            if i >= len(inner):
                raise _Malformed("unterminated string literal")
            char = inner[i]
            if char == "\\":
                escaped = inner[i + 1 : i + 2]
                if escaped not in _ESCAPES:
                    raise _Malformed("Invalid string literal: bad escape sequence")
                chars.append(_ESCAPES[escaped])
                i += 2
            elif char == "'":
                i += 1
                break
            else:
                chars.append(char)
                i += 1
        values.append("".join(chars))
        while i < len(inner) and inner[i] == " ":
            i += 1
        if i == len(inner):
            return values
        if inner[i] != ",":
            raise _Malformed(f"unexpected token: '{inner[i]}'")
        i += 1


def _code(status: int) -> str:
    return {401: "INVALID_SESSION_ID", 403: "INSUFFICIENT_ACCESS"}.get(
        status, "SERVER_UNAVAILABLE" if status >= 500 else "UNKNOWN_EXCEPTION"
    )


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(
        [{"message": message, "errorCode": code}], status=status, headers=headers
    )


def _session_expired() -> web.Response:
    return _error(401, "INVALID_SESSION_ID", "Session expired or invalid")


def _oauth_error(code: str, description: str) -> web.Response:
    return web.json_response({"error": code, "error_description": description}, status=400)
