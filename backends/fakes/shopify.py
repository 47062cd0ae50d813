"""Shopify's Admin GraphQL API on a loopback port, for the subset the store client
reads: `POST /admin/api/<version>/graphql.json` with `X-Shopify-Access-Token`, a real
GraphQL executor over `nodes(ids:)`, `Customer.orders(first, sortKey, reverse)` and
the order's money; `extensions.cost` on every answer, from a leaky bucket
(`maximum`, `restore_rate`), and `THROTTLED` when a query costs more than the bucket
holds; 401 for a wrong token. The knobs of `FakeBackend` make it slow or failing.

    async with FakeShopify(token="shpat_1").serving() as store:
        store.add_order("1001", "#1001", "25.00", created_at="2026-11-01T10:00:00Z")
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiohttp
from aiohttp import web
from graphql import build_schema, graphql

from backends.commerce.shopify import CUSTOMER_GID, MAX_NODES, MAX_QUERY_COST, requested_cost
from backends.fakes.backend import FakeBackend, json_body

SDL = """
interface Node { id: ID! }
enum OrderSortKeys { CREATED_AT ID PROCESSED_AT TOTAL_PRICE }
type MoneyV2 { amount: String! currencyCode: String! }
type MoneyBag { shopMoney: MoneyV2! presentmentMoney: MoneyV2! }
type Order implements Node {
  id: ID!  name: String!  createdAt: String!  displayFinancialStatus: String
  totalPriceSet: MoneyBag!
}
type OrderConnection { nodes: [Order!]! }
type Customer implements Node {
  id: ID!
  orders(first: Int, sortKey: OrderSortKeys, reverse: Boolean): OrderConnection!
}
type QueryRoot { nodes(ids: [ID!]!): [Node]! }
schema { query: QueryRoot }
"""


@dataclass
class FakeOrder:
    id: str
    name: str
    amount: str
    currency: str
    created_at: str
    status: str | None


@dataclass
class Subscription:
    topic: str
    address: str
    secret: str


def _order_problem(order: object) -> str | None:
    """Why a REST order body cannot be created, or None."""
    if not isinstance(order, dict):
        return "order must be an object"
    customer = order.get("customer")
    if not isinstance(customer, dict) or not str(customer.get("id", "")).isdigit():
        return "customer.id must be a numeric customer id"
    items = order.get("line_items")
    if not isinstance(items, list) or not items or len(items) > 250:
        return "line_items must list 1 to 250 items"
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("quantity"), int):
            return "each line item needs a quantity"
        try:
            price = Decimal(str(item.get("price")))
            amounts = [Decimal(str(a["amount"])) for a in item.get("discount_allocations", [])]
        except (ArithmeticError, KeyError, TypeError):
            return "each line item needs a price, and each discount allocation an amount"
        if not price.is_finite() or price < 0 or any(not a.is_finite() or a < 0 for a in amounts):
            return "prices and discounts are amounts of money"
    return None


@dataclass
class Bucket:
    """Shopify's leaky bucket of query cost points."""

    maximum: float = 2000.0
    restore_rate: float = 100.0
    available: float = 2000.0
    at: float = field(default_factory=time.monotonic)

    def drain(self, restore_rate: float | None = None) -> None:
        """Empty now (another app of the store spent it), restoring at `restore_rate`."""
        self.available, self.at = 0.0, time.monotonic()
        if restore_rate is not None:
            self.restore_rate = restore_rate

    def refill(self) -> float:
        now = time.monotonic()
        self.available = min(self.maximum, self.available + (now - self.at) * self.restore_rate)
        self.at = now
        return self.available


class FakeShopify(FakeBackend):
    def __init__(self, token: str = "shpat_fake", api_version: str = "2025-07") -> None:
        super().__init__()
        self.token = token
        self.api_version = api_version
        self.bucket = Bucket()
        self.orders: dict[str, list[FakeOrder]] = {}  # by numeric customer id
        self.subscriptions: list[Subscription] = []
        self.deliveries: list[tuple[str, int]] = []  # (topic, the status it was answered)
        self.shop_domain = "demo-store.myshopify.com"
        self._next = 5001
        self.schema = build_schema(SDL)
        self.schema.get_type("Node").resolve_type = (  # type: ignore[union-attr]
            lambda obj, *_: "Customer" if "orders_of" in obj else "Order"
        )

    def add_customer(self, customer_id: str) -> None:
        self.orders.setdefault(customer_id, [])

    def add_order(
        self,
        customer_id: str,
        name: str,
        amount: str,
        *,
        currency: str = "USD",
        created_at: str = "2026-11-01T10:00:00Z",
        status: str | None = "PAID",
    ) -> str:
        gid = f"gid://shopify/Order/{self._next}"
        self._next += 1
        self.orders.setdefault(customer_id, []).append(
            FakeOrder(gid, name, amount, currency, created_at, status)
        )
        return gid

    def subscribe(self, topic: str, address: str, secret: str) -> None:
        """A webhook subscription of the app whose client secret is `secret`."""
        self.subscriptions.append(Subscription(topic, address, secret))

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(f"/admin/api/{self.api_version}/graphql.json", self.knobs(self._graphql)),
            web.post(f"/admin/api/{self.api_version}/orders.json", self.knobs(self._create_order)),
        ]

    async def _create_order(self, request: web.Request) -> web.Response:
        if request.headers.get("X-Shopify-Access-Token") != self.token:
            return web.json_response(
                {"errors": "[API] Invalid API key or access token"}, status=401
            )
        body = json_body(request)
        given = body.get("order") if isinstance(body, dict) else None
        problem = _order_problem(given)
        if problem is not None or not isinstance(given, dict):
            return web.json_response({"errors": {"order": [problem]}}, status=422)
        order = self._order(given)
        customer_id = str(order["customer"]["id"])
        self.orders.setdefault(customer_id, []).append(
            FakeOrder(
                order["admin_graphql_api_id"],
                order["name"],
                order["total_price"],
                order["currency"],
                order["created_at"],
                "PAID" if order["financial_status"] == "paid" else "PENDING",
            )
        )
        topics = ["orders/create"] + (
            ["orders/paid"] if order["financial_status"] == "paid" else []
        )
        for topic in topics:
            await self._send(topic, order)
        return web.json_response({"order": order}, status=201)

    def _order(self, given: dict[str, Any]) -> dict[str, Any]:
        number = self._next
        self._next += 1
        now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        lines = []
        total = Decimal(0)
        for index, item in enumerate(given["line_items"]):
            allocations = [
                {"amount": str(a["amount"])} for a in item.get("discount_allocations", [])
            ]
            price, quantity = Decimal(str(item["price"])), int(item["quantity"])
            total += price * quantity - sum((Decimal(a["amount"]) for a in allocations), Decimal(0))
            lines.append(
                {
                    "id": number * 100 + index + 1,
                    "title": str(item.get("title") or item.get("sku") or "Item"),
                    "sku": item.get("sku"),
                    "price": f"{price:.2f}",
                    "quantity": quantity,
                    "discount_allocations": allocations,
                    "tax_lines": [],
                }
            )
        return {
            "id": number,
            "admin_graphql_api_id": f"gid://shopify/Order/{number}",
            "name": f"#{number}",
            "created_at": now,
            "processed_at": now,
            "currency": str(given.get("currency") or "USD"),
            "financial_status": str(given.get("financial_status") or "pending"),
            "source_name": str(given.get("source_name") or "web"),
            "taxes_included": False,
            "total_price": f"{total:.2f}",
            "customer": {"id": int(given["customer"]["id"])},
            "line_items": lines,
        }

    async def _send(self, topic: str, order: dict[str, Any]) -> None:
        body = json.dumps(order).encode()
        for subscription in self.subscriptions:
            if subscription.topic != topic:
                continue
            digest = hmac.new(subscription.secret.encode(), body, hashlib.sha256).digest()
            headers = {
                "Content-Type": "application/json",
                "X-Shopify-Topic": topic,
                "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
                "X-Shopify-Shop-Domain": self.shop_domain,
                "X-Shopify-API-Version": self.api_version,
                "X-Shopify-Webhook-Id": str(uuid.uuid4()),
                "X-Shopify-Triggered-At": order["processed_at"],
            }
            timeout = aiohttp.ClientTimeout(total=10)
            try:
                async with (
                    aiohttp.ClientSession(timeout=timeout) as http,
                    http.post(subscription.address, data=body, headers=headers) as answer,
                ):
                    self.deliveries.append((topic, answer.status))
            except (aiohttp.ClientError, TimeoutError):  # Shopify would retry later
                self.deliveries.append((topic, 0))

    async def _graphql(self, request: web.Request) -> web.Response:
        if request.headers.get("X-Shopify-Access-Token") != self.token:
            return web.json_response(
                {
                    "errors": "[API] Invalid API key or access token (unrecognized login or "
                    "wrong password)"
                },
                status=401,
            )
        body = json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return web.json_response({"errors": [{"message": "query is required"}]}, status=400)
        variables = body.get("variables") or {}
        ids = variables.get("ids") or []
        first = int(variables.get("first") or 0)
        cost = requested_cost(len(ids), first)
        available = self.bucket.refill()
        status = {
            "maximumAvailable": self.bucket.maximum,
            "currentlyAvailable": available,
            "restoreRate": self.bucket.restore_rate,
        }
        if len(ids) > MAX_NODES or cost > MAX_QUERY_COST:
            return web.json_response(
                {
                    "errors": [
                        {
                            "message": f"Query cost is {cost}, which exceeds the single query "
                            f"max cost limit ({MAX_QUERY_COST}).",
                            "extensions": {"code": "MAX_COST_EXCEEDED", "cost": cost},
                        }
                    ]
                }
            )
        if cost > available:
            return web.json_response(
                {
                    "errors": [
                        {
                            "message": "Throttled",
                            "extensions": {
                                "code": "THROTTLED",
                                "documentation": "https://shopify.dev/api/usage/rate-limits",
                            },
                        }
                    ],
                    "extensions": {
                        "cost": {
                            "requestedQueryCost": cost,
                            "actualQueryCost": None,
                            "throttleStatus": status,
                        }
                    },
                }
            )
        result = await graphql(
            self.schema,
            body["query"],
            root_value={"nodes": self._nodes},
            variable_values=variables,
        )
        actual = sum(1 + 2 + 3 * len(n["orders_of"]) for n in self._found(ids))
        self.bucket.available -= actual
        answer: dict[str, Any] = {"data": result.data}
        if result.errors:
            answer["errors"] = [{"message": e.message} for e in result.errors]
        status["currentlyAvailable"] = self.bucket.available
        answer["extensions"] = {
            "cost": {
                "requestedQueryCost": cost,
                "actualQueryCost": actual,
                "throttleStatus": status,
            }
        }
        return web.json_response(answer)

    def _found(self, ids: list[str]) -> list[dict[str, Any]]:
        return [node for node in (self._customer(gid) for gid in ids) if node is not None]

    def _customer(self, gid: str) -> dict[str, Any] | None:
        customer_id = gid.removeprefix(CUSTOMER_GID)
        orders = self.orders.get(customer_id) if gid.startswith(CUSTOMER_GID) else None
        if orders is None:
            return None
        return {"id": gid, "orders_of": orders, "orders": self._orders_of(orders)}

    def _nodes(self, info: Any, ids: list[str]) -> list[dict[str, Any] | None]:
        return [self._customer(gid) for gid in ids]

    @staticmethod
    def _orders_of(orders: list[FakeOrder]) -> Any:
        def connection(
            info: Any, first: int | None = None, sortKey: str = "ID", reverse: bool = False
        ) -> dict[str, Any]:
            key = (lambda o: o.created_at) if sortKey == "CREATED_AT" else (lambda o: o.id)
            chosen = sorted(orders, key=key, reverse=reverse)[: first or len(orders)]
            return {
                "nodes": [
                    {
                        "id": o.id,
                        "name": o.name,
                        "createdAt": o.created_at,
                        "displayFinancialStatus": o.status,
                        "totalPriceSet": {
                            "shopMoney": {"amount": o.amount, "currencyCode": o.currency},
                            "presentmentMoney": {"amount": o.amount, "currencyCode": o.currency},
                        },
                    }
                    for o in chosen
                ]
            }

        return connection
