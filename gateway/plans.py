"""Compiled plans of hot read operations: the member read answered without
graphql-core's executor.

A document whose every selected field is *plannable* (`member(ref:)` and the member's
fields that come from the one row of member and account the read fetches: its scalars,
`points`, `tier`) gets a plan, built once per document text and operation name after the
normal path answered it without an error (so parse, the token limit, validation and the
cost limit all passed; none of them depends on the variables for these fields). A plan
coerces the variables with graphql-core's own function, applies the field's permission
classes and the resolvers' authorization (`resolvers.members.target`), reads the member
with the same repository function, and projects the row into the response in selection
order: aliases, `__typename`, fragments, @include/@skip per the variables, merged fields
as the executor merges them, every leaf serialized by its GraphQL type.

Anything the plan does not answer exactly as the executor would (an error of any kind, a
null where the schema says non-null) makes it give up, and the request goes the normal
way. Plans are bounded (an LRU), and the response's `extensions` are those the normal
path produced for the same document (the cost, which these fields' arguments do not
change).

This is written by hand because no library compiles a GraphQL document for a Strawberry
schema; graphql-core's `execute` is what it stands in for, and the Hypothesis test
`tests/gateway/test_plans.py` holds it equal to it.
"""

from __future__ import annotations

import copy
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLField,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
)
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values
from strawberry.permission import PermissionExtension
from strawberry.types import ExecutionResult

from ledger.models import Account, Member
from resolvers import members as members_resolvers
from resolvers import points as points_resolvers
from resolvers.context import Context
from schema.limits import parsed

log = logging.getLogger("loyalty.plans")

MAX_PLANS = 256
_SKIP, _INCLUDE = "skip", "include"

# The member's own fields: (context, member, account) -> the value the resolver returns.
MemberField = Callable[[Context, Member, Account | None], Any]


def _points(ctx: Context, member: Member, account: Account | None) -> dict[str, Any]:
    balance = points_resolvers.balance_of(member, account)
    return {
        "available": balance.available,
        "pending": balance.pending,
        "held": balance.held,
        "lifetimeEarned": balance.lifetime_earned,
    }


def _tier(program_tier: Any) -> dict[str, Any]:
    return {
        "name": program_tier.name,
        "threshold": program_tier.threshold,
        "earnMultiplier": program_tier.earn_multiplier,
    }


def _tier_status(ctx: Context, member: Member, account: Account | None) -> dict[str, Any]:
    current, upcoming = points_resolvers.tier_of(ctx.program, account)
    return {"current": _tier(current), "next": _tier(upcoming) if upcoming else None}


MEMBER_FIELDS: dict[str, MemberField] = {
    "id": lambda ctx, member, account: str(member.id),
    "customerId": lambda ctx, member, account: member.customer_id,
    "email": lambda ctx, member, account: members_resolvers.personal(ctx, member, member.email),
    "name": lambda ctx, member, account: members_resolvers.personal(ctx, member, member.name),
    "enrolledAt": lambda ctx, member, account: member.enrolled_at,
    "referralCode": lambda ctx, member, account: member.referral_code,
    "points": _points,
    "tier": _tier_status,
}
# The fields of the values the member's fields return, read from their dicts: each type
# and the fields a plan may select on it (all plain values, no resolver of their own).
PLAIN_FIELDS: dict[str, frozenset[str]] = {
    "Points": frozenset({"available", "pending", "held", "lifetimeEarned"}),
    "TierStatus": frozenset({"current", "next"}),
    "Tier": frozenset({"name", "threshold", "earnMultiplier"}),
}
ROOT_FIELDS = frozenset({"member"})


class GiveUp(Exception):
    """The plan cannot answer this request exactly: the normal executor will."""


@dataclass
class Plan:
    """One operation of one document, with what it needs at run time."""

    schema: GraphQLSchema
    operation: OperationDefinitionNode
    fragments: dict[str, FragmentDefinitionNode]
    extensions: dict[str, Any] | None
    permissions: list[Any]

    @property
    def name(self) -> str | None:
        return self.operation.name.value if self.operation.name else None

    async def run(
        self, ctx: Context, variables: Mapping[str, Any] | None
    ) -> ExecutionResult | None:
        """The result the executor would give, or None when the plan gives up."""
        if variables is not None and not isinstance(variables, dict):
            return None
        coerced = get_variable_values(
            self.schema, self.operation.variable_definitions or (), dict(variables or {}), 1
        )
        if isinstance(coerced, list):
            return None  # refused variables: the executor words the error
        try:
            data = await self._root(ctx, coerced)
        except GiveUp:
            return None
        except Exception:  # noqa: BLE001 - any refusal or failure: the normal path decides
            await _start_afresh(ctx)
            return None
        extensions = copy.deepcopy(self.extensions) if self.extensions else None
        return ExecutionResult(data=data, errors=None, extensions=extensions)

    async def _root(self, ctx: Context, variables: VariableValues) -> dict[str, Any]:
        values = variables.coerced
        query = self.schema.query_type
        assert query is not None
        data: dict[str, Any] = {}
        fields = self._collect(query, [self.operation.selection_set], values)
        # One member read is the request's only statement: no transaction around it.
        # Several share one read transaction, so that they see one moment.
        reads = sum(1 for nodes in fields.values() if nodes[0].name.value != "__typename")
        for key, nodes in fields.items():
            name = nodes[0].name.value
            if name == "__typename":
                data[key] = query.name
                continue
            definition = query.fields[name]
            for permission in self.permissions:
                if not permission.has_permission(None, _Info(ctx)):
                    raise GiveUp
            ref = get_argument_values(definition, nodes[0], variables)["ref"]
            reference = members_resolvers.Reference(
                id=str(ref["id"]) if ref.get("id") is not None else None,
                customer_id=ref.get("customerId"),
            )
            found = await members_resolvers.find_with_account(ctx, reference, only_read=reads == 1)
            if found is None:
                data[key] = None
                continue
            member, account = found
            data[key] = self._member(ctx, definition, nodes, values, member, account)
        return data

    def _member(
        self,
        ctx: Context,
        definition: GraphQLField,
        nodes: list[FieldNode],
        values: dict[str, Any],
        member: Member,
        account: Account | None,
    ) -> dict[str, Any]:
        member_type = get_named_type(definition.type)
        assert isinstance(member_type, GraphQLObjectType)
        answer: dict[str, Any] = {}
        for key, fields in self._collect(member_type, _subselections(nodes), values).items():
            name = fields[0].name.value
            if name == "__typename":
                answer[key] = member_type.name
                continue
            field = member_type.fields[name]
            value = MEMBER_FIELDS[name](ctx, member, account)
            answer[key] = self._complete(field, fields, values, value)
        return answer

    def _complete(
        self, field: GraphQLField, nodes: list[FieldNode], values: dict[str, Any], value: Any
    ) -> Any:
        """A value as the executor completes it: null checked against the type, a leaf
        serialized, an object projected onto its selections."""
        kind = field.type
        if value is None:
            if isinstance(kind, GraphQLNonNull):
                raise GiveUp  # the executor's answer would carry an error
            return None
        named = get_named_type(kind)
        if not isinstance(named, GraphQLObjectType):
            assert isinstance(named, GraphQLScalarType | GraphQLEnumType)
            serialized = named.serialize(value)
            if serialized is None:
                raise GiveUp
            return serialized
        answer: dict[str, Any] = {}
        for key, fields in self._collect(named, _subselections(nodes), values).items():
            name = fields[0].name.value
            if name == "__typename":
                answer[key] = named.name
            else:
                answer[key] = self._complete(named.fields[name], fields, values, value[name])
        return answer

    def _collect(
        self,
        parent: GraphQLObjectType,
        selection_sets: list[SelectionSetNode],
        values: dict[str, Any],
    ) -> OrderedDict[str, list[FieldNode]]:
        """The executor's field collection: by response key, in order, fragments
        inlined once each, @skip and @include applied."""
        fields: OrderedDict[str, list[FieldNode]] = OrderedDict()
        visited: set[str] = set()

        def collect(selection_set: SelectionSetNode) -> None:
            for selection in selection_set.selections:
                if not _included(selection, values):
                    continue
                if isinstance(selection, FieldNode):
                    key = selection.alias.value if selection.alias else selection.name.value
                    fields.setdefault(key, []).append(selection)
                elif isinstance(selection, InlineFragmentNode):
                    collect(selection.selection_set)
                elif isinstance(selection, FragmentSpreadNode):
                    name = selection.name.value
                    if name in visited:
                        continue
                    visited.add(name)
                    collect(self.fragments[name].selection_set)

        for selection_set in selection_sets:
            collect(selection_set)
        return fields


@dataclass
class _Info:
    """What the permission classes read of `info`: the context."""

    context: Context


async def _start_afresh(ctx: Context) -> None:
    """After a failure, the request's loaders and read transaction are dropped: the normal
    path then runs as if no plan had (and meets, and reports, whatever failed)."""
    try:
        await ctx.forget_loaded()  # the reader is dropped even when ending it fails
    except Exception:  # noqa: BLE001 - the normal path meets it again and answers for it
        log.warning("request %s: read transaction not ended after a plan", ctx.request_id)


def _subselections(nodes: list[FieldNode]) -> list[SelectionSetNode]:
    return [node.selection_set for node in nodes if node.selection_set is not None]


def _included(selection: Any, values: dict[str, Any]) -> bool:
    for directive in selection.directives or ():
        name = directive.name.value
        argument = directive.arguments[0].value
        flag = values.get(argument.name.value) if argument.kind == "variable" else argument.value
        if not isinstance(flag, bool):
            raise GiveUp  # a null `if`: the executor's error
        if (name == _SKIP and flag is True) or (name == _INCLUDE and flag is not True):
            return False
    return True


class Plans:
    """The plans of the documents seen, and the documents known to have none."""

    def __init__(self, schema: GraphQLSchema, maxsize: int = MAX_PLANS) -> None:
        self.schema = schema
        self.maxsize = maxsize
        self._plans: OrderedDict[tuple[str, str | None], Plan | None] = OrderedDict()
        member = schema.query_type.fields["member"] if schema.query_type else None
        definition = (member.extensions or {}).get("strawberry-definition") if member else None
        self.permissions: list[Any] = [
            permission
            for extension in getattr(definition, "extensions", ()) or ()
            if isinstance(extension, PermissionExtension)
            for permission in extension.permissions
        ]

    def find(self, query: object, operation_name: object) -> Plan | None:
        key = _key(query, operation_name)
        if key is None:
            return None
        plan = self._plans.get(key)
        if plan is not None:
            self._plans.move_to_end(key)
        return plan

    def known(self, query: object, operation_name: object) -> bool:
        key = _key(query, operation_name)
        return key is not None and key in self._plans

    def learn(self, query: object, operation_name: object, result: ExecutionResult) -> None:
        """After the normal path answered `query` without an error: its plan, or the
        note that it has none."""
        key = _key(query, operation_name)
        if key is None or result.errors or result.data is None:
            return
        self._plans[key] = self._build(*key, result)
        while len(self._plans) > self.maxsize:
            self._plans.popitem(last=False)

    def _build(
        self, query: str, operation_name: str | None, result: ExecutionResult
    ) -> Plan | None:
        if not self.permissions:
            return None
        try:
            document = parsed(query)  # the parse of its first run, from the cache
        except Exception:  # noqa: BLE001 - it did parse on the normal path; no plan then
            return None
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        if len(operations) + len(fragments) != len(document.definitions):
            return None
        chosen = [
            o
            for o in operations
            if operation_name is None or (o.name is not None and o.name.value == operation_name)
        ]
        if len(chosen) != 1 or chosen[0].operation != OperationType.QUERY:
            return None
        operation = chosen[0]
        if operation.directives:
            return None
        checker = _Checker(self.schema, fragments)
        if not checker.root(operation.selection_set):
            return None
        extensions = copy.deepcopy(result.extensions) if result.extensions else None
        return Plan(self.schema, operation, fragments, extensions, self.permissions)


def _key(query: object, operation_name: object) -> tuple[str, str | None] | None:
    """The key of a request's plan: a text, and a name or none (else no plan)."""
    if isinstance(query, str) and (operation_name is None or isinstance(operation_name, str)):
        return query, operation_name
    return None


class _Checker:
    """Whether every field a selection can reach is one a plan answers."""

    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode]):
        self.schema = schema
        self.fragments = fragments
        self.seen: set[tuple[str, str]] = set()

    def root(self, selection_set: SelectionSetNode) -> bool:
        query = self.schema.query_type
        assert query is not None
        return self.selections(selection_set, query, self.root_field)

    def root_field(self, node: FieldNode, parent: GraphQLObjectType) -> bool:
        if node.name.value not in ROOT_FIELDS or node.selection_set is None:
            return False
        if [a.name.value for a in node.arguments or ()] != ["ref"]:
            return False
        member = get_named_type(parent.fields[node.name.value].type)
        assert isinstance(member, GraphQLObjectType)
        return self.selections(node.selection_set, member, self.member_field)

    def member_field(self, node: FieldNode, parent: GraphQLObjectType) -> bool:
        name = node.name.value
        if name not in MEMBER_FIELDS or node.arguments:
            return False
        return self.plain(node, parent)

    def plain_field(self, node: FieldNode, parent: GraphQLObjectType) -> bool:
        if node.name.value not in PLAIN_FIELDS.get(parent.name, ()) or node.arguments:
            return False
        return self.plain(node, parent)

    def plain(self, node: FieldNode, parent: GraphQLObjectType) -> bool:
        field = parent.fields[node.name.value]
        if not _bare(field):
            return False
        named = get_named_type(field.type)
        if isinstance(named, GraphQLObjectType):
            if node.selection_set is None or named.name not in PLAIN_FIELDS:
                return False
            return self.selections(node.selection_set, named, self.plain_field)
        return node.selection_set is None

    def selections(
        self,
        selection_set: SelectionSetNode,
        parent: GraphQLObjectType,
        field: Callable[[FieldNode, GraphQLObjectType], bool],
    ) -> bool:
        for selection in selection_set.selections:
            if not all(_condition(d) for d in selection.directives or ()):
                return False
            if isinstance(selection, FieldNode):
                if selection.name.value == "__typename":
                    if selection.arguments or selection.selection_set is not None:
                        return False
                elif not field(selection, parent):
                    return False
                continue
            if isinstance(selection, InlineFragmentNode):
                inner = selection.selection_set
                condition = selection.type_condition
            elif isinstance(selection, FragmentSpreadNode):
                definition = self.fragments.get(selection.name.value)
                if definition is None or definition.directives:
                    return False
                if (selection.name.value, parent.name) in self.seen:
                    continue
                self.seen.add((selection.name.value, parent.name))
                inner = definition.selection_set
                condition = definition.type_condition
            else:
                return False
            # Only fragments on the very type: an interface or union condition is the
            # executor's to match.
            if condition is not None and condition.name.value != parent.name:
                return False
            if not self.selections(inner, parent, field):
                return False
        return True


def _bare(field: GraphQLField) -> bool:
    """Whether a field has no extension or permission of its own, which the plan would
    not apply (one added to a member field later sends its documents the normal way)."""
    definition = (field.extensions or {}).get("strawberry-definition")
    if definition is None:
        return True
    return not (
        getattr(definition, "extensions", None) or getattr(definition, "permission_classes", None)
    )


def _condition(directive: Any) -> bool:
    """@skip(if:) and @include(if:), with a literal or a variable."""
    if directive.name.value not in (_SKIP, _INCLUDE) or len(directive.arguments) != 1:
        return False
    argument = directive.arguments[0]
    return argument.name.value == "if" and argument.value.kind in ("variable", "boolean_value")
