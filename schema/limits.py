"""Limits on what one GraphQL document may ask, each cheap to check.

A document is measured before any validation rule walks it: fragments are expanded by
counting, once per fragment (memoized), so a chain of fragments that each spread the next
one twice costs its length to measure, not 2^length. A document that expands to more
fields than the cost limit is refused there: every field costs at least 1, so its cost is
over the limit too. So is one with more than `MAX_REPEATS` fields that repeat a sibling's
response name, which graphql-core's merging check compares pairwise. The validation rules
(graphql-core's, the depth and alias limits) then
only ever walk documents of bounded expanded size.

Cost: every field costs 1; a field with a `first` argument multiplies the cost of what it
selects by the page size the resolver will use for the argument's coerced value
(variables coerced as the executor coerces them: `100.0` is 100, `null` is the default
page). `Member.orders(first:)` is costed so too (its default page is 5); `Member.profile`
and `orders` cost no more per member than a ledger field, since their backends are asked
once per page of members, not once per member. `pointsSeries` multiplies the cost of
what it selects by the most buckets its range can take (`ledger.figures.most_buckets`).
The cost is reported in `extensions.cost`;
above the limit the operation is refused before anything runs (QUERY_TOO_COMPLEX).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
    specified_rules,
    validate,
)
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values
from graphql.validation import (
    ASTValidationContext,
    NoSchemaIntrospectionCustomRule,
    ValuesOfCorrectTypeRule,
)
from strawberry.extensions import ParserCache, SchemaExtension, ValidationCache
from strawberry.extensions.max_aliases import create_validator as create_alias_rule
from strawberry.extensions.query_depth_limiter import create_validator as create_depth_rule

from ledger.figures import Interval, most_buckets
from resolvers.errors import BAD_USER_INPUT, QUERY_TOO_COMPLEX
from resolvers.pagination import cost_page

MAX_COST = 5000
# The `extensions` a result of the operation validated in this task carries (its cost),
# for the subscription results that are encoded without Strawberry (`schema.subscriptions`).
OPERATION_EXTENSIONS: ContextVar[dict[str, Any] | None] = ContextVar(
    "loyalty_operation_extensions", default=None
)
MAX_DEPTH = 10
MAX_ALIASES = 30
MAX_TOKENS = 2000
MAX_REPEATS = 20
CACHE_SIZE = 256  # documents parsed and validated, shared across requests
PAGE_ARGUMENT = "first"
# A time series costs what it selects once per bucket it can return.
SERIES_FIELD = "pointsSeries"
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
# A literal argument of the wrong type or out of a scalar's range is the caller's input,
# as a variable's would be; every other rule's finding is a document that is not valid.
RULE_CODES: dict[type[ASTValidationRule], str] = {ValuesOfCorrectTypeRule: BAD_USER_INPUT}


class TooLarge(Exception):
    """The document passes a budget (raised to stop measuring at once)."""


def measure(document: DocumentNode, max_fields: int, max_repeats: int) -> None:
    """`TooLarge` when the document's operations select more than `max_fields` fields
    with every fragment expanded where it is spread, or when more than `max_repeats`
    fields repeat the response name of a sibling (graphql-core's check that fields can
    merge compares such siblings pairwise, through their selections: 450 copies of one
    field under the token limit take it seconds). Linear in the size of the document:
    each fragment is measured once."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    measured: dict[str, int] = {}
    measuring: set[str] = set()
    repeats = 0

    def fragment(name: str) -> int:
        if name in measured:
            return measured[name]
        definition = fragments.get(name)
        if definition is None or name in measuring:
            return 0  # unknown or cyclic: the validation rules refuse it
        measuring.add(name)
        size = selection_set(definition.selection_set)
        measuring.discard(name)
        measured[name] = size
        return size

    def selection_set(node: SelectionSetNode | None) -> int:
        nonlocal repeats
        names: dict[str, int] = {}
        size = selections(node, names)
        repeats += sum(names.values()) - len(names)
        if repeats > max_repeats:
            raise TooLarge(f"more than {max_repeats} fields repeat a sibling's name")
        return size

    def selections(node: SelectionSetNode | None, names: dict[str, int]) -> int:
        """Inline fragments merge into the selection set around them, as in the
        merging check."""
        if node is None:
            return 0
        total = 0
        for selection in node.selections:
            if isinstance(selection, FieldNode):
                name = (selection.alias or selection.name).value
                names[name] = names.get(name, 0) + 1
                total += 1 + selection_set(selection.selection_set)
            elif isinstance(selection, InlineFragmentNode):
                total += selections(selection.selection_set, names)
            elif isinstance(selection, FragmentSpreadNode):
                total += fragment(selection.name.value)
            if total > max_fields:
                raise TooLarge(
                    f"the document selects more than {max_fields} fields once its "
                    "fragments are expanded"
                )
        return total

    total = 0
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            total += selection_set(definition.selection_set)
        if total > max_fields:
            raise TooLarge(
                f"the document selects more than {max_fields} fields once its fragments "
                "are expanded"
            )


class _Coding:
    """A rule's view of the validation context in which every error it reports
    carries `code` (some rules report to the context directly, not through
    `report_error` of the rule)."""

    def __init__(self, context: ASTValidationContext, code: str) -> None:
        self._context = context
        self._code = code

    def report_error(self, error: GraphQLError) -> None:
        error.extensions = {**(error.extensions or {}), "code": self._code}
        self._context.report_error(error)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def _coded(rule: type[ASTValidationRule], code: str) -> type[ASTValidationRule]:
    """`rule`, with every error it reports carrying `code`: codes from the rule that
    found the problem, not from the wording of its message."""

    class Coded(rule):  # type: ignore[misc, valid-type]
        def __init__(self, context: ASTValidationContext) -> None:
            super().__init__(_Coding(context, code))

    Coded.__name__ = Coded.__qualname__ = f"Coded{rule.__name__}"
    return Coded


def validation_rules(
    max_depth: int = MAX_DEPTH, *, introspection: bool = True
) -> tuple[type[ASTValidationRule], ...]:
    """The rules every document passes, built once per schema (the validation cache is
    keyed by the rule classes too). Without `introspection`, `__schema` and `__type`
    are refused."""
    rules = [*specified_rules]
    if not introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    return (
        *(_coded(rule, RULE_CODES.get(rule, VALIDATION_FAILED)) for rule in rules),
        _coded(create_depth_rule(max_depth, should_ignore=None), QUERY_TOO_COMPLEX),
        _coded(create_alias_rule(MAX_ALIASES), QUERY_TOO_COMPLEX),
    )


def parsed(text: str) -> DocumentNode:
    """The document of `text` within the token limit, from the parser cache a request's
    parse goes through (Strawberry's `ParserCache`, one LRU per size, keyed by the text
    and the parse options a request gets), so that a persisted query's admission, its
    first run and its compiled plan parse it once. The document is shared: read only."""
    document: DocumentNode = _PARSE(text, max_tokens=MAX_TOKENS)
    return document


_PARSE = ParserCache(maxsize=CACHE_SIZE).cached_parse_document


def passes(schema: GraphQLSchema, text: str, rules: tuple[type[ASTValidationRule], ...]) -> bool:
    """Whether a document gets past the token limit, the measure and `rules`: what a
    request's document passes before it runs (its variables aside)."""
    try:
        document = parsed(text)
        measure(document, MAX_COST, MAX_REPEATS)
    except (GraphQLError, TooLarge, RecursionError):
        return False
    return not validate(schema, document, rules)


def _refuse(context: Any, message: str, code: str, **extensions: Any) -> None:
    context.pre_execution_errors = [GraphQLError(message, extensions={"code": code, **extensions})]


class BoundedValidation(ValidationCache):
    """Measures the document, then validates it with the gateway's rules (cached).

    Also refuses, as the GraphQL spec asks, a document of several operations that does
    not name the one to run."""

    def __init__(self, rules: tuple[type[ASTValidationRule], ...], maxsize: int) -> None:
        super().__init__(maxsize=maxsize)
        self.rules = rules

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is None or context.pre_execution_errors:
            yield
            return
        try:
            measure(document, MAX_COST, MAX_REPEATS)
        except TooLarge as exc:
            _refuse(context, str(exc), QUERY_TOO_COMPLEX)
            yield
            return
        except RecursionError:
            _refuse(context, "the document nests too deeply", QUERY_TOO_COMPLEX)
            yield
            return
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if len(operations) > 1 and context._provided_operation_name is None:
            _refuse(
                context,
                "the document has several operations: name the one to run in operationName",
                BAD_USER_INPUT,
            )
            yield
            return
        context.validation_rules = self.rules
        yield from super().on_validate()


class QueryCost(SchemaExtension):
    """Refuses operations that cost more than `max_cost`; reports the cost."""

    def __init__(self, max_cost: int = MAX_COST) -> None:
        self.max_cost = max_cost
        self.cost: int | None = None

    def on_validate(self) -> Iterator[None]:
        self.measure()  # after `BoundedValidation`'s: only a valid document is costed
        OPERATION_EXTENSIONS.set(self.get_results())
        yield

    def measure(self) -> None:
        context = self.execution_context
        document = context.graphql_document
        if document is None or context.pre_execution_errors:
            return
        operation = _operation(document, context._provided_operation_name)
        schema: GraphQLSchema = context.schema._schema
        root = schema.get_root_type(operation.operation) if operation else None
        if operation is None or root is None:
            return
        variables = get_variable_values(
            schema, operation.variable_definitions or (), context.variables or {}, max_errors=1
        )
        if isinstance(variables, list):
            return  # the executor refuses the variables before anything runs
        self.cost = Costing(document, variables).selections(operation.selection_set, root)
        if self.cost > self.max_cost:
            _refuse(
                context,
                f"query cost {self.cost} exceeds the limit of {self.max_cost}",
                QUERY_TOO_COMPLEX,
                cost=self.cost,
            )

    def get_results(self) -> dict[str, Any]:
        if self.cost is None:
            return {}
        return {"cost": {"requested": self.cost, "limit": self.max_cost}}


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode) and (
            name is None or (definition.name is not None and definition.name.value == name)
        ):
            return definition
    return None


class Costing:
    """The cost of selections with the arguments the executor will use; a fragment is
    costed once per type it is spread on."""

    def __init__(self, document: DocumentNode, variables: VariableValues) -> None:
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.variables = variables
        self.costed: dict[tuple[str, str], int] = {}

    def selections(self, selection_set: SelectionSetNode | None, parent: GraphQLNamedType) -> int:
        if selection_set is None:
            return 0
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field(selection, parent)
            elif isinstance(selection, InlineFragmentNode):
                total += self.selections(selection.selection_set, parent)
            elif isinstance(selection, FragmentSpreadNode):
                total += self.fragment(selection.name.value, parent)
        return total

    def fragment(self, name: str, parent: GraphQLNamedType) -> int:
        key = (name, parent.name)
        if key not in self.costed:
            definition = self.fragments.get(name)
            self.costed[key] = 0  # a cycle, were one to pass validation, costs nothing more
            if definition is not None:
                self.costed[key] = self.selections(definition.selection_set, parent)
        return self.costed[key]

    def field(self, node: FieldNode, parent: GraphQLNamedType) -> int:
        fields = parent.fields if isinstance(parent, GraphQLObjectType) else {}
        definition = fields.get(node.name.value)
        if definition is None:  # __typename or introspection
            return 1 + self.selections(node.selection_set, parent)
        inner = self.selections(node.selection_set, get_named_type(definition.type))
        multiplier = 1
        if PAGE_ARGUMENT in definition.args:
            multiplier = cost_page(self.arguments(definition, node).get(PAGE_ARGUMENT))
        elif node.name.value == SERIES_FIELD and parent.name == "Query":
            arguments = self.arguments(definition, node)
            try:
                interval = Interval(arguments.get("interval", Interval.DAY))
                multiplier = most_buckets(arguments["from"], arguments["to"], interval)
            except (KeyError, ValueError, TypeError):
                multiplier = 1  # refused by the executor before anything runs
        return 1 + multiplier * inner

    def arguments(self, definition: GraphQLField, node: FieldNode) -> dict[str, Any]:
        try:
            return get_argument_values(definition, node, self.variables)
        except GraphQLError:
            return {}  # refused by the executor before anything runs
