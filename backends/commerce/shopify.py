"""Shopify: customers' newest orders from the Admin GraphQL API,
`POST /admin/api/<version>/graphql.json` with `X-Shopify-Access-Token`, many customers
in one `nodes(ids:)` query.

A member's customerId is the Shopify customer's numeric id; its global id is
`gid://shopify/Customer/<customerId>`. `nodes` answers in the order of `ids`, null for
an id that names no customer. Shopify limits by calculated query cost (reported in
`extensions.cost`): a query over the single-query maximum is refused, so a batch holds
at most as many customers as keep its requested cost under `MAX_QUERY_COST`; a throttled
query (`THROTTLED`) is retried after the time its cost takes to restore, when that fits
in the deadline, else the store is unavailable for now.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from backends.commerce.base import CommerceClient, StoreOrder
from backends.errors import BackendThrottled, BadAnswer, BadCredentials

CUSTOMER_GID = "gid://shopify/Customer/"
MAX_NODES = 250  # ids one `nodes` query may carry
MAX_QUERY_COST = 1000  # the largest requested cost of one query

ORDERS_QUERY = """query CustomerOrders($ids: [ID!]!, $first: Int!) {
  nodes(ids: $ids) {
    ... on Customer {
      id
      orders(first: $first, sortKey: CREATED_AT, reverse: true) {
        nodes {
          id
          name
          createdAt
          displayFinancialStatus
          totalPriceSet { shopMoney { amount currencyCode } }
        }
      }
    }
  }
}"""


def requested_cost(customers: int, first: int) -> int:
    """The cost Shopify calculates for `ORDERS_QUERY`: per customer, the Customer (1),
    its orders connection (2 + first) and each order's MoneyBag and MoneyV2 (2 each)."""
    return customers * (1 + 2 + first + 2 * first)


class ShopifyClient(CommerceClient):
    kind: ClassVar[str] = "shopify"
    max_batch: ClassVar[int] = MAX_NODES

    @property
    def path(self) -> str:
        return f"/admin/api/{self.config.api_version}/graphql.json"

    def batch_size(self, first: int) -> int:
        return max(1, min(MAX_NODES, MAX_QUERY_COST // requested_cost(1, first)))

    async def fetch_orders(
        self, customer_ids: list[str], first: int
    ) -> Mapping[str, list[StoreOrder]]:
        # Only a numeric id can name a Shopify customer: another is no customer there.
        ids = [c for c in customer_ids if c.isascii() and c.isdigit() and len(c) <= 20]
        if not ids:
            return {}
        body = {
            "query": ORDERS_QUERY,
            "variables": {"ids": [CUSTOMER_GID + c for c in ids], "first": first},
        }
        headers = {"X-Shopify-Access-Token": self.config.token or ""}

        async def attempt() -> dict[str, list[StoreOrder]]:
            answer = await self.send("POST", self.path, json_body=body, headers=headers)
            return self._orders(answer.body, ids)

        return await self.call(attempt)

    def _orders(self, body: Any, ids: list[str]) -> dict[str, list[StoreOrder]]:
        if not isinstance(body, dict):
            raise BadAnswer(self.kind, "the answer is not a GraphQL result")
        errors = body.get("errors")
        if errors:
            self._raise_for(errors, body.get("extensions"))
        data = body.get("data")
        nodes = data.get("nodes") if isinstance(data, dict) else None
        if not isinstance(nodes, list) or len(nodes) != len(ids):
            raise BadAnswer(self.kind, "nodes do not answer the ids asked for")
        found: dict[str, list[StoreOrder]] = {}
        for customer_id, node in zip(ids, nodes, strict=True):
            if node is None:
                continue  # no such customer
            if not isinstance(node, dict) or node.get("id") != CUSTOMER_GID + customer_id:
                raise BadAnswer(self.kind, "a node that is not the customer asked for")
            orders = (node.get("orders") or {}).get("nodes")
            if not isinstance(orders, list):
                raise BadAnswer(self.kind, "a customer without orders.nodes")
            found[customer_id] = [self._order(order) for order in orders]
        return found

    def _order(self, order: Any) -> StoreOrder:
        try:
            money = order["totalPriceSet"]["shopMoney"]
            return StoreOrder(
                id=str(order["id"]),
                name=order.get("name"),
                total=Decimal(money["amount"]),
                currency=str(money["currencyCode"]),
                created_at=datetime.fromisoformat(order["createdAt"]),
                status=order.get("displayFinancialStatus"),
            )
        except (KeyError, TypeError, ValueError, InvalidOperation):
            raise BadAnswer(self.kind, "an order without id, total or createdAt") from None

    def _raise_for(self, errors: Any, extensions: Any) -> None:
        if not isinstance(errors, list):  # `{"errors": "[API] Invalid API key ..."}`
            raise BadCredentials(self.kind, "access token refused")
        codes = {
            (e.get("extensions") or {}).get("code") if isinstance(e, dict) else None for e in errors
        }
        if "THROTTLED" in codes:
            raise BackendThrottled(self.kind, "query cost throttled", _restore_time(extensions))
        if "ACCESS_DENIED" in codes:
            raise BadCredentials(self.kind, "access denied (scope read_orders needed)")
        raise BadAnswer(self.kind, f"GraphQL errors: {sorted(map(str, codes))}")


def _restore_time(extensions: Any) -> float | None:
    """Seconds until the bucket holds the query's requested cost again."""
    try:
        cost = extensions["cost"]
        status = cost["throttleStatus"]
        missing = float(cost["requestedQueryCost"]) - float(status["currentlyAvailable"])
        return max(0.0, missing / float(status["restoreRate"]))
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
