"""The compiled plans of `gateway.plans` answer exactly what graphql-core's executor
answers: a property over generated documents (random subsets of the plannable fields,
aliases, merged fields, inline and named fragments, `__typename`, @include / @skip with
literals and variables), ledger states and principals (allowed, without the PII scope,
without the read scope, of another program, anonymous, a member reading itself, another
member, an unknown member). Where the executor answers with an error the plan must give
up (the request then goes the normal way); everywhere else it must answer, and its data
and extensions must equal the executor's.

Then, over HTTP through a running gateway, the planned answer's status, headers and
bytes equal the normal path's, and its metrics count it the same.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from graphql import DocumentNode
from graphql.language.parser import Parser
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from auth import scopes
from auth.principals import Anonymous, Partner, Principal, Shopper
from gateway.plans import Plans
from ledger.commands import AdjustPoints, ForgetMember, MemberRef
from ledger.db import Database
from ledger.service import LoyaltyService
from resolvers.context import Context
from schema.root import build_schema
from tests.conftest import sqlite_url
from tests.support.gateway import Gateway, running_gateway
from tests.support.ledger import Clock, enroll, make_program, run

# -- documents ---------------------------------------------------------------------------

TIER = ["name", "threshold", "earnMultiplier", "__typename"]
POINTS = ["available", "pending", "held", "lifetimeEarned", "__typename"]
SCALARS = ["id", "customerId", "email", "name", "enrolledAt", "referralCode", "__typename"]


@dataclass
class Doc:
    """A document being generated: its variables and fragments as they are used."""

    variables: dict[str, str] = field(default_factory=dict)  # name -> type
    fragments: list[str] = field(default_factory=list)
    aliases: int = 0

    def alias(self) -> str:
        self.aliases += 1
        return f"a{self.aliases}: "


@st.composite
def directives(draw: st.DrawFn, doc: Doc) -> str:
    kind = draw(st.sampled_from(["", "", "", "include", "skip"]))
    if not kind:
        return ""
    if draw(st.booleans()):
        return f" @{kind}(if: {draw(st.sampled_from(['true', 'false']))})"
    name = draw(st.sampled_from(["f", "g", "h"]))
    doc.variables[name] = "Boolean = true" if name == "h" else "Boolean!"
    return f" @{kind}(if: ${name})"


@st.composite
def selection(
    draw: st.DrawFn, doc: Doc, on: str, fields: st.SearchStrategy[tuple[str, str]]
) -> str:
    """Fields of `on` (each a name and its selections), some aliased or under a
    condition, some in fragments."""
    chosen = draw(st.lists(fields, min_size=1, max_size=5))
    parts = []
    for name, inner in chosen:
        alias = doc.alias() if ":" not in name and draw(st.integers(0, 3)) == 0 else ""
        parts.append(alias + name + draw(directives(doc)) + (f" {{ {inner} }}" if inner else ""))
    body = " ".join(parts)
    wrap = draw(st.sampled_from(["", "", "inline", "bare", "named"]))
    if wrap == "inline":
        return f"... on {on}{draw(directives(doc))} {{ {body} }}"
    if wrap == "bare":
        return f"...{draw(directives(doc))} {{ {body} }}"
    if wrap == "named":
        name = f"F{len(doc.fragments)}"
        doc.fragments.append(f"fragment {name} on {on} {{ {body} }}")
        spread = f"...{name}{draw(directives(doc))}"
        return spread + (" " + spread if draw(st.booleans()) else "")  # spread twice: once
    return body


def leaves(names: list[str]) -> st.SearchStrategy[tuple[str, str]]:
    return st.sampled_from([(name, "") for name in names])


@st.composite
def tier_status(draw: st.DrawFn, doc: Doc) -> tuple[str, str]:
    tier = st.deferred(lambda: selection(doc, "Tier", leaves(TIER)))
    inner = st.one_of(
        st.just(("__typename", "")),
        tier.map(lambda s: ("current", s)),
        tier.map(lambda s: ("next", s)),
    )
    return "tier", draw(selection(doc, "TierStatus", inner))


@st.composite
def member_fields(draw: st.DrawFn, doc: Doc) -> tuple[str, str]:
    points = selection(doc, "Points", leaves(POINTS)).map(lambda s: ("points", s))
    return draw(st.one_of(leaves(SCALARS), points, tier_status(doc)))


@st.composite
def root_field(draw: st.DrawFn, doc: Doc) -> tuple[str, str]:
    how = draw(st.sampled_from(["var", "var", "literal", "id"]))
    if how == "var":
        doc.variables["c"] = "String!"
        ref = "{customerId: $c}"
    elif how == "id":
        doc.variables["i"] = "ID!"
        ref = "{id: $i}"
    else:
        ref = "{customerId: " + json.dumps(draw(st.sampled_from(CUSTOMERS))) + "}"
    body = draw(selection(doc, "Member", st.deferred(lambda: member_fields(doc))))
    # Each its own response key: two member fields of one key must have one ref.
    return f"{doc.alias()}member(ref: {ref})", body


@st.composite
def documents(draw: st.DrawFn) -> str:
    doc = Doc()
    roots = st.one_of(st.just(("__typename", "")), root_field(doc))
    body = draw(selection(doc, "Query", roots))
    if "member(" not in body + " ".join(doc.fragments):
        head, inner = draw(root_field(doc))
        body += f" {head} {{ {inner} }}"
    signature = ", ".join(f"${name}: {kind}" for name, kind in sorted(doc.variables.items()))
    head = f"query Read({signature})" if signature else "query Read"
    return " ".join([f"{head} {{ {body} }}", *doc.fragments])


# -- the ledger and the callers ----------------------------------------------------------

CUSTOMERS = ["ada", "bob", "cyd", "gone", "nobody", "x" * 300, "nul\x00"]


@dataclass
class World:
    loop: asyncio.AbstractEventLoop
    database: Database
    service: LoyaltyService
    clock: Clock
    ids: dict[str, int]
    schema: Any
    learned: dict[str, Plans] = field(default_factory=dict, repr=False)


PRINCIPALS: dict[str, Principal] = {
    "partner": Partner("test", "till", frozenset(scopes.ALL)),
    "no-pii": Partner("test", "till", frozenset(scopes.ALL) - {scopes.MEMBERS_PII}),
    "no-read": Partner("test", "till", frozenset({scopes.REWARDS_READ})),
    "other-program": Partner("other", "till", frozenset(scopes.ALL)),
    "anonymous": Anonymous(),
    "ada": Shopper("test", "ada"),
    "bob": Shopper("test", "bob"),
    "unknown-member": Shopper("test", "nobody"),
}


@pytest.fixture(scope="module")
def world(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    loop = asyncio.new_event_loop()
    url = sqlite_url(sqlite_template, tmp_path_factory.mktemp("plans"))
    database = Database(url)
    clock = Clock()
    programs = {p.id: p for p in (make_program(), make_program(id="other"))}
    service = LoyaltyService(programs, clock=clock)

    async def build() -> dict[str, int]:
        ids = {
            "ada": await enroll(database, service, "ada", email="ada@example.com", name="Ada"),
            "bob": await enroll(database, service, "bob"),
            "cyd": await enroll(database, service, "cyd", name="Cyd"),
            "gone": await enroll(database, service, "gone", email="g@example.com"),
        }
        for customer, points in (("bob", 1500), ("cyd", 7000)):
            adjust = AdjustPoints(f"adj-{customer}", MemberRef(customer_id=customer), points, "x")
            assert (await run(database, service, adjust)).ok
        assert (await run(database, service, ForgetMember("f", MemberRef(customer_id="gone")))).ok
        return ids

    ids = loop.run_until_complete(build())
    yield World(loop, database, service, clock, ids, build_schema())
    loop.run_until_complete(database.dispose())
    loop.close()


def context(w: World, principal: Principal) -> Context:
    return Context(database=w.database, service=w.service, principal=principal,
                   request_id="r", clock=w.clock)  # fmt: skip


async def normal(w: World, query: str, variables: dict[str, Any], who: Principal) -> Any:
    ctx = context(w, who)
    try:
        return await w.schema.execute(query, variable_values=variables, context_value=ctx)
    finally:
        await ctx.close()


async def check(w: World, query: str, variables: dict[str, Any], who: Principal) -> bool | None:
    """Compares the plan's answer with the executor's; whether the plan answered (None:
    the document is over the gateway's limits)."""
    plans = w.learned.get(query)
    if plans is None:
        plans = Plans(w.schema._schema)
        # Taught by an answer without an error: a null `if` is an error.
        sound = {name: True if value is None else value for name, value in variables.items()}
        learned = await normal(w, query, sound, PRINCIPALS["partner"])
        # A document over the gateway's limits is refused before any plan: not one to try.
        if any(e.extensions.get("code") == "QUERY_TOO_COMPLEX" for e in learned.errors or ()):
            return None
        assert not learned.errors, (query, learned.errors)
        plans.learn(query, None, learned)
        w.learned[query] = plans
    plan = plans.find(query, None)
    assert plan is not None, f"no plan for {query}"
    expected = await normal(w, query, variables, who)
    ctx = context(w, who)
    try:
        planned = await plan.run(ctx, variables)
    finally:
        await ctx.close()
    if expected.errors:
        assert planned is None, (expected.errors, planned)
        return False
    assert planned is not None, (query, variables, who)
    assert planned.errors is None
    assert json.dumps(planned.data) == json.dumps(expected.data)  # the same keys in order
    assert planned.extensions == expected.extensions
    return True


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    query=documents(),
    who=st.sampled_from(sorted(PRINCIPALS)),
    customer=st.sampled_from(CUSTOMERS),
    by_id=st.sampled_from(["ada", "bob", "gone", "none", "text"]),
    f=st.booleans(),
    g=st.booleans(),
    h=st.sampled_from([True, False, None, "absent"]),  # null: the executor's error
)
def test_a_plan_answers_what_the_executor_answers(
    world: World, query: str, who: str, customer: str, by_id: str, f: bool, g: bool, h: Any
) -> None:
    ids = {**{k: str(v) for k, v in world.ids.items()}, "none": "999999", "text": "abc"}
    variables: dict[str, Any] = {"c": customer, "i": ids[by_id], "f": f, "g": g, "h": h}
    used = {
        name: value
        for name, value in variables.items()
        if f"${name}:" in query and value != "absent"
    }
    assume(world.loop.run_until_complete(check(world, query, used, PRINCIPALS[who])) is not None)


READ = "query Member($c: String!) { member(ref: {customerId: $c}) { points { available pending } tier { current { name } } } }"  # noqa: E501


@pytest.mark.parametrize(
    ("who", "customer", "answers"),
    [
        ("partner", "bob", True),
        ("no-pii", "ada", True),
        ("other-program", "ada", True),  # nobody of that name there: null, no error
        ("partner", "nobody", True),
        ("partner", "gone", True),  # forgotten: null
        ("ada", "ada", True),
        ("no-read", "ada", False),
        ("anonymous", "ada", False),
        ("bob", "ada", False),
        ("unknown-member", "ada", False),
    ],
)
def test_the_read_of_the_benchmark_is_planned_for_whom_it_answers(
    world: World, who: str, customer: str, answers: bool
) -> None:
    answered = world.loop.run_until_complete(check(world, READ, {"c": customer}, PRINCIPALS[who]))
    assert answered is answers


@pytest.mark.parametrize(
    "query",
    [
        '{ member(ref: {customerId: "ada"}) { transactions { edges { node { id } } } } }',
        '{ member(ref: {customerId: "ada"}) { tier { qualifyingValue } } }',
        '{ member(ref: {customerId: "ada"}) { points { expiringSoon { points } } } }',
        '{ member(ref: {customerId: "ada"}) { ... on Node { id } } }',
        "{ me { id } }",
        "{ tiers { name } }",
        "{ members { edges { node { id } } } }",
        'mutation { enrollMember(input: {idempotencyKey: "z", customerId: "z"}) { '
        "member { id } } }",
    ],
)
def test_a_document_with_any_other_field_has_no_plan(world: World, query: str) -> None:
    plans = Plans(world.schema._schema)
    learned = world.loop.run_until_complete(normal(world, query, {}, PRINCIPALS["partner"]))
    plans.learn(query, None, learned)
    assert plans.find(query, None) is None


class _Never:
    """A permission nobody has."""

    message = "no"

    def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        return False


def test_a_field_with_a_permission_of_its_own_has_no_plan(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    answered = world.loop.run_until_complete(
        normal(world, READ, {"c": "ada"}, PRINCIPALS["partner"])
    )
    plans = Plans(world.schema._schema)
    plans.learn(READ, "Member", answered)
    assert plans.find(READ, "Member") is not None
    # A permission added to `Member.points` later: the plan would not apply it.
    points = world.schema._schema.type_map["Member"].fields["points"]
    definition = points.extensions["strawberry-definition"]
    monkeypatch.setattr(definition, "permission_classes", [_Never])
    plans = Plans(world.schema._schema)
    plans.learn(READ, "Member", answered)
    assert plans.find(READ, "Member") is None


# -- over HTTP ---------------------------------------------------------------------------

DETAILED = """query Detailed($c: String!, $f: Boolean!) { __typename
  who: member(ref: {customerId: $c}) { id customerId email name enrolledAt referralCode
    ...Balances tier { current { name threshold earnMultiplier } next @include(if: $f) { name } }
    __typename } }
fragment Balances on Member { points { available pending held lifetimeEarned } }"""


async def _raw(gw: Gateway, token: str, body: dict[str, Any]) -> tuple[int, bytes, dict[str, str]]:
    headers = {"Authorization": f"Bearer {token}"}
    async with gw.http.post(gw.url + "/graphql", json=body, headers=headers) as response:
        kept = {k.lower(): v for k, v in response.headers.items()}
        for varying in ("date", "x-request-id"):
            kept.pop(varying, None)
        return response.status, await response.read(), kept


async def _metric(gw: Gateway, name: str) -> float:
    async with gw.http.get(gw.url + "/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith(f'loyalty_graphql_requests_total{{operation="{name}",type="query"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_over_http_the_planned_answer_is_the_normal_one_byte_for_byte(
    sqlite_template: Path, tmp_path: Path
) -> None:
    url = sqlite_url(sqlite_template, tmp_path)
    async with running_gateway(url) as planned, running_gateway(url) as unplanned:
        unplanned.app.state.graphql.plans = None
        await planned.partner(
            'mutation { enrollMember(input: {idempotencyKey: "k", customerId: "ada", '
            'email: "ada@example.com"}) { userErrors { code } } }'
        )
        for query, variables in ((READ, {"c": "ada"}), (DETAILED, {"c": "ada", "f": True})):
            body = {"query": query, "variables": variables}
            token, other = await planned.token(), await unplanned.token()
            first = await _raw(planned, token, body)  # the normal path, which teaches the plan
            graphql = planned.app.state.graphql
            assert graphql.plans.find(query, None) is not None
            name = "Member" if query is READ else "Detailed"
            counted = await _metric(planned, name)
            second = await _raw(planned, token, body)  # the plan
            third = await _raw(unplanned, other, body)
            assert first == second == third
            assert first[0] == 200 and b'"errors"' not in first[1]
            assert await _metric(planned, name) == counted + 1
        # Refused on the plan's path: the normal path's error, with its status.
        no_read = await planned.token({scopes.REWARDS_READ})
        refused = await planned.graphql(READ, {"c": "ada"}, no_read)
        assert refused.codes == ["FORBIDDEN"]
        assert refused.body["data"] == {"member": None}
        async with aiohttp.ClientSession() as http:
            async with http.post(planned.url + "/graphql", json={"query": READ}) as response:
                body = await response.json()
            assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"]


TEXT = READ + "\n"  # the benchmark's read, as another client spells it


async def _sent(
    gw: Gateway, token: str | None, method: str, body: dict[str, Any], accept: str | None = None
) -> tuple[int, bytes, dict[str, str]]:
    """One request as a client sends it: POST of JSON, or GET with the parts in the URL."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if accept:
        headers["Accept"] = accept
    if method == "GET":
        params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()}
        request = gw.http.get(gw.url + "/graphql", params=params, headers=headers)
    else:
        request = gw.http.post(gw.url + "/graphql", json=body, headers=headers)
    async with request as response:
        kept = {k.lower(): v for k, v in response.headers.items()}
        assert kept.pop("x-request-id")
        kept.pop("date", None)
        return response.status, await response.read(), kept


async def test_the_planned_entry_answers_before_the_view_as_the_normal_path_does(
    sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plain, persisted by hash (POST and GET), with the GraphQL-over-HTTP media type;
    refused by the plan's permission and an unknown hash: status, headers and bytes of
    the normal path, the planned ones without Strawberry's view."""
    url = sqlite_url(sqlite_template, tmp_path)
    digest = hashlib.sha256(TEXT.encode()).hexdigest()  # a text of its own: parsed here
    by_hash = {"version": 1, "sha256Hash": digest}
    async with running_gateway(url) as planned, running_gateway(url) as unplanned:
        unplanned.app.state.graphql.plans = None
        graphql = planned.app.state.graphql
        viewed: list[object] = []
        view = graphql.run

        async def counted(request: Any, *args: Any, **kwargs: Any) -> Any:
            viewed.append(request)
            return await view(request, *args, **kwargs)

        graphql.run = counted
        await planned.partner(
            'mutation { enrollMember(input: {idempotencyKey: "k", customerId: "ada", '
            'email: "ada@example.com"}) { userErrors { code } } }'
        )
        tokens = (await planned.token(), await unplanned.token())
        registered = {
            "query": TEXT,
            "variables": {"c": "ada"},
            "extensions": {"persistedQuery": by_hash},
        }
        parsed: list[str] = []
        parse = Parser.parse_document

        def counted_parse(parser: Parser) -> DocumentNode:
            parsed.append(parser._lexer.source.body)
            return parse(parser)

        monkeypatch.setattr(Parser, "parse_document", counted_parse)
        for gw, token in zip((planned, unplanned), tokens, strict=True):
            assert (await _sent(gw, token, "POST", registered))[0] == 200  # kept, and taught
        assert graphql.plans.find(TEXT, None) is not None
        # Admitted, run and planned, on two gateways of one process: parsed once.
        assert parsed.count(TEXT) == 1
        monkeypatch.undo()
        hashed = {"variables": {"c": "ada"}, "extensions": {"persistedQuery": by_hash}}
        cases: list[tuple[str, dict[str, Any], str | None]] = [
            ("POST", {"query": TEXT, "variables": {"c": "ada"}}, None),
            ("POST", hashed, None),
            ("GET", hashed, None),
            ("GET", {"query": TEXT, "variables": {"c": "ada"}}, None),
            ("POST", hashed, "application/graphql-response+json"),
        ]
        for method, body, accept in cases:
            viewed.clear()
            counted_before = await _metric(planned, "Member")
            answers = [
                await _sent(gw, token, method, body, accept)
                for gw, token in zip((planned, unplanned), tokens, strict=True)
            ]
            assert answers[0] == answers[1], (method, body, accept)
            assert answers[0][0] == 200 and b'"points"' in answers[0][1]
            assert viewed == [], (method, body)  # answered before Strawberry's view
            assert await _metric(planned, "Member") == counted_before + 1
        # The plan gives up (no read scope): the normal path's error, once.
        no_read = (
            await planned.token({scopes.REWARDS_READ}),
            await unplanned.token({scopes.REWARDS_READ}),
        )
        for method, body in (("POST", {"query": TEXT, "variables": {"c": "ada"}}), ("GET", hashed)):
            viewed.clear()
            answers = [
                await _sent(gw, token, method, body)
                for gw, token in zip((planned, unplanned), no_read, strict=True)
            ]
            assert answers[0] == answers[1]
            assert b'"FORBIDDEN"' in answers[0][1] and len(viewed) == 1
        # An unknown hash: PERSISTED_QUERY_NOT_FOUND, never cached, on both methods.
        unknown = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}}
        for method in ("POST", "GET"):
            answers = [
                await _sent(gw, token, method, unknown)
                for gw, token in zip((planned, unplanned), tokens, strict=True)
            ]
            assert answers[0] == answers[1]
            status, raw, headers = answers[0]
            assert status == 200  # as Apollo's clients expect
            assert b"PERSISTED_QUERY_NOT_FOUND" in raw
            assert headers["cache-control"] == "private, no-cache, must-revalidate"
