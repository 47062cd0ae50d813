"""Tier standing: the qualifying value of members, and moving a member to the tier it
reaches (upgrades on any write, downgrades only when the scheduled jobs re-evaluate)."""

from __future__ import annotations

from ledger import orders_repository, outbox, rules
from ledger.models import Account
from ledger.scope import LedgerScope


async def qualifying_value(scope: LedgerScope, member_ids: list[int] | None) -> dict[int, int]:
    """The tier-qualifying value per member as of now (basis and window of the program)."""
    since = rules.qualifying_since(scope.now, scope.program.tiering.window_days)
    session, program_id = scope.session, scope.program_id
    if scope.program.tiering.basis == "points":
        return await orders_repository.qualifying_points(session, program_id, since, member_ids)
    cents = await orders_repository.qualifying_spend_cents(session, program_id, since, member_ids)
    return {member_id: rules.spend_value(value) for member_id, value in cents.items()}


async def evaluate_tier(
    scope: LedgerScope, account: Account, *, allow_downgrade: bool = False
) -> None:
    """Move the member to the tier its qualifying value reaches; upgrades on any write,
    downgrades only when the scheduled jobs re-evaluate."""
    values = await qualifying_value(scope, [account.member_id])
    set_tier(scope, account, values.get(account.member_id, 0), allow_downgrade=allow_downgrade)


def set_tier(scope: LedgerScope, account: Account, value: int, *, allow_downgrade: bool) -> None:
    tiers = scope.program.tiers
    reached = rules.tier_for(tiers, value)
    current = rules.tier_rank(tiers, account.tier)
    target = rules.tier_rank(tiers, reached.name)
    if target == current or (target < current and not allow_downgrade):
        return
    previous = account.tier
    account.tier = reached.name
    account.updated_at = scope.now
    outbox.record(
        scope.session,
        scope.program_id,
        "tier.changed",
        account,
        scope.now,
        {"from": previous, "to": reached.name, "qualifyingValue": value},
    )
