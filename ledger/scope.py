"""The scope of one ledger command or job run: one session, one program, one instant,
and the member lookups every command starts from.

(The GraphQL layer's request `Context` is another thing: `resolvers/context.py`.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from ledger import webhooks, write_repository
from ledger.errors import InvalidInput, UnknownMember
from ledger.models import Member
from ledger.program import Program


@dataclass
class LedgerScope:
    """What every command handler works with: one session, one program, one instant."""

    session: AsyncSession
    program: Program
    now: datetime

    def __post_init__(self) -> None:
        # The outbox writes a delivery per matching `[[webhooks]]` endpoint of the program.
        self.session.info[webhooks.PROGRAM_KEY] = self.program

    @property
    def program_id(self) -> str:
        return self.program.id


async def find_member(scope: LedgerScope, member_id: int | None, customer_id: str | None) -> Member:
    """The member a reference names, or UNKNOWN_MEMBER (another program's ids too)."""
    if (member_id is None) == (customer_id is None):
        raise InvalidInput("give exactly one of id and customerId", ["member"])
    if member_id is not None:
        member = await write_repository.member_by_id(scope.session, scope.program_id, member_id)
    else:
        assert customer_id is not None
        member = await write_repository.member_by_customer_id(
            scope.session, scope.program_id, customer_id
        )
    if member is None:
        raise UnknownMember("no such member in this program", ["member"])
    return member


async def ensure_not_forgotten(
    scope: LedgerScope, member_id: int, field: Sequence[str] | None = None
) -> None:
    """Refuse (UNKNOWN_MEMBER) a write on what a forgotten member left behind."""
    member = await write_repository.any_member(scope.session, scope.program_id, member_id)
    if member is None or member.forgotten_at is not None:
        raise UnknownMember("this belongs to a forgotten member", field)
