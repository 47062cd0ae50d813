"""The root types and the schema, with its limits and caches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import strawberry
from graphql import ASTValidationRule
from strawberry.extensions import MaxTokensLimiter, ParserCache
from strawberry.schema.config import StrawberryConfig

from schema.limits import (
    CACHE_SIZE,
    MAX_DEPTH,
    MAX_TOKENS,
    BoundedValidation,
    QueryCost,
    passes,
    validation_rules,
)
from schema.members import MembersMutation, MembersQuery
from schema.points import PointsMutation
from schema.program import Long, LongScalar, ProgramQuery
from schema.rewards import RewardsMutation, RewardsQuery
from schema.scalars import SCALARS
from schema.subscriptions import SharedEventExecutor, Subscription
from schema.webhooks import WebhooksMutation, WebhooksQuery


@strawberry.type
class Query(MembersQuery, ProgramQuery, RewardsQuery, WebhooksQuery):
    pass


@strawberry.type
class Mutation(MembersMutation, PointsMutation, RewardsMutation, WebhooksMutation):
    pass


class GatewaySchema(strawberry.Schema):
    """Errors are logged by the gateway (the unexpected ones, with the request id), not
    here: a refused token or a bad variable is no reason for a traceback in the log."""

    rules: tuple[type[ASTValidationRule], ...] = ()  # what every document is validated by

    def runs(self, text: str) -> bool:
        """Whether the document `text` would run (parsed, within the limits, valid)."""
        return passes(self._schema, text, self.rules)

    def process_errors(self, errors: Any, execution_context: Any = None) -> None:
        return None


def build_schema(
    *,
    introspection: bool = True,
    extensions: Sequence[object] = (),
    max_depth: int = MAX_DEPTH,
) -> GatewaySchema:
    """The gateway's schema. Without introspection, suggestions are off too (the
    gateway strips them from every message: see `schema.errors`).
    `extensions` run first (the gateway's metrics)."""
    # One set of rule classes for the schema's life: the validation cache is keyed by
    # the rules too, and rules built per request would make every request a miss.
    rules = validation_rules(max_depth, introspection=introspection)
    chain: list[object] = [
        *extensions,
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: ParserCache(maxsize=CACHE_SIZE),  # the caches are shared across requests
        lambda: BoundedValidation(rules, maxsize=CACHE_SIZE),
        QueryCost,
    ]
    schema = GatewaySchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=chain,  # type: ignore[arg-type]
        scalar_overrides={**SCALARS, Long: LongScalar},
        config=StrawberryConfig(disable_field_suggestions=not introspection),
        execution_context_class=SharedEventExecutor,  # one rendering per event and selection
    )
    schema.rules = rules
    return schema


def sdl() -> str:
    """The SDL of the schema, as `loyalty-gateway schema` prints it."""
    return build_schema().as_str() + "\n"
