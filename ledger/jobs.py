"""Scheduled work, run as of a given instant: safe to repeat, safe to run late.

Dates come from the entries themselves (`occurredAt`), never from when the job ran, so a
job that runs a week late activates and expires exactly what it would have on time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete

from ledger import book, outbox, repository, rules
from ledger.book import Context
from ledger.models import (
    Entry,
    EntryKind,
    EntryStatus,
    HoldStatus,
    IdempotencyRecord,
    LotStatus,
    Member,
)
from ledger.rewards import release_hold

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


async def run_jobs(ctx: Context) -> JobReport:
    """Everything due as of `ctx.now`, in an order that respects the dates: points become
    available before they can expire; holds come back before anything expires."""
    report = JobReport()
    await repository.lock_jobs(ctx.session, ctx.program_id)
    await _lock_accounts_with_work(ctx)
    await _activate_pending(ctx, report)
    await _release_stale_holds(ctx, report)
    await _expire_lots(ctx, report)
    await _birthday_bonuses(ctx, report)
    await _reevaluate_tiers(ctx, report)
    await _purge_idempotency_keys(ctx, report)
    return report


async def _lock_accounts_with_work(ctx: Context) -> None:
    """Lock every account this run is going to change, up front and in id order.

    Locked phase by phase, they would come in no overall order, and a request that locks
    two accounts in id order (a referred member's first purchase) could deadlock with the
    run. Stale holds come first, as capture and release lock them: hold, then account.
    """
    stale = await repository.stale_holds(ctx.session, ctx.program_id, ctx.now, lock=True)
    due = await repository.due_lots(ctx.session, ctx.program_id, ctx.now)
    expired = await repository.expired_lots(ctx.session, ctx.program_id, ctx.now)
    member_ids = {hold.member_id for hold in stale}
    member_ids.update(lot.member_id for lot in [*due, *expired])
    member_ids.update(member.id for member in await _birthdays_due(ctx))
    member_ids.update(member_id for member_id, _ in await _tier_changes(ctx))
    if member_ids:
        await book.lock(ctx, *member_ids)


async def _activate_pending(ctx: Context, report: JobReport) -> None:
    for lot in await repository.due_lots(ctx.session, ctx.program_id, ctx.now):
        account = (await book.lock(ctx, lot.member_id))[lot.member_id]
        await ctx.session.refresh(lot)  # a refund may have lowered it before the lock
        if lot.status != LotStatus.PENDING:
            continue
        points = lot.remaining
        await book.activate(ctx, account, lot)
        outbox.record(
            ctx.session,
            ctx.program_id,
            "points.activated",
            account,
            ctx.now,
            {"lotId": str(lot.id), "points": points, "transactionId": str(lot.entry_id)},
        )
        await book.evaluate_tier(ctx, account)
        report.activated += 1


async def _release_stale_holds(ctx: Context, report: JobReport) -> None:
    for stale in await repository.stale_holds(ctx.session, ctx.program_id, ctx.now):
        held = await repository.hold(ctx.session, ctx.program_id, stale.id)  # locked, fresh
        if held is None or held.status != HoldStatus.HELD:
            continue  # captured or released since we looked
        await release_hold(ctx, held, HoldStatus.EXPIRED)
        report.holds_released += 1


async def _expire_lots(ctx: Context, report: JobReport) -> None:
    """Remove what is left of each lot past its expiry: only unspent points."""
    for lot in await repository.expired_lots(ctx.session, ctx.program_id, ctx.now):
        assert lot.expires_at is not None
        account = (await book.lock(ctx, lot.member_id))[lot.member_id]
        await ctx.session.refresh(lot)  # spending may have changed it before the lock
        if lot.status != LotStatus.AVAILABLE:
            continue
        lot.status = LotStatus.EXPIRED
        if not lot.remaining:
            continue
        points = lot.remaining
        lot.remaining = 0
        account.available -= points
        account.updated_at = ctx.now
        entry = await book.add_entry(
            ctx,
            account,
            EntryKind.EXPIRE,
            -points,
            "expiry",
            occurred_at=lot.expires_at,
            reason="Points expired",
            details={"lotId": lot.id},
        )
        if lot.entry_id is not None:
            credited = await ctx.session.get(Entry, lot.entry_id)
            if credited is not None:
                credited.status = EntryStatus.EXPIRED
        outbox.record_entry(ctx.session, entry, account, ctx.now)
        report.expired += 1
        report.expired_points += points


async def _birthdays_due(ctx: Context) -> list[Member]:
    if not ctx.program.bonuses.birthday:
        return []
    today = ctx.now.astimezone(ctx.program.zone).date()
    due = []
    for member in await repository.birthday_candidates(ctx.session, ctx.program_id, today.year):
        assert member.birthday is not None
        if not rules.birthday_due(member.birthday, today):
            continue
        if member.enrolled_at.astimezone(ctx.program.zone).date() > rules.birthday_in(
            member.birthday, today.year
        ):
            continue  # enrolled after this year's birthday: the next one counts
        due.append(member)
    return due


async def _birthday_bonuses(ctx: Context, report: JobReport) -> None:
    points = ctx.program.bonuses.birthday
    today = ctx.now.astimezone(ctx.program.zone).date()
    for member in await _birthdays_due(ctx):
        account = (await book.lock(ctx, member.id))[member.id]
        await ctx.session.refresh(member)
        if member.last_birthday_year == today.year or member.birthday is None:
            continue
        if not book.credit_fits(ctx, account, points):
            continue  # a full account forgoes the bonus; the run goes on
        member.last_birthday_year = today.year
        entry, _ = await book.credit(
            ctx,
            account,
            EntryKind.BONUS,
            points,
            "birthday",
            reason="Birthday bonus",
            dedupe_key=f"birthday:{member.id}:{today.year}",
        )
        outbox.record_entry(ctx.session, entry, account, ctx.now)
        report.birthdays += 1


async def _tier_changes(ctx: Context) -> list[tuple[int, int]]:
    """(member id, qualifying value) of the members whose tier no longer matches."""
    values = await book.qualifying_value(ctx, None)
    changes = []
    for candidate in await repository.program_accounts(ctx.session, ctx.program_id):
        value = values.get(candidate.member_id, 0)
        if rules.tier_for(ctx.program.tiers, value).name != candidate.tier:
            changes.append((candidate.member_id, value))
    return changes


async def _reevaluate_tiers(ctx: Context, report: JobReport) -> None:
    for member_id, value in await _tier_changes(ctx):
        account = (await book.lock(ctx, member_id))[member_id]
        book.set_tier(ctx, account, value, allow_downgrade=True)
        report.tier_changes += 1


async def _purge_idempotency_keys(ctx: Context, report: JobReport) -> None:
    result = await ctx.session.execute(
        delete(IdempotencyRecord).where(
            IdempotencyRecord.program_id == ctx.program_id,
            IdempotencyRecord.created_at < ctx.now - IDEMPOTENCY_RETENTION,
        )
    )
    report.keys_purged = int(result.rowcount)  # type: ignore[attr-defined]
