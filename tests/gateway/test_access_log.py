"""The access log: a line per request, its status, duration and request id, for a
planned read, a refusal before GraphQL, and a route that is not GraphQL."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest
import yarl

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


async def test_a_newline_in_the_path_is_logged_encoded_on_one_line(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="loyalty.access")
    forged = "%0A127.0.0.1:1%20-%20%22GET%20/forged%20HTTP/1.1%22%20200%201.0ms%20x%22"
    async with running_gateway(database_url) as gw:
        url = yarl.URL(gw.url + "/healthz" + forged, encoded=True)
        async with gw.http.get(url) as response:
            assert response.status == 404
    lines = [r.getMessage() for r in caplog.records if r.name == "loyalty.access"]
    assert len(lines) == 1, lines
    assert "\n" not in lines[0]
    match = LINE.match(lines[0])
    assert match, lines
    assert (
        match.group(2)
        == "/healthz%0A127.0.0.1%3A1%20-%20%22GET%20/forged%20HTTP/1.1%22%20200%201.0ms%20x%22"
    )
    assert match.group(3) == "404"


async def test_a_client_that_left_before_any_answer_is_logged_with_no_status(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="loyalty.access")
    async with running_gateway(database_url) as gw:
        token = await gw.token()
        url = yarl.URL(gw.url)
        assert url.host and url.port
        reader, writer = await asyncio.open_connection(url.host, url.port)
        # A body promised at 100 bytes, one sent: the gateway waits for the rest and
        # hears the client leave instead.
        writer.write(
            b"POST /graphql HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {token}\r\n".encode()
            + b"Content-Length: 100\r\n\r\n{"
        )
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.close()
        await writer.wait_closed()
        assert await reader.read() == b""  # nothing was answered
        for _ in range(100):
            lines = [r.getMessage() for r in caplog.records if r.name == "loyalty.access"]
            if any('"POST /graphql' in line for line in lines):
                break
            await asyncio.sleep(0.05)
    (line,) = [line for line in lines if '"POST /graphql' in line]
    assert re.fullmatch(r'[\d.]+:\d+ - "POST /graphql HTTP/1\.1" - \d+\.\dms \w+', line), line
