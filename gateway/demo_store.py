"""The store's side of the demo: what a shop's own servers do around the storefront at
`/demo/` (served in `demo` only, never by `serve`).

- `POST /demo/api/sign-in` `{"email"}`: the store's sign-in, played by the demo's
  identity provider: a seeded shopper gets a short-lived member token (in the answer's
  body only, never in a URL, never logged).
- `POST /demo/api/checkouts` `{"lines": [{"sku", "quantity"}]}`: a checkout of the
  store's catalog, priced by the store (never by the browser), bound to the shopper.
- `POST /demo/api/checkouts/{id}/points` `{"use": true|false}`: "use my points": the
  store holds the shopper's points for the checkout (`holdPoints`, as much as the
  available balance covers of the subtotal) or releases them (`releasePoints`). The
  store places the hold, not the browser, because the store applies the discount to the
  order it charges, and its partner token may capture only a hold it placed itself for
  that checkout.
- `POST /demo/api/checkouts/{id}/pay`: the payment went through: the hold is captured
  (`capturePoints`) and the order created, paid, in the store (the fake Shopify's REST
  Admin API), which sends its signed `orders/paid` webhook to
  `/webhooks/<program>/shopify`; the points of the order come from that webhook.
- `POST /demo/api/store-orders`: "the store got paid": an order of the shopper paid at
  the shop's till, reported by the same signed webhook, while the storefront watches.

Each call but the sign-in carries the shopper's member token (`Authorization: Bearer`),
checked as the gateway checks it; the store talks to the gateway as any store backend
would: the public GraphQL API over HTTP with a partner token from `/oauth/token`.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import aiohttp
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from auth.members import IdentityProviderUnavailable
from auth.principals import Shopper
from auth.server import ClientCredentials
from auth.tokens import InvalidToken
from backends.fakes.identity import FakeIdentityProvider
from backends.fakes.shopify import FakeShopify
from gateway import pages

log = logging.getLogger("loyalty.demo")

MEMBER_TOKEN_LIFETIME = timedelta(minutes=30)
MAX_BODY = 4096
MAX_CHECKOUTS = 1000
MAX_QUANTITY = 10
# The store's catalog: sku → (title, unit price).
CATALOG: dict[str, tuple[str, Decimal]] = {
    "SNEAKER-CANVAS": ("Canvas sneakers", Decimal("80.00")),
    "SOCKS-WOOL": ("Wool socks, 2 pairs", Decimal("12.50")),
    "CAP-CORD": ("Corduroy cap", Decimal("24.00")),
}
TILL_ORDER = (("BELT-LEATHER", "Leather belt", Decimal("45.00"), 1),)

MEMBER = "query($c: String!) { member(ref: {customerId: $c}) { points { available } } }"
HOLD = """mutation($key: String!, $c: String!, $points: Int!, $order: String!) {
  holdPoints(input: {idempotencyKey: $key, member: {customerId: $c}, points: $points,
    orderId: $order}) { hold { id points discount status } userErrors { code message } } }"""
RELEASE = """mutation($key: String!, $hold: ID!) {
  releasePoints(input: {idempotencyKey: $key, holdId: $hold}) {
    hold { id status } userErrors { code message } } }"""
CAPTURE = """mutation($key: String!, $hold: ID!) {
  capturePoints(input: {idempotencyKey: $key, holdId: $hold}) {
    hold { id points discount status } userErrors { code message } } }"""


class StoreError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Checkout:
    id: str
    customer_id: str
    lines: list[tuple[str, str, Decimal, int]]  # sku, title, unit price, quantity
    hold_id: str | None = None
    points: int = 0
    discount: Decimal = Decimal(0)
    paid: bool = False
    order: dict[str, Any] | None = None

    @property
    def subtotal(self) -> Decimal:
        return sum((price * quantity for _, _, price, quantity in self.lines), Decimal(0))

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "lines": [
                {"sku": sku, "title": title, "unitPrice": f"{price:.2f}", "quantity": quantity}
                for sku, title, price, quantity in self.lines
            ],
            "subtotal": f"{self.subtotal:.2f}",
            "points": self.points,
            "discount": f"{self.discount:.2f}",
            "total": f"{self.subtotal - self.discount:.2f}",
            "paid": self.paid,
            "order": self.order,
        }


@dataclass
class DemoStore:
    """The store's backend; `gateway`, `program_id`, `point_value` and `credentials` are
    set once the gateway is up (`connect`)."""

    identity: FakeIdentityProvider
    shop: FakeShopify
    shoppers: Mapping[str, str]  # email → customer id
    gateway: str = ""
    program_id: str = ""
    point_value: Decimal = Decimal("0.01")
    credentials: ClientCredentials | None = None
    checkouts: OrderedDict[str, Checkout] = field(default_factory=OrderedDict)
    _token: tuple[str, float] | None = None

    def connect(
        self, gateway: str, program_id: str, point_value: Decimal, credentials: ClientCredentials
    ) -> None:
        self.gateway, self.program_id = gateway, program_id
        self.point_value, self.credentials = point_value, credentials

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/demo/", pages.page("demo.html"), methods=["GET", "HEAD"]),
            Route("/demo/api/sign-in", self.sign_in, methods=["POST"]),
            Route("/demo/api/checkouts", self.create_checkout, methods=["POST"]),
            Route("/demo/api/checkouts/{id}/points", self.use_points, methods=["POST"]),
            Route("/demo/api/checkouts/{id}/pay", self.pay, methods=["POST"]),
            Route("/demo/api/store-orders", self.till_order, methods=["POST"]),
        ]

    # -- the endpoints ------------------------------------------------------------------

    async def sign_in(self, request: Request) -> Response:
        async def act() -> dict[str, Any]:
            body = await _body(request)
            email = body.get("email")
            customer_id = (
                self.shoppers.get(email.strip().lower()) if isinstance(email, str) else None
            )
            if customer_id is None:
                raise StoreError(401, "UNKNOWN_SHOPPER", "no shopper signs in with that email")
            lifetime = MEMBER_TOKEN_LIFETIME
            token = self.identity.token(customer_id, lifetime=lifetime)
            return {"token": token, "expiresIn": int(lifetime.total_seconds())}

        return await _answer(act)

    async def create_checkout(self, request: Request) -> Response:
        async def act() -> dict[str, Any]:
            shopper = await self._shopper(request)
            body = await _body(request)
            lines = _lines(body.get("lines"))
            checkout = Checkout(f"chk_{secrets.token_urlsafe(12)}", shopper.customer_id, lines)
            self.checkouts[checkout.id] = checkout
            while len(self.checkouts) > MAX_CHECKOUTS:
                self.checkouts.popitem(last=False)
            return checkout.public()

        return await _answer(act, 201)

    async def use_points(self, request: Request) -> Response:
        async def act() -> dict[str, Any]:
            checkout = await self._checkout(request)
            use = (await _body(request)).get("use")
            if not isinstance(use, bool):
                raise StoreError(400, "BAD_REQUEST", "use must be true or false")
            if use and checkout.hold_id is None:
                await self._hold(checkout)
            elif not use and checkout.hold_id is not None:
                await self._release(checkout)
            return checkout.public()

        return await _answer(act)

    async def pay(self, request: Request) -> Response:
        async def act() -> dict[str, Any]:
            checkout = await self._checkout(request)
            if checkout.hold_id is not None:
                data = await self._graphql(
                    CAPTURE, {"key": f"capture-{checkout.id}", "hold": checkout.hold_id}
                )
                _no_user_errors(data["capturePoints"])
            checkout.order = await self._create_order(checkout.customer_id, checkout, "web")
            checkout.paid = True
            return checkout.public()

        return await _answer(act)

    async def till_order(self, request: Request) -> Response:
        async def act() -> dict[str, Any]:
            shopper = await self._shopper(request)
            lines = [(sku, title, price, qty) for sku, title, price, qty in TILL_ORDER]
            checkout = Checkout(f"till_{secrets.token_urlsafe(8)}", shopper.customer_id, lines)
            return {"order": await self._create_order(shopper.customer_id, checkout, "pos")}

        return await _answer(act, 201)

    # -- the store's work ---------------------------------------------------------------

    async def _shopper(self, request: Request) -> Shopper:
        header = request.headers.get("authorization")
        try:
            principal = await request.app.state.authenticator.principal(header)
        except InvalidToken:
            raise StoreError(401, "UNAUTHENTICATED", "sign in again") from None
        except IdentityProviderUnavailable:
            raise StoreError(503, "BACKEND_UNAVAILABLE", "sign-in is unavailable") from None
        if not isinstance(principal, Shopper) or principal.program_id != self.program_id:
            raise StoreError(401, "UNAUTHENTICATED", "a shopper's token is required")
        return principal

    async def _checkout(self, request: Request) -> Checkout:
        shopper = await self._shopper(request)
        checkout = self.checkouts.get(request.path_params["id"])
        if checkout is None or checkout.customer_id != shopper.customer_id:
            raise StoreError(404, "NOT_FOUND", "no such checkout")
        if checkout.paid:
            raise StoreError(409, "ALREADY_PAID", "this checkout is paid")
        return checkout

    async def _hold(self, checkout: Checkout) -> None:
        data = await self._graphql(MEMBER, {"c": checkout.customer_id})
        available = int(data["member"]["points"]["available"])
        covered = int((checkout.subtotal / self.point_value).to_integral_value(ROUND_FLOOR))
        points = min(available, covered)
        if points <= 0:
            raise StoreError(409, "INSUFFICIENT_POINTS", "no points to use")
        data = await self._graphql(
            HOLD,
            {
                "key": f"hold-{checkout.id}-{secrets.token_hex(4)}",
                "c": checkout.customer_id,
                "points": points,
                "order": checkout.id,
            },
        )
        hold = _no_user_errors(data["holdPoints"])["hold"]
        checkout.hold_id, checkout.points = str(hold["id"]), int(hold["points"])
        checkout.discount = Decimal(hold["discount"])

    async def _release(self, checkout: Checkout) -> None:
        assert checkout.hold_id is not None
        key = f"release-{checkout.hold_id}"
        data = await self._graphql(RELEASE, {"key": key, "hold": checkout.hold_id})
        _no_user_errors(data["releasePoints"])
        checkout.hold_id, checkout.points, checkout.discount = None, 0, Decimal(0)

    async def _create_order(
        self, customer_id: str, checkout: Checkout, source: str
    ) -> dict[str, Any]:
        """The order, paid, in the store; the store sends its webhooks before answering."""
        allocations = _allocate(checkout.discount, checkout.lines)
        order = {
            "customer": {"id": int(customer_id)},
            "currency": "USD",
            "financial_status": "paid",
            "source_name": source,
            "line_items": [
                {
                    "sku": sku,
                    "title": title,
                    "price": f"{price:.2f}",
                    "quantity": quantity,
                    "discount_allocations": [{"amount": f"{share:.2f}"}] if share else [],
                }
                for (sku, title, price, quantity), share in zip(
                    checkout.lines, allocations, strict=True
                )
            ],
        }
        url = f"{self.shop.base}/admin/api/{self.shop.api_version}/orders.json"
        headers = {"X-Shopify-Access-Token": self.shop.token}
        async with (
            _session() as http,
            http.post(url, json={"order": order}, headers=headers) as answer,
        ):
            if answer.status != 201:
                raise StoreError(502, "STORE_UNAVAILABLE", "the store did not take the order")
            created: dict[str, Any] = (await answer.json())["order"]
        return {"id": str(created["id"]), "name": created["name"], "total": created["total_price"]}

    async def _graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        token = await self._partner_token()
        async with (
            _session() as http,
            http.post(
                self.gateway + "/graphql",
                json={"query": query, "variables": variables},
                headers={"Authorization": f"Bearer {token}"},
            ) as answer,
        ):
            body = await answer.json()
        if body.get("errors") or not body.get("data"):
            log.warning("demo store: the gateway answered %s", answer.status)
            raise StoreError(502, "GATEWAY_ERROR", "the loyalty gateway refused the request")
        data: dict[str, Any] = body["data"]
        return data

    async def _partner_token(self) -> str:
        if self._token is not None and self._token[1] > time.monotonic() + 60:
            return self._token[0]
        assert self.credentials is not None, "connect() first"
        form = {
            "grant_type": "client_credentials",
            "client_id": self.credentials.client_id,
            "client_secret": self.credentials.client_secret,
        }
        async with _session() as http, http.post(self.gateway + "/oauth/token", data=form) as r:
            if r.status != 200:
                raise StoreError(502, "GATEWAY_ERROR", "the store could not sign in to loyalty")
            granted = await r.json()
        self._token = (str(granted["access_token"]), time.monotonic() + granted["expires_in"])
        return self._token[0]


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))


async def _answer(act: Any, status: int = 200) -> Response:
    try:
        result = await act()
    except StoreError as refused:
        body = {"error": refused.code, "message": refused.message}
        return JSONResponse(body, status_code=refused.status, headers={"Cache-Control": "no-store"})
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("demo store: a backend did not answer: %r", exc)
        body = {"error": "STORE_UNAVAILABLE", "message": "try again"}
        return JSONResponse(body, status_code=502, headers={"Cache-Control": "no-store"})
    return JSONResponse(result, status_code=status, headers={"Cache-Control": "no-store"})


async def _body(request: Request) -> dict[str, Any]:
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise StoreError(413, "PAYLOAD_TOO_LARGE", f"body over {MAX_BODY} bytes")
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise StoreError(400, "BAD_REQUEST", "the body must be JSON") from None
    if not isinstance(body, dict):
        raise StoreError(400, "BAD_REQUEST", "the body must be a JSON object")
    return body


def _lines(given: object) -> list[tuple[str, str, Decimal, int]]:
    if not isinstance(given, list) or not 1 <= len(given) <= len(CATALOG):
        raise StoreError(400, "BAD_REQUEST", f"lines must list 1 to {len(CATALOG)} items")
    lines = []
    for item in given:
        sku = item.get("sku") if isinstance(item, dict) else None
        quantity = item.get("quantity") if isinstance(item, dict) else None
        if not isinstance(sku, str) or sku not in CATALOG:
            raise StoreError(400, "UNKNOWN_PRODUCT", "a line names no product of the store")
        if isinstance(quantity, bool) or not isinstance(quantity, int):
            raise StoreError(400, "BAD_REQUEST", "quantity must be a whole number")
        if not 1 <= quantity <= MAX_QUANTITY:
            raise StoreError(400, "BAD_REQUEST", f"quantity must be 1 to {MAX_QUANTITY}")
        title, price = CATALOG[sku]
        lines.append((sku, title, price, quantity))
    return lines


def _allocate(discount: Decimal, lines: list[tuple[str, str, Decimal, int]]) -> list[Decimal]:
    """The discount spread over the lines in proportion to their amounts, to the cent,
    the last line taking what rounding left (as Shopify allocates an order discount)."""
    amounts = [price * quantity for _, _, price, quantity in lines]
    total = sum(amounts, Decimal(0))
    if not discount or not total:
        return [Decimal(0)] * len(lines)
    shares = [(discount * a / total).quantize(Decimal("0.01"), ROUND_FLOOR) for a in amounts[:-1]]
    return [*shares, discount - sum(shares, Decimal(0))]


def _no_user_errors(payload: dict[str, Any]) -> dict[str, Any]:
    errors = payload.get("userErrors") or []
    if errors:
        raise StoreError(409, str(errors[0]["code"]), str(errors[0]["message"]))
    return payload
