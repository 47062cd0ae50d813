"""Every GraphQL error leaves with `extensions.code`; the unexpected are masked.

Codes come from structure: our own errors and the validation rules carry theirs (see
`schema.limits`), a syntax error is recognised by its class, an error outside execution
(the request's variables) is the caller's input. graphql-core words two limits only in
a message (the parser's token and nesting limits): `LIMIT_MESSAGES` holds those, and a
test pins each, so an upgrade that rewords one fails the suite instead of changing a code.
"""

from __future__ import annotations

import logging

from graphql import GraphQLError, GraphQLSyntaxError

from ledger.db import is_unavailable
from resolvers.errors import (
    BAD_USER_INPUT,
    INTERNAL,
    QUERY_TOO_COMPLEX,
    SERVICE_UNAVAILABLE,
    UNAVAILABLE_MESSAGE,
)

log = logging.getLogger("loyalty.graphql")

PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
LIMIT_MESSAGES = ("Document contains more than", "Document is nested too deeply")
SUGGESTION = " Did you mean "


def _unexpected(error: GraphQLError, events: bool) -> bool:
    """Raised while resolving a field without a code of ours, or by something other than
    the GraphQL machinery's input checks: a defect, not an answer. In a subscription's
    events (`events`), an exception tied to no part of the document is one too, whatever
    its class: the caller's input was checked before the first event."""
    if error.path is not None:
        return True
    original = error.original_error
    if events and error.nodes is None:
        return original is not None and not isinstance(original, GraphQLError)
    return original is not None and not isinstance(original, GraphQLError | ValueError | TypeError)


def _code(error: GraphQLError) -> str:
    if isinstance(error, GraphQLSyntaxError):
        if any(text in error.message for text in LIMIT_MESSAGES):
            return QUERY_TOO_COMPLEX
        return PARSE_FAILED
    return BAD_USER_INPUT  # outside execution and no rule's code: the variables


def coded(
    errors: list[GraphQLError],
    request_id: str,
    *,
    suggestions: bool = True,
    events: bool = False,
) -> list[GraphQLError]:
    """Every error with `extensions.code`. Unexpected ones are logged with the request id
    and masked as INTERNAL, carrying that id. Without `suggestions` no message names
    what the schema holds ("Did you mean ...?"). `events`: the errors of a result
    streamed once the operation ran (a subscription's event), not of its checks."""
    return [_coded(error, request_id, suggestions, events) for error in errors]


def _coded(error: GraphQLError, request_id: str, suggestions: bool, events: bool) -> GraphQLError:
    if error.original_error is not None and is_unavailable(error.original_error):
        log.warning("request %s: database unavailable: %r", request_id, error.original_error)
        extensions = {"code": SERVICE_UNAVAILABLE}
        return GraphQLError(
            UNAVAILABLE_MESSAGE, nodes=error.nodes, path=error.path, extensions=extensions
        )
    code = (error.extensions or {}).get("code")
    if code is None and _unexpected(error, events):
        log.error(
            "request %s: unexpected error at %s: %s",
            request_id,
            error.path,
            error.message,
            exc_info=error.original_error,
        )
        return GraphQLError(
            "Internal error",
            nodes=error.nodes,
            path=error.path,
            extensions={"code": INTERNAL, "requestId": request_id},
        )
    message = error.message if suggestions else error.message.split(SUGGESTION)[0]
    if code is not None and message == error.message:
        return error
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=error.original_error,
        extensions={**(error.extensions or {}), "code": code or _code(error)},
    )
