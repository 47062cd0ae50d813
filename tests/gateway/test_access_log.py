"""The access log: a line per request, its status, duration and request id, for a
planned read, a refusal before GraphQL, and a route that is not GraphQL."""

from __future__ import annotations

import logging
import re

import pytest

from tests.support.gateway import running_gateway

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

READ = "query Member($c: String!) { member(ref: {customerId: $c}) { points { available } } }"
LINE = re.compile(r'^[\d.]+:\d+ - "(\w+) (\S+) HTTP/1\.1" (\d{3}) (\d+\.\d)ms (\S+)$')


async def test_each_request_is_one_line_with_status_duration_and_request_id(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="loyalty.access")
    async with running_gateway(database_url) as gw:
        token = await gw.token()
        ids = []
        for _ in range(2):  # the second is answered by the read's compiled plan
            body = {"query": READ, "variables": {"c": "nobody"}}
            headers = {"Authorization": f"Bearer {token}"}
            async with gw.http.post(gw.url + "/graphql", json=body, headers=headers) as response:
                assert response.status == 200
                ids.append(response.headers["X-Request-Id"])
        refused = {"Authorization": "Bearer forged.token.x"}
        async with gw.http.post(gw.url + "/graphql", json=body, headers=refused) as response:
            assert response.status == 401
            ids.append(response.headers["X-Request-Id"])
        async with gw.http.get(gw.url + "/healthz?probe=1") as response:
            assert response.status == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "loyalty.access"]
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    # By request id: a line is written once the request is done, its transaction ended
    # too, which may be after the next request's answer.
    seen = {m.group(5): (m.group(1), m.group(2), m.group(3)) for m in parsed if m}
    assert {i: seen.get(i) for i in ids} == {
        ids[0]: ("POST", "/graphql", "200"),
        ids[1]: ("POST", "/graphql", "200"),
        ids[2]: ("POST", "/graphql", "401"),
    }
    assert any(
        line.endswith(" -") and '"GET /healthz?probe=1 HTTP/1.1" 200 ' in line for line in lines
    )
