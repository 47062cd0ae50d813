"""Every error graphql-core can raise for a request leaves with the code a client acts
on. Each row runs a real document on the gateway's schema: if an upgrade of graphql-core
rewords a message this project maps by its words (the parser's limits), a row fails."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import GraphQLError, GraphQLSyntaxError, parse

from resolvers.errors import BAD_USER_INPUT, INTERNAL, QUERY_TOO_COMPLEX
from schema.errors import LIMIT_MESSAGES, PARSE_FAILED, coded
from schema.limits import MAX_TOKENS, VALIDATION_FAILED
from schema.root import build_schema

SCHEMA = build_schema()
DEEP = "{" + "tiers {" * 300 + "name" + "}" * 300 + "}"

ROWS: list[tuple[str, str, dict[str, Any] | None, str]] = [
    ("syntax", "{ tiers { name }", None, PARSE_FAILED),
    ("tokens", "{ " + "__typename " * (MAX_TOKENS + 1) + "}", None, QUERY_TOO_COMPLEX),
    ("parser nesting", DEEP, None, QUERY_TOO_COMPLEX),
    ("unknown field", "{ tierz { name } }", None, VALIDATION_FAILED),
    ("unknown argument", "{ members(frist: 1) { edges { cursor } } }", None, VALIDATION_FAILED),
    ("unused variable", "query($x: Int) { tiers { name } }", None, VALIDATION_FAILED),
    (
        "literal of the wrong type",
        '{ members(first: "x") { edges { cursor } } }',
        None,
        BAD_USER_INPUT,
    ),
    (
        "variable of the wrong type",
        "query($n: Int) { members(first: $n) { edges { cursor } } }",
        {"n": "x"},
        BAD_USER_INPUT,
    ),
    (
        "missing variable",
        "query($n: Int!) { members(first: $n) { edges { cursor } } }",
        {},
        BAD_USER_INPUT,
    ),
    (
        "depth",
        "{ members { edges { node { redemptions { edges { node { reward { name } } } } } } } }",
        None,
        "depth-5",
    ),
    (
        "aliases",
        "{ " + " ".join(f"a{i}: tiers {{ name }}" for i in range(31)) + " }",
        None,
        QUERY_TOO_COMPLEX,
    ),
    (
        "expansion",
        "{ ...F0 } "
        + " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(14))
        + " fragment F14 on Query { __typename }",
        None,
        QUERY_TOO_COMPLEX,
    ),
    (
        "cost",
        "{ members(first: 100) { edges { node { transactions(first: 100) { edges { node { id } } } } } } }",
        None,
        QUERY_TOO_COMPLEX,
    ),
    (
        "two operations",
        "query A { tiers { name } } query B { tiers { threshold } }",
        None,
        BAD_USER_INPUT,
    ),
]


@pytest.mark.parametrize(("name", "query", "variables", "code"), ROWS, ids=[r[0] for r in ROWS])
async def test_each_error_has_its_code(
    name: str, query: str, variables: dict[str, Any] | None, code: str
) -> None:
    schema = build_schema(max_depth=5) if code == "depth-5" else SCHEMA
    result = await schema.execute(query, variable_values=variables)
    assert result.errors, name
    codes = {e.extensions["code"] for e in coded(result.errors, "req") if e.extensions}
    assert codes == {QUERY_TOO_COMPLEX if code == "depth-5" else code}, (name, result.errors)


def test_the_parser_limits_are_worded_as_pinned() -> None:
    """The two messages mapped by their words are the ones graphql-core writes."""
    worded = []
    for document, limit in ((DEEP, None), ("{ " + "a " * 50 + "}", 10)):
        try:
            parse(document, max_tokens=limit)
        except GraphQLSyntaxError as error:
            worded.append(error.message)
    assert len(worded) == 2
    assert all(any(text in message for text in LIMIT_MESSAGES) for message in worded)


async def test_an_error_while_resolving_without_a_code_is_masked() -> None:
    """A field that fails for no reason of ours to give is INTERNAL, its words hidden."""
    result = await SCHEMA.execute("{ tiers { name } }")  # no context: the resolver breaks
    assert result.errors
    masked = coded(result.errors, "req-1")
    assert [e.extensions for e in masked] == [{"code": INTERNAL, "requestId": "req-1"}]
    assert masked[0].message == "Internal error"


def test_an_event_that_fails_with_a_value_error_is_masked() -> None:
    """Outside execution a ValueError is the caller's variables; in a subscription's
    events, tied to no part of the document, it is a defect."""
    failed = GraphQLError("'BOGUS' is not a valid EntryKind", original_error=ValueError("x"))
    [as_input] = coded([failed], "req-2")
    assert as_input.extensions == {"code": BAD_USER_INPUT}
    [as_event] = coded([failed], "req-2", events=True)
    assert (as_event.message, as_event.extensions) == (
        "Internal error",
        {"code": INTERNAL, "requestId": "req-2"},
    )
