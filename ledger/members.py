"""Enrolment, profile changes, erasure and export of members."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import date
from typing import Any

from ledger import (
    outbox,
    outbox_repository,
    postings,
    read_repository,
    rewards,
    rules,
    write_repository,
)
from ledger.commands import EnrollMember, ForgetMember, Outcome, UpdateMember, member_client_key
from ledger.errors import AlreadyEnrolled, InvalidInput, InvalidState, LimitReached, UnknownMember
from ledger.models import Account, EntryKind, HoldStatus, Member
from ledger.scope import LedgerScope, find_member

REFERRAL_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
MAX_TEXT = {"customerId": 255, "email": 320, "name": 200}


def _check_text(value: str | None, field: str, *, required: bool = False) -> None:
    if value is None:
        if required:
            raise InvalidInput(f"{field} is required", [field])
        return
    if not value.strip() or len(value) > MAX_TEXT[field]:
        raise InvalidInput(f"{field} must have 1 to {MAX_TEXT[field]} characters", [field])
    if field == "email" and "@" not in value:
        raise InvalidInput("email is not an email address", [field])


def _check_birthday(birthday: date | None, scope: LedgerScope) -> None:
    if birthday is not None and not date(1900, 1, 1) <= birthday <= scope.now.date():
        raise InvalidInput("birthday must be a past date after 1900", ["birthday"])


def new_referral_code() -> str:
    return "".join(secrets.choice(REFERRAL_ALPHABET) for _ in range(10))


async def enroll(scope: LedgerScope, command: EnrollMember) -> Outcome:
    _check_text(command.customer_id, "customerId", required=True)
    _check_text(command.email, "email")
    _check_text(command.name, "name")
    _check_birthday(command.birthday, scope)
    existing = await write_repository.member_by_customer_id(
        scope.session, scope.program_id, command.customer_id
    )
    if existing is not None:
        raise AlreadyEnrolled(
            f"customer {command.customer_id!r} is already a member", ["customerId"]
        )
    referrer = None
    if command.referral_code is not None:
        referrer = await _referrer(scope, command)
    # An explicit enrolment of a forgotten customer is a new start: it is not forgotten
    # any more (purchases naming it find the new member).
    await write_repository.unmark_forgotten(
        scope.session, scope.program_id, customer_hash(scope.program_id, command.customer_id)
    )
    member = await enroll_member(
        scope,
        customer_id=command.customer_id,
        email=command.email,
        name=command.name,
        birthday=command.birthday,
        referred_by=referrer,
    )
    return Outcome(member_id=member.id)


async def _referrer(scope: LedgerScope, command: EnrollMember) -> Member:
    assert command.referral_code is not None
    referrer = await write_repository.member_by_referral_code(
        scope.session, scope.program_id, command.referral_code
    )
    if referrer is None:
        raise UnknownMember("no member has this referral code", ["referralCode"])
    same_email = (
        command.email is not None
        and referrer.email is not None
        and command.email.casefold() == referrer.email.casefold()
    )
    if same_email or referrer.customer_id == command.customer_id:
        raise InvalidState("a member cannot refer themselves", ["referralCode"])
    await postings.lock(scope, referrer.id)  # serializes the monthly count below
    since = rules.month_start(scope.now, scope.program)
    cap = scope.program.bonuses.max_referrals_per_month
    if await write_repository.referrals_since(scope.session, referrer.id, since) >= cap:
        raise LimitReached("this referral code reached its monthly limit", ["referralCode"])
    return referrer


async def enroll_member(
    scope: LedgerScope,
    *,
    customer_id: str,
    email: str | None = None,
    name: str | None = None,
    birthday: date | None = None,
    referred_by: Member | None = None,
) -> Member:
    """Create the member and its account, then credit the signup bonus."""
    member = Member(
        program_id=scope.program_id,
        customer_id=customer_id,
        email=email,
        name=name,
        birthday=birthday,
        referral_code=new_referral_code(),
        referred_by_id=referred_by.id if referred_by else None,
        enrolled_at=scope.now,
    )
    if not await write_repository.insert_new(scope.session, member):
        raise AlreadyEnrolled(f"customer {customer_id!r} is already a member", ["customerId"])
    account = Account(
        member_id=member.id,
        program_id=scope.program_id,
        available=0,
        pending=0,
        held=0,
        lifetime_earned=0,
        tier=scope.program.tiers[0].name,
        updated_at=scope.now,
    )
    scope.session.add(account)
    await scope.session.flush()
    outbox.record(
        scope.session,
        scope.program_id,
        "member.enrolled",
        account,
        scope.now,
        {"customerId": customer_id, "referredBy": str(referred_by.id) if referred_by else None},
    )
    signup = scope.program.bonuses.signup
    if signup:
        entry, _ = await postings.credit(
            scope,
            account,
            EntryKind.BONUS,
            signup,
            "signup",
            reason="Signup bonus",
            dedupe_key=f"signup:{member.id}",
        )
        outbox.record_entry(scope.session, entry, account, scope.now)
    return member


async def update(scope: LedgerScope, command: UpdateMember) -> Outcome:
    member = await find_member(scope, command.member.id, command.member.customer_id)
    _check_text(command.email, "email")
    _check_text(command.name, "name")
    _check_birthday(command.birthday, scope)
    # Account first, then the member row, as every other write does (no deadlock).
    (account,) = (await postings.lock(scope, member.id)).values()
    if command.email is not None:
        member.email = command.email
    if command.name is not None:
        member.name = command.name
    if command.birthday is not None:
        member.birthday = command.birthday
    outbox.record(scope.session, scope.program_id, "member.updated", account, scope.now, {})
    return Outcome(member_id=member.id)


def customer_hash(program_id: str, customer_id: str) -> str:
    """The keyed hash a forgotten customer id is remembered by (HMAC-SHA256, the program
    id as key): it recognizes the id when an event names it again, and cannot be read
    back into one."""
    return hmac.new(program_id.encode(), customer_id.encode(), hashlib.sha256).hexdigest()


async def is_forgotten(scope: LedgerScope, customer_id: str) -> bool:
    return await write_repository.is_forgotten(
        scope.session, scope.program_id, customer_hash(scope.program_id, customer_id)
    )


async def forget(scope: LedgerScope, command: ForgetMember) -> Outcome:
    """Erase the member's personal data everywhere and close what is open; the ledger's
    amounts stay, keyed by an anonymous id, for the accounts.

    Open holds are released and issued redemptions cancelled (points and stock return, as
    on any release or cancel, so the books still add up); nothing of the member can be
    captured, used or refunded afterwards. The customer id is kept only as a keyed hash,
    so purchases naming it do not enroll it again on the fly.
    """
    member = await find_member(scope, command.member.id, command.member.customer_id)
    # Lock the account before changing the member row: a new customer_id locks that row
    # against the foreign-key checks of entries that writes holding the account insert.
    (account,) = (await postings.lock(scope, member.id)).values()
    for held in await write_repository.open_holds(scope.session, member.id):
        await rewards.release_hold(scope, held, HoldStatus.RELEASED)
    for redemption in await write_repository.issued_redemptions(scope.session, member.id):
        # An erasure never fails on the bounds: MAX_BALANCE leaves room for this.
        await rewards.cancel_redemption(scope, redemption, account, bounded=False)
    await write_repository.erase_adjust_reasons(scope.session, member.id)
    for event in await write_repository.member_events(scope.session, member.id):
        event.payload = outbox.erased(event.payload)
    await outbox_repository.delete_idempotency_records(
        scope.session, scope.program_id, member_client_key(member.customer_id)
    )
    await write_repository.mark_forgotten(
        scope.session,
        scope.program_id,
        customer_hash(scope.program_id, member.customer_id),
        scope.now,
    )
    member.customer_id = f"forgotten-{member.id}"
    member.email = None
    member.name = None
    member.birthday = None
    member.forgotten_at = scope.now
    outbox.record(scope.session, scope.program_id, "member.forgotten", account, scope.now, {})
    return Outcome(member_id=member.id)


async def export(
    scope: LedgerScope, member_id: int | None, customer_id: str | None
) -> dict[str, Any]:
    """Everything the ledger holds about a member, as plain JSON (a GDPR export)."""
    member = await find_member(scope, member_id, customer_id)
    account = await write_repository.account(scope.session, member.id)
    assert account is not None
    entries, redemptions, holds, orders = await read_repository.member_history(
        scope.session, member.id
    )
    return {
        "member": {
            "id": str(member.id),
            "customerId": member.customer_id,
            "email": member.email,
            "name": member.name,
            "birthday": member.birthday.isoformat() if member.birthday else None,
            "enrolledAt": member.enrolled_at.isoformat(),
            "referralCode": member.referral_code,
        },
        "points": outbox.balances(account),
        "transactions": [
            {
                "id": str(entry.id),
                "kind": entry.kind,
                "points": entry.points,
                "status": entry.status,
                "orderId": entry.order_id,
                "reason": entry.reason,
                "occurredAt": entry.occurred_at.isoformat(),
            }
            for entry in entries
        ],
        "orders": [
            {
                "orderId": order.order_id,
                "occurredAt": order.occurred_at.isoformat(),
                "currency": order.currency,
                "points": order.points,
                "reversed": order.reversed,
            }
            for order in orders
        ],
        "redemptions": [
            {
                "id": str(item.id),
                "rewardId": item.reward_id,
                "points": item.points,
                "status": item.status,
                "createdAt": item.created_at.isoformat(),
            }
            for item in redemptions
        ],
        "holds": [
            {
                "id": str(item.id),
                "orderId": item.order_id,
                "points": item.points,
                "status": item.status,
                "createdAt": item.created_at.isoformat(),
            }
            for item in holds
        ],
    }
