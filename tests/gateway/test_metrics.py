"""/metrics: Prometheus text with requests by operation name, latency and errors by code."""

from __future__ import annotations

import pytest

from tests.support.gateway import running_gateway

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


async def test_metrics_count_operations_and_errors_by_code(database_url: str) -> None:
    async with running_gateway(database_url) as gw:
        token = await gw.token()
        for _ in range(2):
            await gw.graphql("query Tiers { tiers { name } }", token=token)
        await gw.graphql(
            'mutation Enroll { enrollMember(input: {idempotencyKey: "k", customerId: "a"}) { userErrors { code } } }',
            token=token,
        )
        await gw.graphql("query Members { members { edges { cursor } } }")  # no token
        await gw.graphql("{ tiers { name } }", token="forged.token.x")
        async with gw.http.get(gw.url + "/metrics") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            text = await response.text()
    lines = set(text.splitlines())
    assert 'loyalty_graphql_requests_total{operation="Tiers",type="query"} 2.0' in lines
    assert 'loyalty_graphql_requests_total{operation="Enroll",type="mutation"} 1.0' in lines
    assert 'loyalty_graphql_errors_total{code="UNAUTHENTICATED"} 2.0' in lines
    assert 'loyalty_graphql_duration_seconds_count{type="query"} 3.0' in lines
