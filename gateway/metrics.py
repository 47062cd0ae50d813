"""Prometheus metrics: requests by operation name, latency, errors by code; WebSocket
connections, active subscriptions, and events published, delivered and dropped;
outgoing webhook attempts, their latency, dead letters and disabled endpoints."""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from strawberry.extensions import SchemaExtension

from events.bus import Hub
from ledger import rules

MAX_OPERATION_LABEL = 64
MAX_OPERATION_NAMES = 500  # operation names are chosen by callers: bound the labels


class Metrics:
    """One registry per app, so several gateways in one process never collide.

    `/metrics` tells how busy the store is and which operations its partners run: with
    `token` set it answers only `Authorization: Bearer <token>`; without, only callers
    on the loopback interface (a scraper beside the process)."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token
        self.names: set[str] = set()
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "loyalty_graphql_requests",
            "GraphQL operations by operation name and type",
            ["operation", "type"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "loyalty_graphql_duration_seconds",
            "Time to answer a GraphQL operation",
            ["type"],
            registry=self.registry,
        )
        self.errors = Counter(
            "loyalty_graphql_errors",
            "Errors returned, by code",
            ["code"],
            registry=self.registry,
        )
        self.connections = Gauge(
            "loyalty_websocket_connections",
            "Open WebSocket connections",
            registry=self.registry,
        )

        self._bound: dict[tuple[str | None, str], tuple[Counter, Histogram]] = {}

        self.webhooks = WebhookMetrics(self.registry)
        self.backends = BackendMetrics(self.registry)

    def watch(self, hub: Hub) -> None:
        """Report the hub's subscriptions and event counts."""
        self.registry.register(_HubCollector(hub))

    def extension(self) -> type[SchemaExtension]:
        metrics = self

        class OperationMetrics(SchemaExtension):
            def on_operation(self) -> Iterator[None]:
                started = time.perf_counter()
                yield
                context = self.execution_context
                try:
                    kind = context.operation_type.value
                except RuntimeError:
                    kind = "unknown"
                metrics.operation(context.operation_name, kind, time.perf_counter() - started)

        return OperationMetrics

    def operation(self, name: str | None, kind: str, seconds: float) -> None:
        """One operation answered (by the executor or a compiled plan), counted by the
        labelled children bound at its first answer (a label lookup takes a lock and
        builds a tuple each time)."""
        children = self._bound.get((name, kind))
        if children is None:
            children = self.requests.labels(self.label(name), kind), self.latency.labels(kind)
            if len(self._bound) < MAX_OPERATION_NAMES * 2:  # names are the callers': bounded
                self._bound[(name, kind)] = children
        children[0].inc()
        children[1].observe(seconds)

    def label(self, operation_name: str | None) -> str:
        name = (operation_name or "anonymous")[:MAX_OPERATION_LABEL]
        if not name.isascii() and rules.text_problem(name):
            return "other"  # a label the exposition could not encode
        if name not in self.names:
            if len(self.names) >= MAX_OPERATION_NAMES:
                return "other"
            self.names.add(name)
        return name

    def allows(self, request: Request) -> bool:
        if self.token:
            sent = request.headers.get("authorization", "")
            return hmac.compare_digest(sent.encode(), f"Bearer {self.token}".encode())
        host = request.client.host if request.client else ""
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    async def endpoint(self, request: Request) -> Response:
        if not self.allows(request):
            headers = {"WWW-Authenticate": 'Bearer realm="metrics"'}
            return Response("metrics need the metrics token", 401, headers=headers)
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class WebhookMetrics:
    """Outgoing webhooks: attempts by outcome, their latency, dead letters, endpoints
    disabled (the dispatcher's `DeliveryObserver`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries = Counter(
            "loyalty_webhook_deliveries",
            "Outgoing webhook attempts by outcome (DELIVERED, RETRYING, DEAD, REFUSED, DISABLED)",
            ["outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "loyalty_webhook_attempt_duration_seconds",
            "Time from sending an outgoing webhook to its answer (or its failure)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.dead_letters = Counter(
            "loyalty_webhook_dead_letters",
            "Outgoing webhook deliveries that ran out of attempts",
            registry=registry,
        )
        self.disabled = Counter(
            "loyalty_webhook_endpoints_disabled",
            "Outgoing webhook endpoints disabled by a 410",
            registry=registry,
        )

    def attempted(self, outcome: str, seconds: float | None) -> None:
        self.deliveries.labels(outcome).inc()
        if seconds is not None:
            self.latency.observe(seconds)
        if outcome == "DEAD":
            self.dead_letters.inc()

    def endpoint_disabled(self) -> None:
        self.disabled.inc()


class BackendMetrics:
    """Calls to the CRMs and stores, by backend and outcome, and their duration
    (retries and waits included): the backends' `CallObserver`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.calls = Counter(
            "loyalty_backend_calls",
            "Calls to a CRM or store by backend and outcome (ok, timeout, throttled, "
            "unavailable, circuit_open, bad_credentials, bad_answer)",
            ["backend", "outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "loyalty_backend_call_duration_seconds",
            "Time a call to a CRM or store took, retries included",
            ["backend"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        )

        self.circuit_open = Gauge(
            "loyalty_backend_circuit_open",
            "1 while a program's circuit to a CRM or store is open or half-open, else 0",
            ["program", "backend"],
            registry=registry,
        )

    def called(
        self, backend: str, outcome: str, seconds: float, *, program: str, circuit: str
    ) -> None:
        self.calls.labels(backend, outcome).inc()
        self.latency.labels(backend).observe(seconds)
        self.circuit_open.labels(program, backend).set(0 if circuit == "closed" else 1)


class _HubCollector(Collector):
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def collect(self) -> Iterable[Metric]:
        stats = self.hub.stats
        yield GaugeMetricFamily(
            "loyalty_subscriptions_active", "Subscriptions being served", stats.subscriptions
        )
        counts = (
            ("published", "Events this process published to the bus", stats.published),
            ("delivered", "Events handed to subscribers", stats.delivered),
            ("dropped", "Events dropped for subscribers too slow", stats.dropped),
        )
        for name, text, value in counts:
            yield CounterMetricFamily(f"loyalty_events_{name}", text, value)
