"""Scheduled work, run as of a given instant: safe to repeat, safe to run late.

Dates come from the entries themselves (`occurredAt`), never from when the job ran, so a
job that runs a week late activates and expires exactly what it would have on time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from ledger import outbox, outbox_repository, postings, rules, tiers, write_repository
from ledger.models import (
    EntryKind,
    HoldStatus,
    LotStatus,
    Member,
)
from ledger.rewards import release_hold
from ledger.scope import LedgerScope

IDEMPOTENCY_RETENTION = timedelta(days=30)


@dataclass
class JobReport:
    activated: int = 0
    expired: int = 0
    expired_points: int = 0
    holds_released: int = 0
    birthdays: int = 0
    tier_changes: int = 0
    keys_purged: int = 0


async def run_jobs(scope: LedgerScope) -> JobReport:
    """Everything due as of `scope.now`, in an order that respects the dates: points become
    available before they can expire; holds come back before anything expires."""
    report = JobReport()
    await write_repository.lock_jobs(scope.session, scope.program_id)
    await _lock_accounts_with_work(scope)
    await _activate_pending(scope, report)
    await _release_stale_holds(scope, report)
    await _expire_lots(scope, report)
    await _birthday_bonuses(scope, report)
    await _reevaluate_tiers(scope, report)
    await _purge_idempotency_keys(scope, report)
    return report


async def _lock_accounts_with_work(scope: LedgerScope) -> None:
    """Lock every account this run is going to change, up front and in id order.

    Locked phase by phase, they would come in no overall order, and a request that locks
    two accounts in id order (a referred member's first purchase) could deadlock with the
    run. Stale holds come first, as capture and release lock them: hold, then account.
    """
    stale = await write_repository.stale_holds(
        scope.session, scope.program_id, scope.now, lock=True
    )
    due = await write_repository.due_lots(scope.session, scope.program_id, scope.now)
    expired = await write_repository.expired_lots(scope.session, scope.program_id, scope.now)
    member_ids = {hold.member_id for hold in stale}
    member_ids.update(lot.member_id for lot in [*due, *expired])
    member_ids.update(member.id for member in await _birthdays_due(scope))
    member_ids.update(member_id for member_id, _ in await _tier_changes(scope))
    if member_ids:
        await postings.lock(scope, *member_ids)


async def _activate_pending(scope: LedgerScope, report: JobReport) -> None:
    for lot in await write_repository.due_lots(scope.session, scope.program_id, scope.now):
        account = (await postings.lock(scope, lot.member_id))[lot.member_id]
        await scope.session.refresh(lot)  # a refund may have lowered it before the lock
        if lot.status != LotStatus.PENDING:
            continue
        points = lot.remaining
        await postings.activate(scope, account, lot)
        outbox.record(
            scope.session,
            scope.program_id,
            "points.activated",
            account,
            scope.now,
            {"lotId": str(lot.id), "points": points, "transactionId": str(lot.entry_id)},
        )
        await tiers.evaluate_tier(scope, account)
        report.activated += 1


async def _release_stale_holds(scope: LedgerScope, report: JobReport) -> None:
    for stale in await write_repository.stale_holds(scope.session, scope.program_id, scope.now):
        held = await write_repository.hold(
            scope.session, scope.program_id, stale.id
        )  # locked, fresh
        if held is None or held.status != HoldStatus.HELD:
            continue  # captured or released since we looked
        await release_hold(scope, held, HoldStatus.EXPIRED)
        report.holds_released += 1


async def _expire_lots(scope: LedgerScope, report: JobReport) -> None:
    """Remove what is left of each lot past its expiry: only unspent points."""
    for lot in await write_repository.expired_lots(scope.session, scope.program_id, scope.now):
        account = (await postings.lock(scope, lot.member_id))[lot.member_id]
        await scope.session.refresh(lot)  # spending may have changed it before the lock
        entry = await postings.expire_lot(scope, account, lot)
        if entry is None:
            continue
        outbox.record_entry(scope.session, entry, account, scope.now)
        report.expired += 1
        report.expired_points += -entry.points


async def _birthdays_due(scope: LedgerScope) -> list[Member]:
    if not scope.program.bonuses.birthday:
        return []
    today = scope.now.astimezone(scope.program.zone).date()
    due = []
    for member in await write_repository.birthday_candidates(
        scope.session, scope.program_id, today.year
    ):
        assert member.birthday is not None
        if not rules.birthday_due(member.birthday, today):
            continue
        if member.enrolled_at.astimezone(scope.program.zone).date() > rules.birthday_in(
            member.birthday, today.year
        ):
            continue  # enrolled after this year's birthday: the next one counts
        due.append(member)
    return due


async def _birthday_bonuses(scope: LedgerScope, report: JobReport) -> None:
    points = scope.program.bonuses.birthday
    today = scope.now.astimezone(scope.program.zone).date()
    for member in await _birthdays_due(scope):
        account = (await postings.lock(scope, member.id))[member.id]
        await scope.session.refresh(member)
        if member.last_birthday_year == today.year or member.birthday is None:
            continue
        if not postings.credit_fits(scope, account, points):
            continue  # a full account forgoes the bonus; the run goes on
        member.last_birthday_year = today.year
        entry, _ = await postings.credit(
            scope,
            account,
            EntryKind.BONUS,
            points,
            "birthday",
            reason="Birthday bonus",
            dedupe_key=f"birthday:{member.id}:{today.year}",
        )
        outbox.record_entry(scope.session, entry, account, scope.now)
        report.birthdays += 1


async def _tier_changes(scope: LedgerScope) -> list[tuple[int, int]]:
    """(member id, qualifying value) of the members whose tier no longer matches."""
    values = await tiers.qualifying_value(scope, None)
    changes = []
    for candidate in await write_repository.program_accounts(scope.session, scope.program_id):
        value = values.get(candidate.member_id, 0)
        if rules.tier_for(scope.program.tiers, value).name != candidate.tier:
            changes.append((candidate.member_id, value))
    return changes


async def _reevaluate_tiers(scope: LedgerScope, report: JobReport) -> None:
    for member_id, value in await _tier_changes(scope):
        account = (await postings.lock(scope, member_id))[member_id]
        tiers.set_tier(scope, account, value, allow_downgrade=True)
        report.tier_changes += 1


async def _purge_idempotency_keys(scope: LedgerScope, report: JobReport) -> None:
    report.keys_purged = await outbox_repository.purge_idempotency_records(
        scope.session, scope.program_id, scope.now - IDEMPOTENCY_RETENTION
    )
