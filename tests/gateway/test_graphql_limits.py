"""Bad input and abuse through a running gateway: each a clear error with a code, never
a 500 with a stack trace, and nothing written."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey
from sqlalchemy import func, select, text

from auth import scopes
from ledger.models import Entry, Member
from schema.root import build_schema
from tests.support.gateway import Gateway, running_gateway

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

ENROLL = "mutation($c: String!) { enrollMember(input: {idempotencyKey: $c, customerId: $c}) { member { id } userErrors { code } } }"


@pytest.fixture
async def gw(database_url: str) -> AsyncIterator[Gateway]:
    async with running_gateway(database_url) as gateway:
        yield gateway


async def count(gw: Gateway, model: object) -> int:
    async with gw.database.reading() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)  # type: ignore[arg-type]


async def post_raw(gw: Gateway, body: bytes, token: str | None = None) -> tuple[int, str]:
    """POST exactly these bytes as JSON."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    stream = io.BytesIO(body)
    async with gw.http.post(gw.url + "/graphql", data=stream, headers=headers) as response:
        return response.status, await response.text()


async def test_malformed_json_and_batches_are_refused(gw: Gateway) -> None:
    token = await gw.token()
    status, body = await post_raw(gw, b'{"query": "{ tiers { name } ', token)
    assert status == 400 and "JSON" in body
    batch = json.dumps([{"query": "{ tiers { name } }"}, {"query": "{ tiers { name } }"}]).encode()
    status, body = await post_raw(gw, batch, token)
    assert status == 400 and "Traceback" not in body
    status, _ = await post_raw(gw, b'{"query": 42}', token)
    assert status == 400


async def test_oversized_bodies_are_refused_before_parsing(gw: Gateway) -> None:
    token = await gw.token()
    padding = "x" * (1024 * 1024 + 10)
    body = json.dumps({"query": "{ tiers { name } }", "variables": {"pad": padding}}).encode()
    status, text_ = await post_raw(gw, body, token)
    assert status == 413
    assert json.loads(text_)["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


async def test_depth_alias_token_and_cost_limits(gw: Gateway) -> None:
    token = await gw.token()
    # The schema is shallow (no valid query reaches the limit of 10): check the rule
    # itself on a schema built with a lower limit.
    deep = "{ members { edges { node { redemptions { edges { node { reward { name } } } } } } } }"
    shallow = build_schema(max_depth=5)
    result = await shallow.execute(deep)
    assert result.errors and "exceeds maximum operation depth of 5" in result.errors[0].message
    assert (await gw.graphql(deep, token=token)).codes == []

    syntax = await gw.graphql("{ tiers { name }", token=token)
    assert syntax.codes == ["GRAPHQL_PARSE_FAILED"]

    aliases = (
        "fragment F on Query { "
        + " ".join(f"a{i}: tiers {{ name }}" for i in range(20))
        + " } { ...F ...F }"
    )
    response = await gw.graphql(aliases, token=token)
    assert response.codes == ["QUERY_TOO_COMPLEX"], response.body

    tokens = "{ " + " ".join("__typename" for _ in range(3000)) + " }"
    response = await gw.graphql(tokens, token=token)
    assert response.codes == ["QUERY_TOO_COMPLEX"], response.body

    costly = "{ members(first: 100) { edges { node { transactions(first: 100) { edges { node { id kind points } } } } } } }"
    response = await gw.graphql(costly, token=token)
    assert response.codes == ["QUERY_TOO_COMPLEX"]
    assert response.body["errors"][0]["extensions"]["cost"] == 1 + 100 * (
        1 + 1 + 1 + 100 * (1 + 1 + 3)
    )
    cheap = await gw.graphql("{ members(first: 2) { edges { node { id } } } }", token=token)
    assert cheap.body["extensions"]["cost"] == {"requested": 1 + 2 * 3, "limit": 5000}
    by_variable = await gw.graphql(
        "query($n: Int) { members(first: $n) { edges { node { transactions(first: $n) { edges { node { id } } } } } } }",
        {"n": 100},
        token,
    )
    assert by_variable.codes == ["QUERY_TOO_COMPLEX"]


async def test_no_mutations_over_get(gw: Gateway) -> None:
    token = await gw.token()
    response = await gw.graphql(ENROLL, {"c": "ada"}, token, method="GET")
    assert response.status in {400, 405}
    assert await count(gw, Member) == 0
    query = await gw.graphql("{ tiers { name } }", token=token, method="GET")
    assert query.data == {"tiers": [{"name": "Bronze"}, {"name": "Silver"}, {"name": "Gold"}]}


async def test_wrong_types_and_absurd_amounts(gw: Gateway) -> None:
    await gw.partner(ENROLL, {"c": "ada"})
    entries = await count(gw, Entry)
    token = await gw.token()
    adjust = 'mutation($p: Int!) { adjustPoints(input: {idempotencyKey: "k", member: {customerId: "ada"}, points: $p, reason: "r"}) { userErrors { code } } }'
    for value in ["12", 1e30, 2**40, None]:
        response = await gw.graphql(adjust, {"p": value}, token)
        assert response.status == 200 and response.codes == ["BAD_USER_INPUT"], response.body
    purchase = """mutation($price: Decimal!, $q: Int!) { recordPurchase(input: {idempotencyKey: "p",
        member: {customerId: "ada"}, orderId: "o", currency: "USD",
        lines: [{quantity: $q, unitPrice: $price}]}) { transaction { id } userErrors { code field } } }"""
    for price, quantity in [
        ("-5.00", 1),
        ("10.00", 0),
        ("10.00", -3),
        ("0.000001", 1),
    ]:
        response = await gw.graphql(purchase, {"price": price, "q": quantity}, token)
        payload = response.data["recordPurchase"]
        assert payload["transaction"] is None
        assert payload["userErrors"][0]["code"] in {"INVALID_AMOUNT", "INVALID_INPUT"}, payload
    bad_prices: list[object] = ["1e30", "NaN", "Infinity", "abc", "1" * 50, 12.5]
    for bad in bad_prices:
        response = await gw.graphql(purchase, {"price": bad, "q": 1}, token)
        assert response.codes == ["BAD_USER_INPUT"], response.body
    unknown = await gw.graphql(
        '{ member(ref: {id: "99999999999999999999999"}) { id } }', token=token
    )
    assert unknown.data == {"member": None}
    both = await gw.graphql('{ member(ref: {id: "1", customerId: "ada"}) { id } }', token=token)
    assert both.codes == ["BAD_USER_INPUT"]
    cursor = await gw.graphql(
        '{ members(after: "not-a-cursor") { edges { cursor } } }', token=token
    )
    assert cursor.codes == ["BAD_USER_INPUT"]
    page = await gw.graphql("{ members(first: 1000) { edges { cursor } } }", token=token)
    assert page.codes == ["BAD_USER_INPUT"]
    naive = await gw.graphql(
        'mutation { recordAction(input: {idempotencyKey: "a", member: {customerId: "ada"}, type: "product_review", occurredAt: "2026-03-02T10:00:00"}) { userErrors { code } } }',
        token=token,
    )
    assert naive.codes == ["BAD_USER_INPUT"]
    assert await count(gw, Entry) == entries


def _forge(header: dict[str, object], claims: dict[str, object], signature: bytes = b"") -> str:
    def part(data: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return (
        f"{part(header)}.{part(claims)}.{base64.urlsafe_b64encode(signature).decode().rstrip('=')}"
    )


async def test_forged_and_expired_tokens_are_unauthenticated(gw: Gateway) -> None:
    good = await gw.token()
    claims = json.loads(base64.urlsafe_b64decode(good.split(".")[1] + "=="))
    public = gw.app.state.authorization.tokens.key.public_jwk()
    hs256 = jwt.encode(
        {"alg": "HS256", "typ": "at+jwt"},
        claims,
        OctKey.import_key(json.dumps(public).encode()),
        algorithms=["HS256"],
    )
    now = datetime.now(UTC)
    tokens = gw.app.state.authorization.tokens
    key = tokens.key
    untyped = jwt.encode(
        {"alg": key.algorithm, "kid": key.kid, "typ": "JWT"},
        claims,
        key.key,
        algorithms=[key.algorithm],
    )
    expired = jwt.encode(
        {"alg": key.algorithm, "kid": key.kid, "typ": "at+jwt"},
        {**claims, "exp": int((now - timedelta(seconds=5)).timestamp())},
        key.key,
        algorithms=[key.algorithm],
    )
    other_issuer = jwt.encode(
        {"alg": key.algorithm, "kid": key.kid, "typ": "at+jwt"},
        {**claims, "iss": "http://127.0.0.1:1", "aud": "http://127.0.0.1:1"},
        key.key,
        algorithms=[key.algorithm],
    )
    ghost, _ = tokens.mint("cli_ghost", "ghost", frozenset(scopes.ALL))  # no such program here
    forged = [
        untyped,
        expired,
        other_issuer,
        ghost,
        "garbage",
        _forge({"alg": "none", "typ": "at+jwt"}, claims),
        hs256,
        good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"),
        gw.member_token("ada", aud="someone-else"),
        gw.member_token("ada", iss="https://evil.example/"),
        gw.member_token("ada", exp=int((now - timedelta(minutes=5)).timestamp())),
    ]
    for token in forged:
        response = await gw.graphql("{ tiers { name } }", token=token)
        assert response.status == 401, (token, response.body)
        assert response.codes == ["UNAUTHENTICATED"]
        assert 'error="invalid_token"' in response.headers.get("www-authenticate", "")
    bad_scheme = await gw.graphql("{ tiers { name } }", headers={"Authorization": "Basic abc"})
    assert bad_scheme.status == 401

    # A revoked token is refused before it expires.
    async with gw.database.transaction() as session:
        client = await gw.app.state.authorization.create_client(
            session, "test", "c", frozenset({scopes.ANALYTICS_READ})
        )
    form = {
        "grant_type": "client_credentials",
        "client_id": client.client_id,
        "client_secret": client.client_secret,
    }
    async with gw.http.post(gw.url + "/oauth/token", data=form) as issued:
        token = (await issued.json())["access_token"]
    assert (await gw.graphql("{ programStats { members } }", token=token)).data == {
        "programStats": {"members": 0}
    }
    async with gw.http.post(gw.url + "/oauth/revoke", data={**form, "token": token}) as revocation:
        assert revocation.status == 200
    revoked = await gw.graphql("{ programStats { members } }", token=token)
    assert (revoked.status, revoked.codes) == (401, ["UNAUTHENTICATED"])


async def test_unexpected_errors_are_masked_with_a_request_id(
    gw: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    await gw.partner(ENROLL, {"c": "ada"})
    async with gw.database.transaction() as session:
        await session.execute(text("ALTER TABLE accounts RENAME TO accounts_moved"))
    with caplog.at_level(logging.ERROR, logger="loyalty.graphql"):
        response = await gw.graphql(
            '{ member(ref: {customerId: "ada"}) { customerId points { available } } }',
            token=await gw.token(),
        )
    assert response.status == 200
    error = response.body["errors"][0]
    assert error["message"] == "Internal error"
    assert error["extensions"]["code"] == "INTERNAL"
    request_id = error["extensions"]["requestId"]
    assert response.headers["x-request-id"] == request_id
    assert "accounts" not in json.dumps(response.body)  # no SQL, no stack trace
    assert any(request_id in record.getMessage() for record in caplog.records)
    assert response.body["data"] == {"member": None}


async def test_rate_limit_per_client_with_retry_after(database_url: str) -> None:
    async with running_gateway(database_url, rate_limit="3/minute") as gw:
        token = await gw.token()
        statuses = [(await gw.graphql("{ tiers { name } }", token=token)).status for _ in range(3)]
        assert statuses == [200, 200, 200]
        limited = await gw.graphql("{ tiers { name } }", token=token)
        assert (limited.status, limited.codes) == (429, ["RATE_LIMITED"])
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        other = await gw.graphql("{ tiers { name } }", token=gw.member_token("ada"))
        assert other.status == 200  # another caller has its own budget
        # Refused tokens count against the address: guessing tokens is limited too.
        guesses = [
            (await gw.graphql("{ tiers { name } }", token=f"x.y.{i}")).status for i in range(4)
        ]
        assert guesses == [401, 401, 401, 429]


async def test_without_introspection_no_schema_and_no_suggestions(database_url: str) -> None:
    async with running_gateway(database_url, introspection=False) as gw:
        token = await gw.token()
        schema = await gw.graphql("{ __schema { types { name } } }", token=token)
        assert schema.codes and schema.body.get("data") is None
        typo = await gw.graphql("{ tier { name } }", token=token)
        assert "Did you mean" not in json.dumps(typo.body)
        async with gw.http.get(gw.url + "/graphql", headers={"Accept": "text/html"}) as response:
            assert response.status == 404


async def test_huge_exponents_are_refused_before_any_work(gw: Gateway) -> None:
    await gw.partner(ENROLL, {"c": "ada"})
    token = await gw.token()
    purchase = """mutation($lines: [PurchaseLineInput!]!) { recordPurchase(input: {idempotencyKey: "p",
        member: {customerId: "ada"}, orderId: "o", currency: "USD", lines: $lines}) { userErrors { code } } }"""
    for price in ["9E+999999", "9E-999999", "1E+16"]:
        lines = [{"quantity": 1, "unitPrice": price}] * 300
        response = await gw.graphql(purchase, {"lines": lines}, token)
        assert set(response.codes) == {"BAD_USER_INPUT"}, response.body
        assert "out of range" in response.body["errors"][0]["message"]


async def test_variable_defaults_count_in_the_cost(gw: Gateway) -> None:
    token = await gw.token()
    query = "query($n: Int = 100) { members(first: $n) { edges { node { transactions(first: $n) { edges { node { id } } } redemptions(first: $n) { edges { node { id } } } } } } }"
    response = await gw.graphql(query, token=token)
    assert response.codes == ["QUERY_TOO_COMPLEX"], response.body


async def test_many_writes_by_members_naming_themselves_do_not_starve_the_pool(gw: Gateway) -> None:
    """Each mutation gives its read connection back before it takes a write connection."""
    ids = {}
    for i in range(20):
        member = (await gw.partner(ENROLL, {"c": f"m{i}"}))["enrollMember"]["member"]
        ids[f"m{i}"] = member["id"]
    update = 'mutation($id: ID!) { updateMember(input: {idempotencyKey: "u", member: {id: $id}, name: "N"}) { member { name } userErrors { code } } }'
    answers = await asyncio.gather(
        *(gw.graphql(update, {"id": ids[c]}, gw.member_token(c)) for c in ids)
    )
    assert [a.status for a in answers] == [200] * 20
    assert all(
        a.data["updateMember"] == {"member": {"name": "N"}, "userErrors": []} for a in answers
    )


SERIES_BY_ALIAS = """query($f: DateTime!, $t: DateTime!, $i: Interval!) { %s }"""


async def test_a_time_series_costs_its_fields_once_per_bucket(gw: Gateway) -> None:
    token = await gw.token()
    year = {"f": "2026-01-01T00:00:00Z", "t": "2027-01-01T00:00:00Z"}
    one = "s0: pointsSeries(from: $f, to: $t, interval: $i) { start issued redeemed }"
    daily = await gw.graphql(SERIES_BY_ALIAS % one, {**year, "i": "DAY"}, token)
    # 365 days, with a day to spare each side for the zone: more than the 366 a series may
    # have, so it costs the most a series can.
    assert daily.body["extensions"]["cost"] == {"requested": 1 + 366 * 3, "limit": 5000}
    monthly = await gw.graphql(SERIES_BY_ALIAS % one, {**year, "i": "MONTH"}, token)
    assert monthly.body["extensions"]["cost"]["requested"] == 1 + 15 * 3

    many = " ".join(
        f"s{n}: pointsSeries(from: $f, to: $t, interval: $i) {{ start issued redeemed }}"
        for n in range(30)
    )
    response = await gw.graphql(SERIES_BY_ALIAS % many, {**year, "i": "DAY"}, token)
    assert response.codes == ["QUERY_TOO_COMPLEX"], response.body
    assert response.body["errors"][0]["extensions"]["cost"] == 30 * (1 + 366 * 3)
    assert "data" not in response.body or response.body["data"] is None  # nothing ran
