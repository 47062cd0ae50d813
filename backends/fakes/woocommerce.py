"""A WooCommerce store's REST API (v3) on a loopback port: `GET /wp-json/wc/v3/orders`
with its `customer`, `per_page`, `page`, `orderby` and `order` parameters, basic auth with
REST API keys, the `X-WP-Total` / `X-WP-TotalPages` / `Link` headers, and WordPress's error
shape `{code, message, data: {status}}` (docs/platforms/woocommerce.md).

Knobs: `latency` (seconds before every answer), `hang` (never answer), `outage` (every
connection dropped unanswered), `fail(status, times)` (the next calls answer `status`),
`throttle(retry_after, times)` (429 with `Retry-After`, as hosts in front of WordPress
send), `malformed` (200 that is not JSON). Calls are counted in `calls` (`orders`,
`no_route`; injected failures under `failed`); the query of each
orders request is in `requests`; `in_flight_peak` is the most orders requests served at once.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_ORDERBY = ("date", "id", "include", "title", "slug")
_REALM = (
    'Basic realm="WooCommerce API. Use a consumer key in the username field and a consumer '
    'secret in the password field."'
)


@dataclass(frozen=True)
class ApiKey:
    consumer_key: str
    consumer_secret: str
    permissions: Literal["read", "write", "read_write"] = "read"


class FakeWooCommerce:
    """One store; `key` is a REST API key with Read access."""

    def __init__(
        self,
        *,
        consumer_key: str = "ck_fake0000000000000000000000000000000000",
        consumer_secret: str = "cs_fake0000000000000000000000000000000000",
    ) -> None:
        self.keys: dict[str, ApiKey] = {}
        self.key = self.add_key(consumer_key, consumer_secret, "read")
        self.orders: list[dict[str, Any]] = []
        self.calls: Counter[str] = Counter()
        self.requests: list[dict[str, str]] = []
        self.base = ""
        self.latency = 0.0
        self.hang = False
        self.outage = False
        self.malformed = False
        self.in_flight = 0
        self.in_flight_peak = 0
        self._failures: list[tuple[int, float | None]] = []

    def add_key(
        self,
        consumer_key: str,
        consumer_secret: str,
        permissions: Literal["read", "write", "read_write"],
    ) -> ApiKey:
        key = ApiKey(consumer_key, consumer_secret, permissions)
        self.keys[consumer_key] = key
        return key

    def add_order(
        self,
        customer_id: int,
        *,
        total: str = "10.00",
        status: str = "completed",
        currency: str = "USD",
        created: datetime | None = None,
        order_id: int | None = None,
    ) -> dict[str, Any]:
        """An order in the shape of the v3 API (`tests/samples/woocommerce_rest/`)."""
        number = order_id or 700 + len(self.orders) + 1
        created = created or datetime(2026, 11, 1, 12, 0, tzinfo=UTC) + timedelta(
            hours=len(self.orders)
        )
        gmt = created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        order: dict[str, Any] = {
            "id": number,
            "parent_id": 0,
            "number": str(number),
            "order_key": f"wc_order_fake{number}",
            "created_via": "checkout",
            "version": "9.4.0",
            "status": status,
            "currency": currency,
            "date_created": gmt,
            "date_created_gmt": gmt,
            "date_modified": gmt,
            "date_modified_gmt": gmt,
            "discount_total": "0.00",
            "discount_tax": "0.00",
            "shipping_total": "0.00",
            "shipping_tax": "0.00",
            "cart_tax": "0.00",
            "total": total,
            "total_tax": "0.00",
            "prices_include_tax": False,
            "customer_id": customer_id,
            "customer_ip_address": "",
            "customer_user_agent": "",
            "customer_note": "",
            "billing": {"first_name": "", "last_name": "", "email": ""},
            "shipping": {"first_name": "", "last_name": ""},
            "payment_method": "bacs",
            "payment_method_title": "Direct Bank Transfer",
            "transaction_id": "",
            "date_paid": gmt,
            "date_paid_gmt": gmt,
            "date_completed": gmt if status == "completed" else None,
            "date_completed_gmt": gmt if status == "completed" else None,
            "cart_hash": "",
            "meta_data": [],
            "line_items": [],
            "tax_lines": [],
            "shipping_lines": [],
            "fee_lines": [],
            "coupon_lines": [],
            "refunds": [],
        }
        self.orders.append(order)
        return order

    # -- knobs -----------------------------------------------------------------------

    def fail(self, status: int, times: int = 1) -> None:
        self._failures.extend([(status, None)] * times)

    def throttle(self, retry_after: float, times: int = 1) -> None:
        self._failures.extend([(429, retry_after)] * times)

    # -- the API ---------------------------------------------------------------------

    def _authenticate(self, request: web.Request) -> web.Response | None:
        """None when the key may read orders; else WooCommerce's refusal."""
        consumer_key = consumer_secret = ""
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                decoded = base64.b64decode(header[6:], validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            consumer_key, _, consumer_secret = decoded.partition(":")
        key = self.keys.get(consumer_key) if consumer_key and consumer_secret else None
        if key is None:
            return _error(401, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")
        if key.consumer_secret != consumer_secret:
            return _error(
                401,
                "woocommerce_rest_authentication_error",
                "Consumer secret is invalid.",
                {"WWW-Authenticate": _REALM},
            )
        if key.permissions not in ("read", "read_write"):
            return _error(
                401,
                "woocommerce_rest_authentication_error",
                "The API key provided does not have read permissions.",
            )
        return None

    async def _orders(self, request: web.Request) -> web.Response:
        self.calls["orders"] += 1
        self.requests.append(dict(request.query))
        refusal = self._authenticate(request)
        if refusal is not None:
            return refusal
        query = request.query
        problems: dict[str, str] = {}
        customer = _integer(query.get("customer"), -1)  # -1: not asked, every customer
        per_page = _integer(query.get("per_page"), 10)
        page = _integer(query.get("page"), 1)
        if customer is None or customer < -1 or query.get("customer") == "-1":
            problems["customer"] = "customer is not of type integer."
        if per_page is None or not 1 <= per_page <= 100:
            problems["per_page"] = "per_page must be between 1 (inclusive) and 100 (inclusive)"
        if page is None or page < 1:
            problems["page"] = "page must be greater than or equal to 1"
        orderby = query.get("orderby", "date")
        if orderby not in _ORDERBY:
            problems["orderby"] = f"orderby is not one of {', '.join(_ORDERBY)}."
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            problems["order"] = "order is not one of asc, desc."
        if problems:
            return web.json_response(
                {
                    "code": "rest_invalid_param",
                    "message": "Invalid parameter(s): " + ", ".join(problems),
                    "data": {"status": 400, "params": problems},
                },
                status=400,
            )
        assert customer is not None and per_page is not None and page is not None
        self.in_flight += 1
        self.in_flight_peak = max(self.in_flight_peak, self.in_flight)
        try:
            await asyncio.sleep(0)  # let concurrent requests overlap, as a PHP pool would
            found = [o for o in self.orders if customer == -1 or o["customer_id"] == customer]
            sort_key = "date_created_gmt" if orderby == "date" else "id"
            found.sort(key=lambda o: (o[sort_key], o["id"]), reverse=order == "desc")
            pages = max(1, math.ceil(len(found) / per_page)) if found else 0
            chunk = found[(page - 1) * per_page : page * per_page]
            headers = {"X-WP-Total": str(len(found)), "X-WP-TotalPages": str(pages)}
            links = []
            url = request.url
            if page < pages:
                links.append(f'<{url.update_query(page=str(page + 1))}>; rel="next"')
            if page > 1:
                links.append(f'<{url.update_query(page=str(page - 1))}>; rel="prev"')
            if links:
                headers["Link"] = ", ".join(links)
            return web.json_response(chunk, headers=headers)
        finally:
            self.in_flight -= 1

    async def _no_route(self, request: web.Request) -> web.Response:
        self.calls["no_route"] += 1
        return _error(
            404, "rest_no_route", "No route was found matching the URL and request method"
        )

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
        if self._failures:
            status, retry_after = self._failures.pop(0)
            self.calls["failed"] += 1
            headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
            return _error(
                status,
                "internal_server_error" if status >= 500 else "rest_throttled",
                "injected failure",
                headers,
            )
        if self.malformed:
            return web.Response(status=200, text='[{"id": 7', content_type="application/json")
        return await handler(request)

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[FakeWooCommerce]:
        app = web.Application(middlewares=[self._knobs])
        app.router.add_get("/wp-json/wc/v3/orders", self._orders)
        app.router.add_route("*", "/{tail:.*}", self._no_route)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            yield self
        finally:
            await runner.cleanup()


def _integer(value: str | None, default: int) -> int | None:
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        return None


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {"code": code, "message": message, "data": {"status": status}},
        status=status,
        headers=headers,
    )
