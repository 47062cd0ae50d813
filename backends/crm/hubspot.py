"""HubSpot contacts: `POST /crm/v3/objects/contacts/batch/read`, looked up by the
contact property that holds the customer id (`[crm] customer_id_property`, HubSpot's
`idProperty`: a unique-value property), up to 100 ids a call, with a private app's
Bearer token.

HubSpot answers 200 when every id was found, and 207 (multi-status) with `errors`
(category `OBJECT_NOT_FOUND`, the ids in `context.ids`) when some were not: those
customers have no profile, the others do.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from backends.crm.base import CrmClient, CrmProfile, LoyaltyStanding
from backends.errors import BadAnswer

log = logging.getLogger("loyalty.backends")

BATCH_READ = "/crm/v3/objects/contacts/batch/read"
BATCH_UPDATE = "/crm/v3/objects/contacts/batch/update"
PROPERTIES = ("firstname", "lastname", "lifecyclestage", "company")
NOT_FOUND = "OBJECT_NOT_FOUND"


class HubSpotClient(CrmClient):
    kind: ClassVar[str] = "hubspot"
    max_batch: ClassVar[int] = 100  # HubSpot's limit of inputs per batch read / update
    writes_back: ClassVar[bool] = True

    async def write_loyalty(self, standings: Mapping[str, LoyaltyStanding]) -> None:
        """`batch/update` by the customer id property, 100 contacts a call; a customer
        with no contact (a 207's OBJECT_NOT_FOUND) is skipped."""
        items = list(standings.items())
        headers = {"Authorization": f"Bearer {self.config.token}"}
        for start in range(0, len(items), self.max_batch):
            chunk = items[start : start + self.max_batch]
            body = {
                "inputs": [
                    {
                        "id": customer_id,
                        "idProperty": self.config.customer_id_property,
                        "properties": {
                            "loyalty_points": str(standing.points),
                            "loyalty_tier": standing.tier,
                        },
                    }
                    for customer_id, standing in chunk
                ]
            }

            async def attempt(body: dict[str, Any] = body) -> None:
                await self.send(
                    "POST", BATCH_UPDATE, json_body=body, headers=headers, accept=(200, 207)
                )

            await self.call(attempt, read=False)

    async def fetch_profiles(self, customer_ids: list[str]) -> Mapping[str, CrmProfile]:
        id_property = self.config.customer_id_property
        body = {
            "idProperty": id_property,
            "inputs": [{"id": customer_id} for customer_id in customer_ids],
            "properties": [*PROPERTIES, id_property],
            "propertiesWithHistory": [],
        }
        headers = {"Authorization": f"Bearer {self.config.token}"}

        async def attempt() -> dict[str, CrmProfile]:
            answer = await self.send(
                "POST", BATCH_READ, json_body=body, headers=headers, accept=(200, 207)
            )
            return self._profiles(answer.body, id_property, set(customer_ids))

        return await self.call(attempt)

    def _profiles(self, body: Any, id_property: str, asked: set[str]) -> dict[str, CrmProfile]:
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list):
            raise BadAnswer(self.kind, "batch read answer without `results`")
        found: dict[str, CrmProfile] = {}
        for contact in results:
            properties = contact.get("properties") if isinstance(contact, dict) else None
            if not isinstance(properties, dict):
                raise BadAnswer(self.kind, "a contact without `properties`")
            customer_id = properties.get(id_property)
            if customer_id not in asked:  # not one we asked for: never shown for another
                continue
            found[customer_id] = CrmProfile(
                source=self.kind,
                first_name=_text(properties.get("firstname")),
                last_name=_text(properties.get("lastname")),
                lifecycle_stage=_text(properties.get("lifecyclestage")),
                company=_text(properties.get("company")),
            )
        errors = body.get("errors") or []
        if not isinstance(errors, list):
            raise BadAnswer(self.kind, "batch read `errors` is not a list")
        for error in errors:
            if not isinstance(error, dict) or error.get("category") != NOT_FOUND:
                log.warning("hubspot batch read error: %s", _category(error))
        return found


def _text(value: Any) -> str | None:
    """HubSpot sends unset properties as null or an empty string: both are unknown."""
    return value if isinstance(value, str) and value else None


def _category(error: Any) -> str:
    category = error.get("category") if isinstance(error, dict) else None
    return str(category)[:100]
