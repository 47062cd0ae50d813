"""Limits on what one GraphQL operation may ask, and masking of unexpected errors.

Cost: every field costs 1; a field with a `first` argument multiplies the cost of what
it selects by `first` (its default when not given), fragments counted where spread.
The cost is reported in `extensions.cost`; above the limit the operation is refused
before anything runs (QUERY_TOO_COMPLEX).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLNamedType,
    GraphQLObjectType,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
)
from strawberry.extensions import SchemaExtension

from ledger.db import is_unavailable
from resolvers.errors import (
    BAD_USER_INPUT,
    INTERNAL,
    QUERY_TOO_COMPLEX,
    SERVICE_UNAVAILABLE,
    UNAVAILABLE_MESSAGE,
)

log = logging.getLogger("loyalty.graphql")

MAX_COST = 5000
MAX_DEPTH = 10
MAX_ALIASES = 30
MAX_TOKENS = 2000
PAGE_ARGUMENT = "first"


class QueryCost(SchemaExtension):
    """Refuses operations that cost more than `max_cost`; reports the cost."""

    def __init__(self, max_cost: int = MAX_COST) -> None:
        self.max_cost = max_cost
        self.cost: int | None = None

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and not context.pre_execution_errors:
            fragments = {
                d.name.value: d
                for d in document.definitions
                if isinstance(d, FragmentDefinitionNode)
            }
            operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
            wanted = context.operation_name
            operation = next(
                (
                    op
                    for op in operations
                    if wanted is None or (op.name and op.name.value == wanted)
                ),
                None,
            )
            if operation is not None:
                schema = context.schema._schema
                root = schema.get_root_type(operation.operation)
                variables = {**_defaults(operation), **(context.variables or {})}
                if root is not None:
                    self.cost = _cost(operation.selection_set, root, fragments, variables, set())
                if self.cost is not None and self.cost > self.max_cost:
                    context.pre_execution_errors = [
                        GraphQLError(
                            f"query cost {self.cost} exceeds the limit of {self.max_cost}",
                            extensions={"code": QUERY_TOO_COMPLEX, "cost": self.cost},
                        )
                    ]
        yield

    def get_results(self) -> dict[str, Any]:
        if self.cost is None:
            return {}
        return {"cost": {"requested": self.cost, "limit": self.max_cost}}


def _defaults(operation: OperationDefinitionNode) -> dict[str, Any]:
    """The integer defaults the operation declares for its variables."""
    return {
        definition.variable.name.value: int(definition.default_value.value)
        for definition in operation.variable_definitions or ()
        if isinstance(definition.default_value, IntValueNode)
    }


def _cost(
    selection_set: SelectionSetNode | None,
    parent: GraphQLNamedType,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
    spreading: set[str],
) -> int:
    if selection_set is None:
        return 0
    total = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            total += _field_cost(selection, parent, fragments, variables, spreading)
        elif isinstance(selection, InlineFragmentNode):
            total += _cost(selection.selection_set, parent, fragments, variables, spreading)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is None or name in spreading:
                continue
            total += _cost(fragment.selection_set, parent, fragments, variables, spreading | {name})
    return total


def _field_cost(
    node: FieldNode,
    parent: GraphQLNamedType,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
    spreading: set[str],
) -> int:
    fields = parent.fields if isinstance(parent, GraphQLObjectType) else {}
    definition = fields.get(node.name.value)
    if definition is None:  # __typename, introspection, or a type condition elsewhere
        return 1
    child = get_named_type(definition.type)
    inner = _cost(node.selection_set, child, fragments, variables, spreading)
    multiplier = 1
    if PAGE_ARGUMENT in definition.args:
        multiplier = definition.args[PAGE_ARGUMENT].default_value or 1
        for argument in node.arguments or ():
            if argument.name.value != PAGE_ARGUMENT:
                continue
            if isinstance(argument.value, IntValueNode):
                multiplier = int(argument.value.value)
            elif isinstance(argument.value, VariableNode):
                multiplier = variables.get(argument.value.name.value, multiplier)
        if not isinstance(multiplier, int) or multiplier < 1:
            multiplier = 1
    return 1 + multiplier * inner


def _unexpected(error: GraphQLError) -> bool:
    """Anything but a GraphQL error of ours or of the GraphQL machinery (syntax,
    validation, variable coercion) is unexpected."""
    original = error.original_error
    if original is None or isinstance(original, GraphQLError):
        return False
    return error.path is not None or not isinstance(original, ValueError | TypeError)


LIMIT_MESSAGES = ("exceeds maximum operation depth", "aliases found", "document contains more than")


def _code(error: GraphQLError) -> str:
    """A code for the errors graphql-core raises without one."""
    message = error.message.lower()
    if any(text in message for text in LIMIT_MESSAGES):
        return QUERY_TOO_COMPLEX
    if message.startswith("syntax error"):
        return "GRAPHQL_PARSE_FAILED"
    if message.startswith(("variable", "too many errors")) or error.original_error is not None:
        return BAD_USER_INPUT
    return "GRAPHQL_VALIDATION_FAILED"


def coded(errors: list[GraphQLError], request_id: str) -> list[GraphQLError]:
    """Every error leaves with `extensions.code`. Unexpected ones are logged with the
    request id and masked as INTERNAL, carrying that id."""
    return [_coded(error, request_id) for error in errors]


def _coded(error: GraphQLError, request_id: str) -> GraphQLError:
    if error.original_error is not None and is_unavailable(error.original_error):
        log.warning("request %s: database unavailable: %r", request_id, error.original_error)
        extensions = {"code": SERVICE_UNAVAILABLE}
        return GraphQLError(
            UNAVAILABLE_MESSAGE, nodes=error.nodes, path=error.path, extensions=extensions
        )
    if _unexpected(error):
        log.error(
            "request %s: unexpected error at %s",
            request_id,
            error.path,
            exc_info=error.original_error,
        )
        return GraphQLError(
            "Internal error",
            nodes=error.nodes,
            path=error.path,
            extensions={"code": INTERNAL, "requestId": request_id},
        )
    if error.extensions and "code" in error.extensions:
        return error
    extensions = {**(error.extensions or {}), "code": _code(error)}
    return GraphQLError(
        error.message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=error.original_error,
        extensions=extensions,
    )
