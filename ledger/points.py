"""Points in: purchases, actions, adjustments; and points back out on refunds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from ledger import (
    orders_repository,
    outbox,
    postings,
    refund_rules,
    rules,
    tiers,
    write_repository,
)
from ledger.commands import AdjustPoints, Outcome, RecordAction, RecordPurchase, RefundPurchase
from ledger.errors import (
    AlreadyEnrolled,
    CurrencyMismatch,
    DuplicateOrder,
    InvalidAmount,
    InvalidInput,
    LedgerError,
    LimitReached,
    UnknownAction,
    UnknownMember,
    UnknownOrder,
)
from ledger.members import enroll_member, is_forgotten
from ledger.models import Account, Entry, EntryKind, LotStatus, Member, Order, PendingRefund
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
    await orders_repository.lock_order_id(scope.session, scope.program_id, command.order_id)
    # The order id's lock keeps both answers true until this transaction ends: no refund
    # of it can be kept meanwhile.
    earned, refunds_waiting = await orders_repository.order_state(
        scope.session, scope.program_id, command.order_id
    )
    if earned:
        raise DuplicateOrder(f"order {command.order_id!r} already earned", ["orderId"])
    member = await _purchaser(scope, command)
    # A first purchase pays the referrer too: both accounts are locked in one go, in id
    # order like every multi-account lock (the jobs' too), or the two could deadlock.
    # The member's lock serializes its purchases, so "first purchase" is decided once.
    referrer_id = member.referred_by_id
    if referrer_id is not None and await orders_repository.has_orders(scope.session, member.id):
        referrer_id = None  # not the first purchase (orders are never deleted)
    accounts = await postings.lock(scope, member.id, *([referrer_id] if referrer_id else []))
    account = accounts[member.id]
    if referrer_id is not None and await orders_repository.has_orders(scope.session, member.id):
        referrer_id = None  # a concurrent first purchase committed while we waited

    tier = scope.program.tier(account.tier)
    points = rules.purchase_points(
        priced, scope.program.earning.points_per_unit, tier.earn_multiplier
    )
    too_large = rules.order_problem(eligible, points)
    if too_large:
        raise InvalidAmount(too_large, ["lines"])
    if scope.program.tiering.basis == "spend":
        spent = await orders_repository.net_spend_cents(scope.session, member.id)
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
    stored = await write_repository.insert_unless_exists(scope.session, order)
    if stored is None:
        raise DuplicateOrder(f"order {command.order_id!r} already earned", ["orderId"])
    order = stored
    outbox.record_entry(scope.session, entry, account, scope.now)
    if lot.status == LotStatus.AVAILABLE:
        await tiers.evaluate_tier(scope, account)
    if referrer_id is not None:
        await _referral_bonuses(scope, member, accounts, referrer_id)
    if refunds_waiting:
        await _apply_pending_refunds(scope, order)
    return Outcome(member_id=member.id, entry_id=entry.id, entry=entry)


async def _apply_pending_refunds(scope: LedgerScope, order: Order) -> None:
    """Refunds reported before this purchase, applied now in arrival order; one that
    cannot apply to the order as it is (a line it does not have, more than it holds)
    is marked with the reason and never refuses the purchase."""
    for pending in await orders_repository.pending_refunds(
        scope.session, scope.program_id, order.order_id
    ):
        request = _Refund.of_json(pending.refund)
        try:
            async with scope.session.begin_nested():
                entry = await _reverse(scope, order, request)
            pending.entry_id = entry.id
        except LedgerError as error:
            pending.problem = f"{error.code}: {error.message}"[:500]
        pending.applied_at = scope.now
    await scope.session.flush()


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
        **({"ref": line.ref} if line.ref is not None else {}),
    }


def _priced(order: Order) -> list[PricedLine]:
    return [
        PricedLine(
            sku=line["sku"],
            category=line["category"],
            quantity=int(line["quantity"]),
            amount=Decimal(str(line["amount"])),
            factor=Decimal(str(line["factor"])),
            ref=line.get("ref"),
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


@dataclass(frozen=True)
class _Refund:
    """What a refund takes back: exactly one of an amount, (sku, quantity) lines, or
    (platform line id, quantity) lines."""

    amount: Decimal | None = None
    lines: tuple[tuple[str, int], ...] | None = None
    line_refs: tuple[tuple[str, int], ...] | None = None

    def to_json(self) -> dict[str, Any]:
        if self.amount is not None:
            return {"amount": str(self.amount)}
        if self.lines is not None:
            return {"lines": [list(line) for line in self.lines]}
        return {"line_refs": [list(line) for line in self.line_refs or ()]}

    @classmethod
    def of_json(cls, data: dict[str, Any]) -> _Refund:
        def pairs(key: str) -> tuple[tuple[str, int], ...] | None:
            items = data.get(key)
            return None if items is None else tuple((str(a), int(b)) for a, b in items)

        amount = data.get("amount")
        return cls(
            None if amount is None else Decimal(str(amount)), pairs("lines"), pairs("line_refs")
        )


def _refund_request(command: RefundPurchase) -> _Refund:
    given = [part is not None for part in (command.amount, command.lines, command.line_refs)]
    if sum(given) != 1:
        raise InvalidInput("give exactly one of amount and lines", ["amount"])
    return _Refund(command.amount, command.lines, command.line_refs)


def _check_refund(request: _Refund) -> None:
    """The checks a refund passes before it meets its order."""
    if request.amount is not None:
        problem = rules.money_problem(
            request.amount, allow_zero=False, maximum=rules.MAX_UNIT_PRICE
        )
        if problem:
            raise InvalidAmount(f"amount {problem}", ["amount"])
    lines = request.lines if request.lines is not None else request.line_refs
    if lines is None:
        return
    if not lines:
        raise InvalidAmount("a refund needs at least one line", ["lines"])
    for index, (_, quantity) in enumerate(lines):
        if not 0 < quantity <= rules.MAX_QUANTITY:
            raise InvalidAmount(
                f"must be between 1 and {rules.MAX_QUANTITY}", ["lines", str(index), "quantity"]
            )


async def refund(scope: LedgerScope, command: RefundPurchase) -> Outcome:
    """Reverse the order's points in proportion to what is refunded (DESIGN §3). With
    `keep_until_purchase`, a refund of an order not recorded yet is kept and applied
    by `record_purchase` when the order arrives."""
    request = _refund_request(command)
    order = await orders_repository.order_by_order_id(
        scope.session, scope.program_id, command.order_id, lock=True
    )
    if order is None and command.keep_until_purchase:
        _check_id(command.order_id, "orderId")
        # A purchase of this order id committing meanwhile: wait for it, then look again.
        await orders_repository.lock_order_id(scope.session, scope.program_id, command.order_id)
        order = await orders_repository.order_by_order_id(
            scope.session, scope.program_id, command.order_id, lock=True
        )
        if order is None:
            _check_refund(request)
            scope.session.add(
                PendingRefund(
                    program_id=scope.program_id,
                    order_id=command.order_id,
                    refund=request.to_json(),
                    received_at=scope.now,
                )
            )
            await scope.session.flush()
            return Outcome()
    if order is None:
        raise UnknownOrder(f"no order {command.order_id!r} in this program", ["orderId"])
    await ensure_not_forgotten(scope, order.member_id, ["orderId"])
    entry = await _reverse(scope, order, request)
    return Outcome(member_id=order.member_id, entry_id=entry.id)


async def _reverse(scope: LedgerScope, order: Order, request: _Refund) -> Entry:
    """The REFUND entry of `request` against `order`, whose row is locked."""
    _check_refund(request)
    priced = _priced(order)
    refunded = list(order.refunded_quantities)
    refunded_amount = order.refunded_amount
    lines = request.lines if request.lines is not None else request.line_refs
    if lines is not None:
        try:
            refunded = refund_rules.allocate_line_refund(
                priced, refunded, lines, by_ref=request.line_refs is not None
            )
        except refund_rules.RefundLineError as exc:
            raise InvalidAmount(exc.reason, ["lines", str(exc.index), exc.field]) from None
    else:
        assert request.amount is not None
        refunded_amount += request.amount
    refunded_eligible = refund_rules.refunded_eligible(priced, refunded) + Fraction(refunded_amount)
    if refunded_eligible > rules.eligible_total(priced):
        raise InvalidAmount("more than remains refundable on the order", ["amount"])

    weight = refund_rules.refund_weight(priced, refunded, refunded_amount)
    due_total = refund_rules.total_reversal(order.points, weight, rules.weighted_total(priced))
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
    return entry


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
