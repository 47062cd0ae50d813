"""What every payload carries: the member a write changed, and business outcomes as
`userErrors` with the ledger's stable codes."""

from __future__ import annotations

from typing import Any

import strawberry

from ledger.commands import Outcome
from resolvers.context import Context


@strawberry.type
class UserError:
    code: str
    message: str
    field: list[str] | None = None


def user_errors(outcome: Outcome) -> list[UserError]:
    problem = outcome.problem
    if problem is None:
        return []
    return [UserError(code=problem.code, message=problem.message, field=problem.field)]


async def changed_member(ctx: Context, outcome: Outcome) -> Any:
    """The member a write changed, as the GraphQL `Member` (for payloads)."""
    if outcome.member_id is None or not outcome.ok:
        return None
    from schema.members import Member  # the member type is built from every other domain

    found = await ctx.loaders.any_member_by_id.load(outcome.member_id)
    return Member(model=found) if found is not None else None
