"""The rewards catalog, redemptions and checkout holds."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import timedelta

from ledger import outbox, postings, rules, write_repository
from ledger.commands import (
    CancelRedemption,
    CapturePoints,
    HoldPoints,
    Outcome,
    RedeemReward,
    ReleasePoints,
    UpsertReward,
    UseRedemption,
)
from ledger.errors import (
    InsufficientPoints,
    InvalidAmount,
    InvalidInput,
    InvalidState,
    LimitReached,
    OutOfStock,
    TierRequired,
    UnknownHold,
    UnknownRedemption,
    UnknownReward,
)
from ledger.models import (
    Account,
    EntryKind,
    Hold,
    HoldStatus,
    Redemption,
    RedemptionStatus,
    Reward,
)
from ledger.program import Program
from ledger.scope import LedgerScope, ensure_not_forgotten, find_member

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def redemption_code() -> str:
    """16 symbols of a 32-letter alphabet: 80 random bits, grouped for reading aloud."""
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(16))
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


async def seed_rewards(scope: LedgerScope) -> None:
    """Insert the program file's rewards that the catalog does not have yet."""
    for seed in scope.program.rewards:
        if await write_repository.reward(scope.session, scope.program_id, seed.id) is None:
            scope.session.add(
                Reward(
                    program_id=scope.program_id,
                    id=seed.id,
                    name=seed.name,
                    cost=seed.cost,
                    min_tier=seed.min_tier,
                    stock=seed.stock,
                    per_member_limit=seed.per_member_limit,
                    active=True,
                    created_at=scope.now,
                    updated_at=scope.now,
                )
            )
    await scope.session.flush()


def _check_reward(program: Program, command: UpsertReward) -> None:
    if not command.id or len(command.id) > 63 or not command.id.replace("-", "").isalnum():
        raise InvalidInput("id must be 1 to 63 letters, digits or dashes", ["id"])
    if not command.name.strip() or len(command.name) > 200:
        raise InvalidInput("name must have 1 to 200 characters", ["name"])
    if not 0 < command.cost <= rules.MAX_POINTS:
        raise InvalidAmount(f"cost must be between 1 and {rules.MAX_POINTS}", ["cost"])
    if command.min_tier is not None and command.min_tier not in {t.name for t in program.tiers}:
        raise InvalidInput(f"unknown tier {command.min_tier!r}", ["minTier"])
    if command.stock is not None and not 0 <= command.stock <= rules.MAX_POINTS:
        raise InvalidAmount("stock must not be negative", ["stock"])
    if command.per_member_limit is not None and not 0 < command.per_member_limit <= 10**6:
        raise InvalidAmount("perMemberLimit must be positive", ["perMemberLimit"])


async def upsert_reward(scope: LedgerScope, command: UpsertReward) -> Reward:
    """Create or replace a catalog entry: a put, idempotent by its id. Two first puts of
    one id at once: the insert of the second collides with the first's (and waits for it
    to commit, on PostgreSQL); it then reads the committed row and updates it."""
    _check_reward(scope.program, command)
    reward = await write_repository.reward(scope.session, scope.program_id, command.id)
    if reward is None:
        new = _replaced(
            Reward(program_id=scope.program_id, id=command.id, created_at=scope.now),
            command,
            scope,
        )
        if await write_repository.insert_new(scope.session, new):
            return new
        reward = await write_repository.reward(
            scope.session, scope.program_id, command.id, fresh=True
        )
        assert reward is not None  # the row the other put inserted, and committed
    _replaced(reward, command, scope)
    await scope.session.flush()
    return reward


def _replaced(reward: Reward, command: UpsertReward, scope: LedgerScope) -> Reward:
    reward.name = command.name
    reward.cost = command.cost
    reward.min_tier = command.min_tier
    reward.stock = command.stock
    reward.per_member_limit = command.per_member_limit
    reward.active = command.active
    reward.updated_at = scope.now
    return reward


async def redeem(scope: LedgerScope, command: RedeemReward) -> Outcome:
    member = await find_member(scope, command.member.id, command.member.customer_id)
    reward = await write_repository.reward(scope.session, scope.program_id, command.reward_id)
    if reward is None or not reward.active:
        raise UnknownReward(f"no reward {command.reward_id!r} in this program", ["rewardId"])
    account = (await postings.lock(scope, member.id))[member.id]
    if not rules.tier_reaches(scope.program.tiers, account.tier, reward.min_tier):
        raise TierRequired(f"{reward.name} needs tier {reward.min_tier}", ["rewardId"])
    if reward.per_member_limit is not None:
        taken = await write_repository.active_redemptions(scope.session, member.id, reward.id)
        if not rules.within_limit(reward.per_member_limit, taken):
            raise LimitReached(f"at most {reward.per_member_limit} per member", ["rewardId"])
    if account.available < reward.cost:
        raise InsufficientPoints(
            f"{reward.name} costs {reward.cost}; {account.available} available", ["rewardId"]
        )
    if reward.stock is not None and not await write_repository.take_stock(
        scope.session, scope.program_id, reward.id
    ):
        raise OutOfStock(f"{reward.name} is out of stock", ["rewardId"])
    entry, allocations = await postings.debit(
        scope, account, EntryKind.REDEEM, reward.cost, "redemption", reason=f"Reward {reward.name}"
    )
    redemption = Redemption(
        program_id=scope.program_id,
        member_id=member.id,
        reward_id=reward.id,
        points=reward.cost,
        code=redemption_code(),
        status=RedemptionStatus.ISSUED,
        created_at=scope.now,
        entry_id=entry.id,
        allocations=allocations,
    )
    scope.session.add(redemption)
    await scope.session.flush()
    outbox.record_entry(
        scope.session,
        entry,
        account,
        scope.now,
        type_="reward.redeemed",
        extra={"rewardId": reward.id, "redemptionId": str(redemption.id)},
    )
    return Outcome(
        member_id=member.id, entry_id=entry.id, redemption_id=redemption.id, redemption=redemption
    )


async def use(scope: LedgerScope, command: UseRedemption) -> Outcome:
    redemption = await write_repository.redemption(
        scope.session, scope.program_id, code=command.code
    )
    if redemption is None:
        raise UnknownRedemption("no redemption has this code", ["code"])
    await ensure_not_forgotten(scope, redemption.member_id, ["code"])
    if redemption.status != RedemptionStatus.ISSUED:
        raise InvalidState(f"the redemption is {redemption.status}", ["code"])
    redemption.status = RedemptionStatus.USED
    redemption.used_at = scope.now
    redemption.used_order_id = command.order_id
    account = (await postings.lock(scope, redemption.member_id))[redemption.member_id]
    outbox.record(
        scope.session,
        scope.program_id,
        "redemption.used",
        account,
        scope.now,
        {"redemptionId": str(redemption.id), "orderId": command.order_id},
    )
    return Outcome(member_id=redemption.member_id, redemption_id=redemption.id)


async def cancel(scope: LedgerScope, command: CancelRedemption) -> Outcome:
    redemption = await write_repository.redemption(
        scope.session, scope.program_id, redemption_id=command.redemption_id
    )
    if redemption is None:
        raise UnknownRedemption("no such redemption", ["redemptionId"])
    await ensure_not_forgotten(scope, redemption.member_id, ["redemptionId"])
    if redemption.status != RedemptionStatus.ISSUED:
        raise InvalidState(f"the redemption is {redemption.status}", ["redemptionId"])
    account = (await postings.lock(scope, redemption.member_id))[redemption.member_id]
    entry_id = await cancel_redemption(scope, redemption, account, field=["redemptionId"])
    return Outcome(member_id=redemption.member_id, entry_id=entry_id, redemption_id=redemption.id)


async def cancel_redemption(
    scope: LedgerScope,
    redemption: Redemption,
    account: Account,
    *,
    bounded: bool = True,
    field: Sequence[str] | None = None,
) -> int:
    """Return an issued redemption's points and stock; the CANCEL entry's id.
    `bounded`: refuse a return beyond the balance bounds (an erasure does not)."""
    entry = await postings.cancel(
        scope,
        account,
        redemption.points,
        redemption.allocations,
        reason=f"Cancelled redemption {redemption.id}",
        bounded=bounded,
        field=field,
    )
    await write_repository.return_stock(scope.session, scope.program_id, redemption.reward_id)
    redemption.status = RedemptionStatus.CANCELLED
    redemption.cancelled_at = scope.now
    outbox.record_entry(
        scope.session, entry, account, scope.now, extra={"redemptionId": str(redemption.id)}
    )
    return entry.id


async def hold(scope: LedgerScope, command: HoldPoints) -> Outcome:
    if not 0 < command.points <= rules.MAX_POINTS:
        raise InvalidAmount(f"points must be between 1 and {rules.MAX_POINTS}", ["points"])
    if not command.order_id.strip() or len(command.order_id) > 255:
        raise InvalidInput("orderId must have 1 to 255 characters", ["orderId"])
    member = await find_member(scope, command.member.id, command.member.customer_id)
    account = (await postings.lock(scope, member.id))[member.id]
    allocations = await postings.hold(scope, account, command.points, field=["points"])
    held = Hold(
        program_id=scope.program_id,
        member_id=member.id,
        order_id=command.order_id,
        points=command.points,
        discount=rules.hold_discount(command.points, scope.program.point_value),
        status=HoldStatus.HELD,
        created_at=scope.now,
        expires_at=scope.now + timedelta(minutes=scope.program.hold_minutes),
        allocations=allocations,
    )
    scope.session.add(held)
    await scope.session.flush()
    outbox.record_hold(scope.session, held, account, scope.now, outbox.HOLD)
    return Outcome(member_id=member.id, hold_id=held.id)


async def _open_hold(scope: LedgerScope, hold_id: int, owner: str | None = None) -> Hold:
    """The hold to resolve. With `owner` (a member's own request), a hold of anyone else
    is answered exactly as one that does not exist: same code, same message."""
    held = await write_repository.hold(scope.session, scope.program_id, hold_id)
    if held is not None and owner is not None:
        member = await write_repository.member_by_customer_id(
            scope.session, scope.program_id, owner
        )
        if member is None or member.id != held.member_id:
            held = None
    if held is None:
        raise UnknownHold("no such hold", ["holdId"])
    await ensure_not_forgotten(scope, held.member_id, ["holdId"])
    if held.status != HoldStatus.HELD:
        raise InvalidState(f"the hold is {held.status}", ["holdId"])
    if held.expires_at <= scope.now:
        raise InvalidState("the hold expired", ["holdId"])
    return held


async def capture(scope: LedgerScope, command: CapturePoints) -> Outcome:
    held = await _open_hold(scope, command.hold_id)
    account = (await postings.lock(scope, held.member_id))[held.member_id]
    entry = await postings.capture(
        scope,
        account,
        held.points,
        order_id=held.order_id,
        reason=f"Checkout discount on {held.order_id}",
    )
    held.status = HoldStatus.CAPTURED
    held.resolved_at = scope.now
    held.entry_id = entry.id
    outbox.record_entry(scope.session, entry, account, scope.now, extra={"holdId": str(held.id)})
    return Outcome(member_id=held.member_id, entry_id=entry.id, hold_id=held.id)


async def release(scope: LedgerScope, command: ReleasePoints) -> Outcome:
    held = await _open_hold(scope, command.hold_id, command.owner)
    await release_hold(scope, held, HoldStatus.RELEASED)
    return Outcome(member_id=held.member_id, hold_id=held.id)


async def release_hold(scope: LedgerScope, held: Hold, status: HoldStatus) -> None:
    """Give a hold's points back (released by the caller, or expired by the jobs)."""
    account = (await postings.lock(scope, held.member_id))[held.member_id]
    await postings.release_hold(scope, account, held.points, held.allocations)
    held.status = status
    held.resolved_at = scope.now
    outbox.record_hold(scope.session, held, account, scope.now, outbox.RELEASE)


def redeemable_now(
    program: Program,
    catalog: Sequence[Reward],
    account: Account | None,
    redeemed: Mapping[str, int],
) -> list[Reward]:
    """The rewards of `catalog` the account's member could redeem now (`rules.redeemable_now`:
    tier, stock, per-member limit, balance); none for a member without an account."""
    if account is None:
        return []
    return rules.redeemable_now(catalog, program.tiers, account.tier, account.available, redeemed)
