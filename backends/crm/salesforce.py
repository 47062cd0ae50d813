"""Salesforce as the CRM (`[crm] kind = "salesforce"`): Contacts read with SOQL over the
REST API, the token from the OAuth 2.0 client credentials flow
(docs/platforms/salesforce.md).

    [crm]
    kind = "salesforce"
    base_url = "https://acme.my.salesforce.com"      # the org's My Domain
    client_id = "3MVG9..."                           # the app's consumer key
    client_secret = "..."                            # and consumer secret
    customer_id_property = "Loyalty_Customer_Id__c"  # the Contact's external-id field

- **Token**: `POST /services/oauth2/token` (`grant_type=client_credentials`), fetched on
  first use by one caller while the others wait for it, and kept until Salesforce answers
  401 `INVALID_SESSION_ID` (it has no `expires_in`: it lives as long as the app's session
  timeout). Then a new token is fetched and the call repeated once; a second refusal is
  `BadCredentials`.
- **Reads**: one SOQL query per at most 200 customer ids,
  `SELECT ... FROM Contact WHERE <field> IN ('a', ...)`, each id escaped as SOQL string
  literals require, and every `nextRecordsUrl` page followed.
- **Writes** (the CRM write-back): `write_loyalty` sets `Loyalty_Points__c` and
  `Loyalty_Tier__c` on each member's Contact by external id
  (`PATCH .../sobjects/Contact/<field>/<value>?updateOnly=true`), one call per member.

Salesforce's errors are a JSON array `[{"message", "errorCode"}]`; `send` of the base
client would turn a 401 into `BadCredentials` before its body could say whether the
session merely expired, so this client reads its own answers (`_exchange`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar
from urllib.parse import quote

import aiohttp
from yarl import URL

from backends.client import MAX_BODY, Answer, Breakers
from backends.crm.base import CrmClient, CrmProfile, LoyaltyStanding
from backends.errors import (
    BackendError,
    BackendThrottled,
    BackendTimeout,
    BackendUnavailable,
    BadAnswer,
    BadCredentials,
)
from ledger.program_sections import BackendSection, Crm

API_VERSION = "v62.0"
POINTS_FIELD = "Loyalty_Points__c"
TIER_FIELD = "Loyalty_Tier__c"
WRITE_CONCURRENCY = 8  # write-back PATCHes in flight at once
MAX_URL = 16_000  # bytes: Salesforce refuses URI + headers over 16,384 (414 / 431)
_SOQL_ESCAPES = str.maketrans(
    {
        "\\": "\\\\",
        "'": "\\'",
        '"': '\\"',
        "\n": "\\n",
        "\r": "\\r",
        "\t": "\\t",
        "\b": "\\b",
        "\f": "\\f",
    }
)


def soql_string(value: str) -> str:
    """`value` as a SOQL string literal: quoted, with SOQL's reserved characters escaped
    ("Quoted String Escape Sequences"), so it can never end the literal."""
    return "'" + value.translate(_SOQL_ESCAPES) + "'"


@dataclass(frozen=True)
class _Session:
    access_token: str
    instance_url: str


class SalesforceClient(CrmClient):
    """Contacts of one Salesforce org, by the external-id field that holds customerId."""

    kind: ClassVar[str] = "salesforce"
    max_batch: ClassVar[int] = 200
    writes_back: ClassVar[bool] = True

    def __init__(
        self,
        program_id: str,
        config: BackendSection,
        session: aiohttp.ClientSession,
        breakers: Breakers,
    ) -> None:
        super().__init__(program_id, config, session, breakers)
        if not isinstance(config, Crm) or not config.client_id or not config.client_secret:
            raise ValueError("a salesforce CRM needs `client_id` and `client_secret`")
        self.client_id = config.client_id
        self.client_secret = config.client_secret
        self.field = config.customer_id_property
        self._session: _Session | None = None
        self._session_lock = asyncio.Lock()

    # -- reads ---------------------------------------------------------------------

    async def fetch_profiles(self, customer_ids: list[str]) -> Mapping[str, CrmProfile]:
        return await self.call(lambda: self._contacts(customer_ids))

    async def _contacts(self, customer_ids: list[str]) -> dict[str, CrmProfile]:
        wanted = {customer_id.casefold(): customer_id for customer_id in customer_ids}
        found: dict[str, CrmProfile] = {}
        for record in await self._query(customer_ids):
            value = record.get(self.field)
            key = _text(value)
            customer_id = wanted.get(key.casefold()) if key is not None else None
            if customer_id is None or customer_id in found:
                continue  # not asked for, or a second Contact with the same id
            found[customer_id] = _profile(record)
        return found

    async def _query(self, customer_ids: list[str]) -> list[dict[str, Any]]:
        """Every record of the query over `customer_ids`, all pages; split in two when
        the query would not fit in Salesforce's URL limit."""
        soql = (
            f"SELECT Id, FirstName, LastName, Account.Name, {self.field} FROM Contact"
            f" WHERE {self.field} IN ({', '.join(soql_string(c) for c in customer_ids)})"
        )
        path = f"/services/data/{API_VERSION}/query?q=" + quote(soql, safe="")
        if len(path) > MAX_URL - 200 and len(customer_ids) > 1:
            half = len(customer_ids) // 2
            return [
                *await self._query(customer_ids[:half]),
                *await self._query(customer_ids[half:]),
            ]
        records: list[dict[str, Any]] = []
        while True:
            page = await self._authorized("GET", path)
            body = page.body
            if not isinstance(body, dict) or not isinstance(body.get("records"), list):
                raise BadAnswer(self.kind, "a query answer without `records`")
            records.extend(r for r in body["records"] if isinstance(r, dict))
            next_url = body.get("nextRecordsUrl")
            if body.get("done") is not False:
                return records
            if not isinstance(next_url, str) or not next_url.startswith("/services/data/"):
                raise BadAnswer(self.kind, "a query answer not done and without nextRecordsUrl")
            path = next_url

    # -- writes ----------------------------------------------------------------------

    async def write_loyalty(self, standings: Mapping[str, LoyaltyStanding]) -> None:
        """Each customer's points and tier on its Contact, one `PATCH` by external id per
        customer (`?updateOnly=true`: a customer with no Contact is skipped, as HubSpot's
        write-back skips it, rather than creating a Contact without a name), at most
        `WRITE_CONCURRENCY` at a time. Never retried here: the write-back's next round
        writes again, and a PATCH of the same values twice is harmless."""
        slots = asyncio.Semaphore(WRITE_CONCURRENCY)

        async def one(customer_id: str, standing: LoyaltyStanding) -> None:
            async with slots:
                await self.call(partial(self.update_contact, customer_id, standing), read=False)

        try:
            async with asyncio.TaskGroup() as group:
                for customer_id, standing in standings.items():
                    group.create_task(one(customer_id, standing))
        except ExceptionGroup as failed:  # the first failure, as itself
            raise failed.exceptions[0] from None

    async def update_contact(self, customer_id: str, standing: LoyaltyStanding) -> bool:
        """One customer's `PATCH`; False when no Contact has that external id (404)."""
        path = (
            f"/services/data/{API_VERSION}/sobjects/Contact/{self.field}/"
            + quote(customer_id, safe="")
            + "?updateOnly=true"
        )
        body = {POINTS_FIELD: standing.points, TIER_FIELD: standing.tier}
        answer = await self._authorized("PATCH", path, body, accept=(200, 201, 204, 404))
        if answer.status == 404 and "external ID field" in _error_message(answer.body):
            raise BadAnswer(self.kind, f"no external ID field {self.field} on Contact (404)")
        return answer.status != 404

    # -- the token -------------------------------------------------------------------

    async def _current(self) -> _Session:
        session = self._session
        if session is not None:
            return session
        async with self._session_lock:
            if self._session is None:
                self._session = await self._fetch_session()
            return self._session

    async def _fetch_session(self) -> _Session:
        status, body = await self._exchange(
            "POST",
            self.base_url + "/services/oauth2/token",
            form={
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self.client_secret,
            },
        )
        if status == 200 and isinstance(body, dict):
            token, instance = body.get("access_token"), body.get("instance_url")
            if isinstance(token, str) and token and isinstance(instance, str):
                # The token goes wherever instance_url says: never from https down to http.
                secure = self.base_url.startswith("https://")
                if not instance.startswith("https://" if secure else ("https://", "http://")):
                    raise BadAnswer(self.kind, "the token answer's instance_url is not a URL")
                return _Session(token, instance.rstrip("/"))
            raise BadAnswer(self.kind, "a token answer without access_token / instance_url")
        if status in (400, 401) and isinstance(body, dict):
            code = body.get("error")
            raise BadCredentials(self.kind, f"token refused ({status} {code})")
        raise self._error(status, body)

    # -- one exchange ------------------------------------------------------------------

    async def _authorized(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        *,
        accept: tuple[int, ...] = (200,),
    ) -> Answer:
        """`method path` with the current token; a 401 gets a new token and one more try."""
        for attempt in (1, 2):
            session = await self._current()
            status, body = await self._exchange(
                method,
                session.instance_url + path,
                json_body=json_body,
                headers={"Authorization": f"Bearer {session.access_token}"},
            )
            if status in accept:
                return Answer(status, body, {})
            if status == 401 and attempt == 1:
                if self._session is session:
                    self._session = None  # expired: the next caller fetches a new one
                continue
            raise self._error(status, body)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _exchange(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        """One HTTP exchange: the status and the JSON body (None when empty). Network
        errors are `BackendUnavailable`, an answer that is not JSON `BadAnswer`."""
        self.calls += 1
        try:
            async with self.session.request(
                method,
                URL(url, encoded=True),
                json=json_body,
                data=form,
                headers=headers,
                allow_redirects=False,
            ) as response:
                status = response.status
                retry_after = response.headers.get("Retry-After")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.content.iter_chunked(65536):
                    size += len(chunk)
                    if size > MAX_BODY:
                        raise BadAnswer(self.kind, f"answer longer than {MAX_BODY} bytes")
                    chunks.append(chunk)
                raw = b"".join(chunks)
        except BackendError:
            raise
        except (aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
            if isinstance(exc, TimeoutError):
                raise BackendTimeout(self.kind, "no answer in time") from None
            raise BackendUnavailable(self.kind, f"unreachable: {type(exc).__name__}") from None
        if status == 429:
            raise BackendThrottled(self.kind, "rate limited (429)", _seconds(retry_after))
        if status >= 500:
            raise BackendUnavailable(self.kind, f"failing ({status})")
        if not raw:
            return status, None
        try:
            return status, json.loads(raw)
        except ValueError:  # UnicodeDecodeError among them
            raise BadAnswer(self.kind, f"an answer ({status}) that is not JSON") from None

    def _error(self, status: int, body: Any) -> BackendError:
        """The error of a refused REST call, from Salesforce's `[{errorCode, message}]`."""
        code = _error_code(body)
        if status == 403 and code == "REQUEST_LIMIT_EXCEEDED":
            return BackendThrottled(self.kind, "the org's API request limit is used up")
        if status in (401, 403):
            return BadCredentials(self.kind, f"refused ({status} {code})")
        return BadAnswer(self.kind, f"unexpected status {status} ({code})")


def _profile(record: Mapping[str, Any]) -> CrmProfile:
    account = record.get("Account")
    return CrmProfile(
        source=SalesforceClient.kind,
        first_name=_text(record.get("FirstName")),
        last_name=_text(record.get("LastName")),
        company=_text(account.get("Name")) if isinstance(account, dict) else None,
    )


def _text(value: Any) -> str | None:
    """A field's value as text; a Number external id (`123.0`) reads as `123`."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str | int | float):
        return str(value)
    return None


def _error_code(body: Any) -> str | None:
    if isinstance(body, list) and body and isinstance(body[0], dict):
        code = body[0].get("errorCode")
        return code if isinstance(code, str) else None
    return None


def _error_message(body: Any) -> str:
    if isinstance(body, list) and body and isinstance(body[0], dict):
        message = body[0].get("message")
        return message if isinstance(message, str) else ""
    return ""


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds < 86400 else None
