"""Postings: the only code that changes a member's balances or a lot's remaining points.

Every command and job that moves points calls one function here (`credit`, `debit`,
`hold`, `capture`, `release_hold`, `cancel`, `reverse`, `activate`, `expire_lot`), each
of which writes the entry and the balance change together, after `lock` has locked the
accounts in id order. The invariants of DESIGN §8 kept here, and nowhere else:

1. `available + pending + held` equals the sum of the member's entries: each posting
   writes its entry with the change, and a hold or its release only moves points
   between `available` and `held`. The unspent points of available lots add up to
   `max(available, 0)`; a credit while the balance is negative first pays that debt.
2. `available >= 0` and `held >= 0`: a debit or a hold beyond `available` is refused
   (INSUFFICIENT_POINTS) unless a `points:adjust` caller allowed a negative balance;
   `held` only ever gives back what a hold took.
4. A refund's reversal takes back at most what is left of what the order earned and
   is still available (the rest is recorded as unrecovered); expiry removes only the
   unspent points of a lot.

And the balance bounds (`rules.balance_problem`): a change that would leave available,
pending, held, their sum or lifetime earned beyond them is INVALID_AMOUNT, refused
before anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ledger import rules, write_repository
from ledger.errors import InsufficientPoints, InvalidAmount
from ledger.models import Account, Entry, EntryKind, EntryStatus, Lot, LotStatus
from ledger.scope import LedgerScope

Allocations = list[list[int]]
LOT_BATCH = 50


def balances(account: Account) -> rules.Balances:
    return rules.Balances(account.available, account.pending, account.held, account.lifetime_earned)


def check_balances(after: rules.Balances, field: Sequence[str] | None = None) -> None:
    """Refuse (INVALID_AMOUNT) a change that would leave balances beyond their bounds."""
    problem = rules.balance_problem(after)
    if problem:
        raise InvalidAmount(problem, field)


def credit_fits(
    scope: LedgerScope, account: Account, points: int, *, pending_until: datetime | None = None
) -> bool:
    """Whether a credit of `points` keeps the account within its bounds."""
    is_pending = pending_until is not None and pending_until > scope.now
    after = rules.credited(balances(account), points, pending=is_pending, earned=True)
    return points <= rules.MAX_POINTS and rules.balance_problem(after) is None


async def lock(scope: LedgerScope, *member_ids: int) -> dict[int, Account]:
    """Lock the accounts (in id order) before any balance changes."""
    accounts = await write_repository.lock_accounts(scope.session, member_ids)
    return {account.member_id: account for account in accounts}


async def _add_entry(
    scope: LedgerScope,
    account: Account,
    kind: EntryKind,
    points: int,
    source: str,
    *,
    status: EntryStatus = EntryStatus.AVAILABLE,
    occurred_at: datetime | None = None,
    order_id: str | None = None,
    reason: str | None = None,
    available_at: datetime | None = None,
    expires_at: datetime | None = None,
    lot_id: int | None = None,
    dedupe_key: str | None = None,
    details: dict[str, Any] | None = None,
) -> Entry:
    new = Entry(
        program_id=scope.program_id,
        member_id=account.member_id,
        kind=kind,
        points=points,
        status=status,
        source=source,
        order_id=order_id,
        reason=reason,
        occurred_at=occurred_at or scope.now,
        available_at=available_at,
        expires_at=expires_at,
        created_at=scope.now,
        lot_id=lot_id,
        dedupe_key=dedupe_key,
        details=details,
    )
    return await write_repository.insert_row(scope.session, new)


async def credit(
    scope: LedgerScope,
    account: Account,
    kind: EntryKind,
    points: int,
    source: str,
    *,
    occurred_at: datetime | None = None,
    pending_until: datetime | None = None,
    order_id: str | None = None,
    reason: str | None = None,
    dedupe_key: str | None = None,
    counts_as_earned: bool = True,
    field: Sequence[str] | None = None,
) -> tuple[Entry, Lot]:
    """Credit `points` as a new lot: pending until `pending_until`, else available now.

    The lot expires `expiry_days` after it becomes available, reckoned from `occurred_at`.
    A credit that would take the balances beyond their bounds is INVALID_AMOUNT (`field`),
    refused before anything is written.
    """
    occurred = occurred_at or scope.now
    available = pending_until if pending_until is not None else occurred
    is_pending = available > scope.now
    if points > rules.MAX_POINTS:
        raise InvalidAmount(f"one entry may credit at most {rules.MAX_POINTS} points", field)
    check_balances(
        rules.credited(balances(account), points, pending=is_pending, earned=counts_as_earned),
        field,
    )
    expires = rules.expires_at(available, scope.program.expiry_days)
    lot = await write_repository.insert_row(
        scope.session,
        Lot(
            program_id=scope.program_id,
            member_id=account.member_id,
            points=points,
            remaining=points,
            status=LotStatus.PENDING if is_pending else LotStatus.AVAILABLE,
            available_at=available,
            expires_at=expires,
        ),
    )
    entry = await _add_entry(
        scope,
        account,
        kind,
        points,
        source,
        status=EntryStatus.PENDING if is_pending else EntryStatus.AVAILABLE,
        occurred_at=occurred,
        order_id=order_id,
        reason=reason,
        available_at=available,
        expires_at=expires,
        lot_id=lot.id,
        dedupe_key=dedupe_key,
    )
    # Two Core UPDATEs, no unit-of-work flush (the hot path of every purchase).
    if is_pending:
        await write_repository.update_row(scope.session, lot, entry_id=entry.id)
        await write_repository.update_row(
            scope.session, account, pending=account.pending + points, updated_at=scope.now
        )
        return entry, lot
    remaining = _receive(account, points)
    await write_repository.update_row(scope.session, lot, entry_id=entry.id, remaining=remaining)
    if counts_as_earned:
        account.lifetime_earned += points
    account.updated_at = scope.now
    return entry, lot


def _receive(account: Account, points: int) -> int:
    """Add `points` to `available`; returns what is left for lots once any debt is paid."""
    debt = max(0, -account.available)
    account.available += points
    return points - min(debt, points)


def _refuse_overspend(
    account: Account, points: int, allow_negative: bool, field: Sequence[str] | None
) -> None:
    """Invariant 2: no debit below zero unless a points:adjust caller allowed it."""
    if account.available < points and not allow_negative:
        raise InsufficientPoints(f"{account.available} points available, {points} asked", field)
    check_balances(rules.debited(balances(account), points), field)


async def _take(
    scope: LedgerScope,
    account: Account,
    points: int,
    *,
    allow_negative: bool = False,
    first: Lot | None = None,
) -> Allocations:
    """Take `points` from available lots, the first to expire first (`first` before all).

    The balance has been checked unless `allow_negative`; the lots then give what they
    have and `available` goes below zero.
    """
    allocations: Allocations = []
    left = points
    if first is not None and first.status == LotStatus.AVAILABLE and first.remaining:
        take = min(first.remaining, left)
        first.remaining -= take
        left -= take
        allocations.append([first.id, take])
    while left:
        # Autoflush writes the lots emptied so far, so each batch starts after them.
        lots = await write_repository.spendable_lots(scope.session, account.member_id, LOT_BATCH)
        for lot in lots:
            take = min(lot.remaining, left)
            lot.remaining -= take
            left -= take
            allocations.append([lot.id, take])
            if not left:
                break
        if len(lots) < LOT_BATCH:
            break
    if left and not allow_negative:
        raise AssertionError("debit beyond the lots of a checked balance")
    account.available -= points
    account.updated_at = scope.now
    return allocations


async def debit(
    scope: LedgerScope,
    account: Account,
    kind: EntryKind,
    points: int,
    source: str,
    *,
    reason: str | None = None,
    allow_negative: bool = False,
    field: Sequence[str] | None = None,
) -> tuple[Entry, Allocations]:
    """Spend `points` of `available` (a redemption, a negative adjustment) with its entry;
    the allocations say which lots gave them, for a cancel to give them back.

    More than is available is INSUFFICIENT_POINTS (`field`) unless `allow_negative`;
    a debt beyond the bounds is INVALID_AMOUNT. Both are refused before any write.
    """
    _refuse_overspend(account, points, allow_negative, field)
    allocations = await _take(scope, account, points, allow_negative=allow_negative)
    entry = await _add_entry(scope, account, kind, -points, source, reason=reason)
    return entry, allocations


async def _restore(scope: LedgerScope, account: Account, allocations: Allocations) -> None:
    """Give points back to the lots they were taken from (a cancel or a release).

    A lot that expired meanwhile becomes available again so the next job expires it
    with its own entry; points never outlive their lot.
    """
    total = sum(points for _, points in allocations)
    to_lots = _receive(account, total)
    lots = await write_repository.lots_by_ids(scope.session, [lot_id for lot_id, _ in allocations])
    skip = total - to_lots
    for lot_id, points in allocations:
        give = max(0, points - skip)
        skip = max(0, skip - points)
        lot = lots[lot_id]
        lot.remaining += give
        if give and lot.status == LotStatus.EXPIRED:
            lot.status = LotStatus.AVAILABLE
    account.updated_at = scope.now


async def cancel(
    scope: LedgerScope,
    account: Account,
    points: int,
    allocations: Allocations,
    *,
    reason: str,
    bounded: bool = True,
    field: Sequence[str] | None = None,
) -> Entry:
    """A cancelled redemption: its points go back to the lots that gave them, with a
    CANCEL entry. `bounded`: refuse (INVALID_AMOUNT) a return beyond the bounds; an
    erasure does not (MAX_BALANCE leaves room for what comes back)."""
    if bounded:
        check_balances(
            rules.credited(balances(account), points, pending=False, earned=False), field
        )
    await _restore(scope, account, allocations)
    return await _add_entry(scope, account, EntryKind.CANCEL, points, "redemption", reason=reason)


async def hold(
    scope: LedgerScope, account: Account, points: int, *, field: Sequence[str] | None = None
) -> Allocations:
    """Move `points` from available to held (a checkout hold); no entry until captured.
    More than is available is INSUFFICIENT_POINTS (`field`)."""
    _refuse_overspend(account, points, False, field)
    allocations = await _take(scope, account, points)
    account.held += points
    return allocations


def _unhold(account: Account, points: int) -> None:
    if points > account.held:
        raise AssertionError("a hold gives back more than is held")
    account.held -= points


async def capture(
    scope: LedgerScope, account: Account, points: int, *, order_id: str, reason: str
) -> Entry:
    """A captured hold: its held points are spent, with a REDEEM entry."""
    _unhold(account, points)
    return await _add_entry(
        scope, account, EntryKind.REDEEM, -points, "hold", order_id=order_id, reason=reason
    )


async def release_hold(
    scope: LedgerScope, account: Account, points: int, allocations: Allocations
) -> None:
    """A released or expired hold: its points go back to available and to their lots."""
    _unhold(account, points)
    await _restore(scope, account, allocations)


async def reverse(
    scope: LedgerScope, account: Account, lot: Lot, due: int, *, order_id: str, reason: str
) -> Entry:
    """Take back `due` points of what an order's `lot` credited (a refund), with a REFUND
    entry. A pending lot gives them from pending; an available one from available, its
    own lot first, never below zero: what cannot be taken is recorded as unrecovered."""
    if lot.status == LotStatus.PENDING:
        taken = due
        lot.remaining -= taken
        account.pending -= taken
        status = EntryStatus.PENDING
    else:
        taken = min(due, max(account.available, 0))
        await _take(scope, account, taken, first=lot)
        account.lifetime_earned -= taken
        status = EntryStatus.AVAILABLE
    return await _add_entry(
        scope,
        account,
        EntryKind.REFUND,
        -taken,
        "refund",
        status=status,
        order_id=order_id,
        reason=reason,
        lot_id=lot.id,
        details={"due": due, "unrecovered": due - taken},
    )


async def activate(scope: LedgerScope, account: Account, lot: Lot) -> None:
    """A pending lot becomes available: its points move from pending to available."""
    lot.status = LotStatus.AVAILABLE
    account.pending -= lot.remaining
    account.lifetime_earned += lot.remaining
    lot.remaining = _receive(account, lot.remaining)
    account.updated_at = scope.now
    await write_repository.mark_lot_entries(scope.session, lot.id, EntryStatus.AVAILABLE)


async def expire_lot(scope: LedgerScope, account: Account, lot: Lot) -> Entry | None:
    """What is left of an available lot past its expiry leaves `available`, with an
    EXPIRE entry dated at the expiry; None when nothing was left (or it is not available).
    Spent points are not touched: they left with the entries that spent them."""
    if lot.status != LotStatus.AVAILABLE or lot.expires_at is None:
        return None
    lot.status = LotStatus.EXPIRED
    if not lot.remaining:
        return None
    points = lot.remaining
    lot.remaining = 0
    account.available -= points
    account.updated_at = scope.now
    entry = await _add_entry(
        scope,
        account,
        EntryKind.EXPIRE,
        -points,
        "expiry",
        occurred_at=lot.expires_at,
        reason="Points expired",
        details={"lotId": lot.id},
    )
    if lot.entry_id is not None:
        credited = await scope.session.get(Entry, lot.entry_id)
        if credited is not None:
            credited.status = EntryStatus.EXPIRED
    return entry
