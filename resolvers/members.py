"""Members: who a reference names, who may see what, and pages of members."""

from __future__ import annotations

from dataclasses import dataclass

from auth import scopes
from auth.principals import Partner, Shopper
from backends.commerce.base import StoreOrder
from backends.crm.base import CrmProfile
from backends.errors import BackendError
from ledger import read_repository, rules
from ledger.commands import MemberRef
from ledger.models import Account, Member
from resolvers import pagination
from resolvers.context import Context
from resolvers.errors import BAD_USER_INPUT, FORBIDDEN, ApiError, BackendUnavailableError

MAX_CUSTOMER_ID = 255


@dataclass(frozen=True)
class Reference:
    """A MemberRef as the caller sent it: ids are strings on the wire."""

    id: str | None = None
    customer_id: str | None = None


def _member_id(text: str) -> int:
    """An id that cannot name a member (0) when the text is not one of ours."""
    return pagination.ascii_int(text) or 0


async def target(ctx: Context, ref: Reference | None) -> MemberRef:
    """The member a write is about. A member token may omit the reference (itself) or
    name itself; naming anyone else is FORBIDDEN, whether or not they exist."""
    principal = ctx.principal
    if isinstance(principal, Shopper):
        if ref is None or ref.customer_id == principal.customer_id:
            return MemberRef(customer_id=principal.customer_id)
        if ref.id is not None and ref.customer_id is None:
            me = await ctx.loaders.member_by_customer_id.load(principal.customer_id)
            if me is not None and str(me.id) == ref.id:
                return MemberRef(customer_id=principal.customer_id)
        raise ApiError("a member token reaches only its own member", FORBIDDEN)
    if ref is None:
        raise ApiError("member is required with a partner token", BAD_USER_INPUT)
    if (ref.id is None) == (ref.customer_id is None):
        raise ApiError("give exactly one of id and customerId", BAD_USER_INPUT)
    if ref.id is not None:
        return MemberRef(id=_member_id(ref.id))
    return MemberRef(customer_id=ref.customer_id)


async def find(ctx: Context, ref: Reference | None) -> Member | None:
    """The member a reference names in the caller's program, or None."""
    named = await target(ctx, ref)
    if named.id is not None:
        return await ctx.loaders.member_by_id.load(named.id)
    assert named.customer_id is not None
    if len(named.customer_id) > MAX_CUSTOMER_ID:
        return None
    return await ctx.loaders.member_by_customer_id.load(named.customer_id)


async def find_with_account(
    ctx: Context, ref: Reference | None, *, only_read: bool = False
) -> tuple[Member, Account | None] | None:
    """What `find` answers, with the member's account, read in one statement of the
    request's read transaction without the loaders (the compiled plans of
    `gateway.plans` read one member this way). `only_read`: the request reads nothing
    else, so the statement needs no transaction of its own (`Reader.run_one`)."""
    named = await target(ctx, ref)
    pid = ctx.program_id
    run = ctx.reader.run_one if only_read else ctx.reader.run
    if named.id is not None:
        member_id = named.id
        by_id = await run(lambda session: read_repository.members_by_ids(session, pid, [member_id]))
        return by_id.get(member_id)
    customer_id = named.customer_id
    assert customer_id is not None
    if len(customer_id) > MAX_CUSTOMER_ID or rules.text_problem(customer_id):
        return None  # names nobody: not asked (as the loaders do)
    by_customer = await run(
        lambda session: read_repository.members_by_customer_ids(session, pid, [customer_id])
    )
    return by_customer.get(customer_id)


async def me(ctx: Context) -> Member | None:
    principal = ctx.principal
    if not isinstance(principal, Shopper):
        raise ApiError("me needs a member token", FORBIDDEN)
    return await ctx.loaders.member_by_customer_id.load(principal.customer_id)


def may_see_personal_data(ctx: Context, member: Member) -> bool:
    principal = ctx.principal
    if isinstance(principal, Partner):
        return scopes.MEMBERS_PII in principal.scopes
    if isinstance(principal, Shopper):
        return principal.customer_id == member.customer_id
    return False


def personal(ctx: Context, member: Member, value: str | None) -> str | None:
    if not may_see_personal_data(ctx, member):
        raise ApiError("email and name need members:pii or the member's own token", FORBIDDEN)
    return value


async def members_page(
    ctx: Context, first: int | None, after: str | None, tier: str | None
) -> pagination.Page[Member]:
    size = pagination.page_size(first)
    after_id = pagination.decode_int("member", after)
    if tier is not None and rules.text_problem(tier):
        return pagination.page("member", [], size)  # names no tier: no member has it
    rows = await ctx.reader.run(
        lambda session: read_repository.members_page(
            session, ctx.program_id, tier, after_id, size + 1
        )
    )
    return pagination.page("member", rows, size)


MAX_ORDERS = 50


async def profile(ctx: Context, member: Member) -> CrmProfile | None:
    """The member's contact in the program's CRM (names: members:pii or the member
    itself); None when the program has no CRM or the CRM no such contact."""
    if not may_see_personal_data(ctx, member):
        raise ApiError("profile needs members:pii or the member's own token", FORBIDDEN)
    try:
        return await ctx.loaders.profile.load(member.customer_id)
    except BackendError as exc:
        raise BackendUnavailableError(exc.kind, "CRM", exc.reason) from None


async def orders(ctx: Context, member: Member, first: int | None) -> list[StoreOrder] | None:
    """The member's `first` newest orders in the program's store; None when the program
    has no store or the store no such customer."""
    size = 5 if first is None else first
    if not 1 <= size <= MAX_ORDERS:
        raise ApiError(f"first must be between 1 and {MAX_ORDERS}", BAD_USER_INPUT)
    try:
        return await ctx.loaders.orders.load((member.customer_id, size))
    except BackendError as exc:
        raise BackendUnavailableError(exc.kind, "store", exc.reason) from None
