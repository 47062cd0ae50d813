"""WooCommerce as the store (`[commerce] kind = "woocommerce"`): a member's newest orders
from the REST API v3 (docs/platforms/woocommerce.md).

    [commerce]
    kind = "woocommerce"
    base_url = "https://shop.example"   # the WordPress site; https: keys travel as basic auth
    consumer_key = "ck_..."             # a REST API key with Read access
    consumer_secret = "cs_..."

WooCommerce has no call that takes several customers: `customer` filters by one integer.
So a batch of members is one `GET /wp-json/wc/v3/orders?customer=<id>&per_page=<first>
&orderby=date&order=desc` per member, sent concurrently, at most `[commerce]
max_concurrency` (default 8, at most 20: the session's connection pool) at a time per store
(a WordPress site is a PHP pool, not a CDN), and R4 counts one call per member.
`per_page = first` (at most 100, WordPress's cap), so one page always answers.
A `customerId` that is not a positive integer cannot own WooCommerce orders: it is
answered "no such customer" without a call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any, ClassVar

import aiohttp

from backends.client import Breakers
from backends.commerce.base import CommerceClient, StoreOrder
from backends.errors import BadAnswer
from ledger.program_sections import BackendSection, Commerce

ORDERS_PATH = "/wp-json/wc/v3/orders"


class WooCommerceClient(CommerceClient):
    """Orders of one WooCommerce store, one request per customer."""

    kind: ClassVar[str] = "woocommerce"
    max_orders: ClassVar[int] = 100  # WordPress caps per_page at 100

    def __init__(
        self,
        program_id: str,
        config: BackendSection,
        session: aiohttp.ClientSession,
        breakers: Breakers,
    ) -> None:
        super().__init__(program_id, config, session, breakers)
        if (
            not isinstance(config, Commerce)
            or not config.consumer_key
            or not config.consumer_secret
        ):
            raise ValueError("a woocommerce store needs `consumer_key` and `consumer_secret`")
        self.authorization = aiohttp.encode_basic_auth(config.consumer_key, config.consumer_secret)
        self._slots = asyncio.Semaphore(config.max_concurrency)

    def batch_size(self, first: int) -> int:
        return 1  # one customer per request: the API filters by one customer only

    async def fetch_orders(
        self, customer_ids: list[str], first: int
    ) -> Mapping[str, list[StoreOrder]]:
        found: dict[str, list[StoreOrder]] = {}
        for customer_id in customer_ids:
            if not _is_woocommerce_id(customer_id):
                continue  # not a WooCommerce customer id: no such customer
            async with self._slots:
                found[customer_id] = await self.call(partial(self._orders_of, customer_id, first))
        return found

    async def _orders_of(self, customer_id: str, first: int) -> list[StoreOrder]:
        answer = await self.send(
            "GET",
            ORDERS_PATH,
            params={
                "customer": customer_id,
                "per_page": str(first),
                "orderby": "date",
                "order": "desc",
            },
            headers={"Authorization": self.authorization},
        )
        if not isinstance(answer.body, list):
            raise BadAnswer(self.kind, "an orders answer that is not a list")
        return [self._order(item) for item in answer.body[:first]]

    def _order(self, item: Any) -> StoreOrder:
        if not isinstance(item, dict):
            raise BadAnswer(self.kind, "an order that is not an object")
        try:
            order_id, total = item["id"], Decimal(str(item["total"]))
            created = datetime.fromisoformat(item["date_created_gmt"])
            currency = item["currency"]
        except (KeyError, TypeError, ValueError, InvalidOperation):
            raise BadAnswer(self.kind, "an order without id, total, currency or date") from None
        if not isinstance(order_id, int) or not isinstance(currency, str) or not total.is_finite():
            raise BadAnswer(self.kind, "an order with a malformed id, total or currency")
        number, status = item.get("number"), item.get("status")
        return StoreOrder(
            id=str(order_id),
            name=f"#{number}" if isinstance(number, str) and number else None,
            total=total,
            currency=currency,
            created_at=created.replace(tzinfo=UTC) if created.tzinfo is None else created,
            status=status if isinstance(status, str) else None,
        )


def _is_woocommerce_id(customer_id: str) -> bool:
    """A WordPress user id as WooCommerce writes it: a positive integer, no leading zero
    (`007` is not customer 7, who may be another member)."""
    return (
        customer_id.isascii()
        and customer_id.isdigit()
        and not customer_id.startswith("0")
        and len(customer_id) <= 19  # a MySQL BIGINT
    )
