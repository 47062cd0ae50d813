"""HubSpot's contacts batch read on a loopback port, as the real API speaks it:
`POST /crm/v3/objects/contacts/batch/read` with a Bearer token, `idProperty`, at most
100 `inputs`, the `properties` asked for; 200 when every id is found, 207 with
`OBJECT_NOT_FOUND` errors when some are not, 401 for a wrong token, 400 for a batch
over the limit. The knobs of `FakeBackend` make it slow or failing.

    async with FakeHubSpot(token="pat-1").serving() as crm:
        crm.add("cust-1", firstname="Ada", lastname="Lovelace", lifecyclestage="customer")
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from backends.fakes.backend import FakeBackend, json_body

MAX_INPUTS = 100


class FakeHubSpot(FakeBackend):
    def __init__(self, token: str = "pat-na1-fake", id_property: str = "customer_id") -> None:
        super().__init__()
        self.token = token
        self.id_property = id_property
        self.contacts: dict[str, dict[str, str | None]] = {}  # by customer id
        self._ids = itertools.count(501)

    def add(self, customer_id: str, **properties: str | None) -> None:
        """A contact whose `id_property` is `customer_id`."""
        self.contacts[customer_id] = {
            "hs_object_id": str(next(self._ids)),
            self.id_property: customer_id,
            **properties,
        }

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/crm/v3/objects/contacts/batch/read", self.knobs(self._batch_read)),
            web.post("/crm/v3/objects/contacts/batch/update", self.knobs(self._batch_update)),
        ]

    @property
    def updates(self) -> list[Any]:
        """The bodies of the batch updates received."""
        return [r for r in self.requests if isinstance(r, dict) and "idProperty" not in r]

    async def _batch_update(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _error(401, "INVALID_AUTHENTICATION", "Authentication credentials not found.")
        body = json_body(request)
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or len(inputs) > MAX_INPUTS:
            return _error(400, "VALIDATION_ERROR", "Invalid input JSON: inputs")
        results, missing = [], []
        for item in inputs:
            id_property = item.get("idProperty") or "hs_object_id"
            contact = next(
                (c for c in self.contacts.values() if c.get(id_property) == item.get("id")), None
            )
            if contact is None:
                missing.append(item.get("id"))
                continue
            contact.update(item.get("properties") or {})
            results.append({"id": contact["hs_object_id"], "properties": dict(contact)})
        answer: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": _now(),
            "completedAt": _now(),
        }
        if not missing:
            return web.json_response(answer)
        answer["numErrors"] = 1
        answer["errors"] = [
            {"status": "error", "category": "OBJECT_NOT_FOUND", "context": {"ids": missing}}
        ]
        return web.json_response(answer, status=207)

    async def _batch_read(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _error(
                401,
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 "
                "authentication and you can find more details at "
                "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            )
        body = json_body(request)
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or not all(
            isinstance(i, dict) and isinstance(i.get("id"), str) for i in inputs
        ):
            return _error(400, "VALIDATION_ERROR", "Invalid input JSON: inputs")
        if len(inputs) > MAX_INPUTS:
            return _error(400, "VALIDATION_ERROR", f"Batch input limit is {MAX_INPUTS}")
        id_property = body.get("idProperty") or "hs_object_id"
        wanted = [p for p in body.get("properties") or [] if isinstance(p, str)]
        started = _now()
        results: list[dict[str, Any]] = []
        missing: list[str] = []
        for value in dict.fromkeys(i["id"] for i in inputs):
            contact = next((c for c in self.contacts.values() if c.get(id_property) == value), None)
            if contact is None:
                missing.append(value)
                continue
            properties = {"hs_object_id": contact["hs_object_id"]}
            properties.update({name: contact.get(name) for name in wanted})
            results.append(
                {
                    "id": contact["hs_object_id"],
                    "properties": properties,
                    "createdAt": "2025-01-15T09:30:00.000Z",
                    "updatedAt": "2026-11-02T16:05:12.118Z",
                    "archived": False,
                }
            )
        answer: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": _now(),
        }
        if not missing:
            return web.json_response(answer)
        answer["numErrors"] = 1
        answer["errors"] = [
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": "Could not get some CONTACT objects, they may be deleted or not exist. "
                "Check that ids are valid.",
                "context": {"ids": missing},
            }
        ]
        return web.json_response(answer, status=207)


def _error(status: int, category: str, message: str) -> web.Response:
    return web.json_response(
        {
            "status": "error",
            "message": message,
            "correlationId": str(uuid.uuid4()),
            "category": category,
        },
        status=status,
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
