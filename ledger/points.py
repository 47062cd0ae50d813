"""Points in: purchases, actions, adjustments; and points back out on refunds."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from ledger import outbox, postings, rules, tiers, write_repository
from ledger.commands import AdjustPoints, Outcome, RecordAction, RecordPurchase, RefundPurchase
from ledger.errors import (
    AlreadyEnrolled,
    CurrencyMismatch,
    DuplicateOrder,
    InvalidAmount,
    InvalidInput,
    LimitReached,
    UnknownAction,
    UnknownMember,
    UnknownOrder,
)
from ledger.members import enroll_member, is_forgotten
from ledger.models import Account, Entry, EntryKind, LotStatus, Member, Order
from ledger.rules import PricedLine
from ledger.scope import LedgerScope, ensure_not_forgotten, find_member

MAX_CLOCK_SKEW = timedelta(minutes=5)
MAX_REFERENCE = 255


def _occurred(scope: LedgerScope, occurred_at: datetime | None) -> datetime:
    if occurred_at is None:
        return scope.now
    if occurred_at.tzinfo is None:
        raise InvalidInput("occurredAt needs a UTC offset", ["occurredAt"])
    if occurred_at > scope.now + MAX_CLOCK_SKEW:
        raise InvalidInput("occurredAt lies in the future", ["occurredAt"])
    if occurred_at.year < 2000:
        raise InvalidInput("occurredAt is before 2000", ["occurredAt"])
    backdated = rules.backdate_problem(occurred_at, scope.now, scope.program.max_backdate_days)
    if backdated:
        raise InvalidInput(backdated, ["occurredAt"])
    return occurred_at


def _check_id(value: str, field: str) -> None:
    if not value.strip() or len(value) > MAX_REFERENCE:
        raise InvalidInput(f"{field} must have 1 to {MAX_REFERENCE} characters", [field])


async def record_purchase(scope: LedgerScope, command: RecordPurchase) -> Outcome:
    _check_id(command.order_id, "orderId")
    if command.currency != scope.program.currency:
        raise CurrencyMismatch(
            f"this program counts in {scope.program.currency}, not {command.currency}", ["currency"]
        )
    problems = rules.line_problems(command.lines)
    if problems:
        field, reason = problems[0]
        raise InvalidAmount(f"{'.'.join(field)}: {reason}", field)
    occurred = _occurred(scope, command.occurred_at)
    priced = rules.price_lines(scope.program, command.lines, command.channel, occurred)
    eligible = rules.eligible_total(priced)
    too_large = rules.order_problem(eligible, 0)
    if too_large:
        raise InvalidAmount(too_large, ["lines"])
    if await write_repository.order_by_order_id(scope.session, scope.program_id, command.order_id):
        raise DuplicateOrder(f"order {command.order_id!r} already earned", ["orderId"])
    member = await _purchaser(scope, command)
    # A first purchase pays the referrer too: both accounts are locked in one go, in id
    # order like every multi-account lock (the jobs' too), or the two could deadlock.
    # The member's lock serializes its purchases, so "first purchase" is decided once.
    referrer_id = member.referred_by_id
    if referrer_id is not None and await write_repository.has_orders(scope.session, member.id):
        referrer_id = None  # not the first purchase (orders are never deleted)
    accounts = await postings.lock(scope, member.id, *([referrer_id] if referrer_id else []))
    account = accounts[member.id]
    if referrer_id is not None and await write_repository.has_orders(scope.session, member.id):
        referrer_id = None  # a concurrent first purchase committed while we waited

    tier = scope.program.tier(account.tier)
    points = rules.purchase_points(
        priced, scope.program.earning.points_per_unit, tier.earn_multiplier
    )
    too_large = rules.order_problem(eligible, points)
    if too_large:
        raise InvalidAmount(too_large, ["lines"])
    if scope.program.tiering.basis == "spend":
        spent = await write_repository.net_spend_cents(scope.session, member.id)
        too_much = rules.spend_problem(spent, eligible)
        if too_much:
            raise InvalidAmount(too_much, ["lines"])
    pending_until = rules.available_at(occurred, scope.program.pending_days)
    entry, lot = await postings.credit(
        scope,
        account,
        EntryKind.EARN,
        points,
        "purchase",
        occurred_at=occurred,
        pending_until=pending_until,
        order_id=command.order_id,
        reason=f"Purchase {command.order_id}",
        field=["lines"],
    )
    order = Order(
        program_id=scope.program_id,
        order_id=command.order_id,
        member_id=member.id,
        currency=command.currency,
        channel=command.channel.value,
        occurred_at=occurred,
        points=points,
        reversed=0,
        eligible=Decimal(eligible.numerator) / Decimal(eligible.denominator),
        refunded_eligible=Decimal(0),
        refunded_amount=Decimal(0),
        net_spend_cents=rules.to_cents(eligible),
        lines=[_line_json(line) for line in priced],
        refunded_quantities=[0] * len(priced),
        lot_id=lot.id,
    )
    if not await write_repository.insert_new(scope.session, order):
        raise DuplicateOrder(f"order {command.order_id!r} already earned", ["orderId"])
    outbox.record_entry(scope.session, entry, account, scope.now)
    if lot.status == LotStatus.AVAILABLE:
        await tiers.evaluate_tier(scope, account)
    if referrer_id is not None:
        await _referral_bonuses(scope, member, accounts, referrer_id)
    return Outcome(member_id=member.id, entry_id=entry.id)


async def _purchaser(scope: LedgerScope, command: RecordPurchase) -> Member:
    ref = command.member
    try:
        return await find_member(scope, ref.id, ref.customer_id)
    except UnknownMember:
        if ref.customer_id is None or not scope.program.auto_enroll:
            raise
    _check_id(ref.customer_id, "member.customerId")
    if await is_forgotten(scope, ref.customer_id):
        raise UnknownMember(
            "this customer was forgotten: enrollMember enrolls them again", ["member"]
        )
    try:
        return await enroll_member(scope, customer_id=ref.customer_id)
    except AlreadyEnrolled:
        # A concurrent request enrolled the same customer and committed first.
        return await find_member(scope, None, ref.customer_id)


async def _referral_bonuses(
    scope: LedgerScope, member: Member, accounts: dict[int, Account], referrer_id: int
) -> None:
    bonuses = scope.program.bonuses
    pairs = ((member.id, bonuses.referee, "referee"), (referrer_id, bonuses.referrer, "referrer"))
    for member_id, points, source in pairs:
        if not points or member_id not in accounts:
            continue
        account = accounts[member_id]
        if not postings.credit_fits(scope, account, points):
            continue  # a bonus never refuses the purchase: a full account forgoes it
        entry, _ = await postings.credit(
            scope,
            account,
            EntryKind.BONUS,
            points,
            source,
            reason=f"Referral bonus ({source})",
            dedupe_key=f"{source}:{member.id}",
        )
        outbox.record_entry(scope.session, entry, account, scope.now)


def _line_json(line: PricedLine) -> dict[str, object]:
    return {
        "sku": line.sku,
        "category": line.category,
        "quantity": line.quantity,
        "amount": str(line.amount),
        "factor": str(line.factor),
    }


def _priced(order: Order) -> list[PricedLine]:
    return [
        PricedLine(
            sku=line["sku"],
            category=line["category"],
            quantity=int(line["quantity"]),
            amount=Decimal(str(line["amount"])),
            factor=Decimal(str(line["factor"])),
        )
        for line in order.lines
    ]


async def record_action(scope: LedgerScope, command: RecordAction) -> Outcome:
    action = scope.program.action(command.type)
    if action is None:
        raise UnknownAction(f"this program has no action {command.type!r}", ["type"])
    if command.reference is not None:
        _check_id(command.reference, "reference")
    occurred = _occurred(scope, command.occurred_at)
    member = await find_member(scope, command.member.id, command.member.customer_id)
    account = (await postings.lock(scope, member.id))[member.id]
    source = f"action:{action.type}"
    dedupe_key = None
    if command.reference is not None:
        dedupe_key = f"{source}:{member.id}:{command.reference}"
        if await write_repository.entry_by_dedupe_key(scope.session, scope.program_id, dedupe_key):
            raise LimitReached("this action was already rewarded", ["reference"])
    if action.per_member is not None:
        done = await write_repository.count_action_entries(scope.session, member.id, source)
        if done >= action.per_member:
            raise LimitReached(f"at most {action.per_member} per member", ["type"])
    if action.per_day is not None:
        day = rules.day_start(occurred, scope.program)
        done = await write_repository.count_action_entries(scope.session, member.id, source, day)
        if done >= action.per_day:
            raise LimitReached(f"at most {action.per_day} per day", ["type"])
    entry, _ = await postings.credit(
        scope,
        account,
        EntryKind.BONUS,
        action.points,
        source,
        occurred_at=occurred,
        reason=source,
        dedupe_key=dedupe_key,
    )
    outbox.record_entry(scope.session, entry, account, scope.now)
    return Outcome(member_id=member.id, entry_id=entry.id)


async def refund(scope: LedgerScope, command: RefundPurchase) -> Outcome:
    """Reverse the order's points in proportion to what is refunded (DESIGN §3)."""
    if (command.amount is None) == (command.lines is None):
        raise InvalidInput("give exactly one of amount and lines", ["amount"])
    order = await write_repository.order_by_order_id(
        scope.session, scope.program_id, command.order_id, lock=True
    )
    if order is None:
        raise UnknownOrder(f"no order {command.order_id!r} in this program", ["orderId"])
    await ensure_not_forgotten(scope, order.member_id, ["orderId"])
    priced = _priced(order)
    refunded = list(order.refunded_quantities)
    refunded_amount = order.refunded_amount
    if command.lines is not None:
        if not command.lines:
            raise InvalidAmount("a refund needs at least one line", ["lines"])
        try:
            refunded = rules.allocate_line_refund(priced, refunded, command.lines)
        except rules.RefundLineError as exc:
            raise InvalidAmount(exc.reason, ["lines", str(exc.index), exc.field]) from None
    else:
        assert command.amount is not None
        problem = rules.money_problem(
            command.amount, allow_zero=False, maximum=rules.MAX_UNIT_PRICE
        )
        if problem:
            raise InvalidAmount(f"amount {problem}", ["amount"])
        refunded_amount += command.amount
    refunded_eligible = rules.refunded_eligible(priced, refunded) + Fraction(refunded_amount)
    if refunded_eligible > rules.eligible_total(priced):
        raise InvalidAmount("more than remains refundable on the order", ["amount"])

    weight = rules.refund_weight(priced, refunded, refunded_amount)
    due_total = rules.total_reversal(order.points, weight, rules.weighted_total(priced))
    due = due_total - order.reversed
    account = (await postings.lock(scope, order.member_id))[order.member_id]
    lot = await write_repository.lot(scope.session, order.lot_id)
    assert lot is not None
    entry = await postings.reverse(
        scope,
        account,
        lot,
        due,
        order_id=order.order_id,
        reason=f"Refund of {order.order_id}",
    )
    order.reversed = due_total
    order.refunded_quantities = refunded
    order.refunded_amount = refunded_amount
    order.refunded_eligible = Decimal(refunded_eligible.numerator) / Decimal(
        refunded_eligible.denominator
    )
    order.net_spend_cents = rules.to_cents(rules.eligible_total(priced) - refunded_eligible)
    outbox.record_entry(scope.session, entry, account, scope.now)
    return Outcome(member_id=order.member_id, entry_id=entry.id)


async def adjust(scope: LedgerScope, command: AdjustPoints) -> Outcome:
    if command.points == 0 or abs(command.points) > rules.MAX_POINTS:
        raise InvalidAmount(f"points must be non-zero and at most {rules.MAX_POINTS}", ["points"])
    if not command.reason.strip() or len(command.reason) > 500:
        raise InvalidInput("a reason of 1 to 500 characters is required", ["reason"])
    member = await find_member(scope, command.member.id, command.member.customer_id)
    account = (await postings.lock(scope, member.id))[member.id]
    entry: Entry
    if command.points > 0:
        entry, _ = await postings.credit(
            scope,
            account,
            EntryKind.ADJUST,
            command.points,
            "adjust",
            reason=command.reason,
            counts_as_earned=False,
            field=["points"],
        )
    else:
        entry, _ = await postings.debit(
            scope,
            account,
            EntryKind.ADJUST,
            -command.points,
            "adjust",
            reason=command.reason,
            allow_negative=command.allow_negative_balance,
            field=["points"],
        )
    outbox.record_entry(scope.session, entry, account, scope.now)
    return Outcome(member_id=member.id, entry_id=entry.id)
