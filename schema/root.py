"""The root types and the schema, with its limits and caches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import strawberry
from graphql import ASTValidationRule
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxTokensLimiter,
    ParserCache,
    ValidationCache,
)
from strawberry.extensions.max_aliases import create_validator as create_alias_rule
from strawberry.extensions.query_depth_limiter import create_validator as create_depth_rule
from strawberry.schema.config import StrawberryConfig

from schema.extensions import MAX_ALIASES, MAX_DEPTH, MAX_TOKENS, QueryCost
from schema.members import MembersMutation, MembersQuery
from schema.points import PointsMutation
from schema.program import Long, LongScalar, ProgramQuery
from schema.rewards import RewardsMutation, RewardsQuery
from schema.scalars import SCALARS

CACHE_SIZE = 256


@strawberry.type
class Query(MembersQuery, ProgramQuery, RewardsQuery):
    pass


@strawberry.type
class Mutation(MembersMutation, PointsMutation, RewardsMutation):
    pass


class GatewaySchema(strawberry.Schema):
    """Errors are logged by the gateway (the unexpected ones, with the request id), not
    here: a refused token or a bad variable is no reason for a traceback in the log."""

    def process_errors(self, errors: Any, execution_context: Any = None) -> None:
        return None


def build_schema(
    *,
    introspection: bool = True,
    extensions: Sequence[object] = (),
    max_depth: int = MAX_DEPTH,
) -> strawberry.Schema:
    """The gateway's schema. Without introspection, field suggestions are off too.
    `extensions` run first (the gateway's metrics)."""
    rules: list[type[ASTValidationRule]] = [
        create_depth_rule(max_depth, should_ignore=None),
        create_alias_rule(MAX_ALIASES),
    ]
    chain: list[object] = [
        *extensions,
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: ParserCache(maxsize=CACHE_SIZE),  # the caches are shared across requests
        # One set of rule classes for the schema's life: the validation cache is keyed by
        # the rules too, and limiters built per request would make every request a miss.
        lambda: AddValidationRules(rules),
        lambda: ValidationCache(maxsize=CACHE_SIZE),
        QueryCost,
    ]
    if not introspection:
        chain.append(DisableIntrospection)
    return GatewaySchema(
        query=Query,
        mutation=Mutation,
        extensions=chain,  # type: ignore[arg-type]
        scalar_overrides={**SCALARS, Long: LongScalar},
        config=StrawberryConfig(disable_field_suggestions=not introspection),
    )


def sdl() -> str:
    """The SDL of the schema, as `loyalty-gateway schema` prints it."""
    return build_schema().as_str() + "\n"
