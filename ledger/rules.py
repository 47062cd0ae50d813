"""The program's arithmetic as pure functions: no I/O, no clock, no database.

Money is `Decimal`, ratios are exact `Fraction`s, points are `int`. Each computation
floors once, at the end, so rounding never drifts.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Protocol, TypeVar

from ledger.program import Channel, Multiplier, Program, Tier, Weekday

MAX_LINES = 1000
MAX_QUANTITY = 1_000_000
MAX_UNIT_PRICE = Decimal("1000000000")
MONEY_PLACES = 4

# Bounds that keep every stored and reported number of a member inside GraphQL's Int
# (32-bit signed, at most 2_147_483_647), with room to spare for what moves between
# balances (a cancelled redemption, a released hold).
MAX_POINTS = 1_000_000_000  # one entry: a purchase, an action, an adjustment, a hold, a cost
MAX_BALANCE = 1_000_000_000  # available, pending, held, and their sum, per member
MAX_DEBT = 1_000_000_000  # how far below zero a points:adjust caller may take available
MAX_LIFETIME = 2_000_000_000  # lifetime earned (counting pending), and net spend per member
MAX_ORDER_AMOUNT = Decimal(MAX_LIFETIME)  # eligible amount of one order, in the currency

K = TypeVar("K", bound=str)  # an entry kind (a string enum)


@dataclass(frozen=True)
class Line:
    """A purchase line as the caller reports it."""

    sku: str | None
    category: str | None
    quantity: int
    unit_price: Decimal
    discount: Decimal = Decimal(0)
    ref: str | None = None  # the platform's own id of the line (Shopify's line item id)


@dataclass(frozen=True)
class PricedLine:
    """A line with what it earns on: the eligible amount (0 if excluded) and its factor."""

    sku: str | None
    category: str | None
    quantity: int
    amount: Decimal
    factor: Decimal
    ref: str | None = None

    @property
    def weighted(self) -> Decimal:
        return self.amount * self.factor


MAX_DECIMAL_TEXT = 40
MAX_DECIMAL_DIGITS = 15  # before the point: amounts up to 10^15
MAX_DECIMAL_PLACES = 10


def decimal_text(value: object) -> Decimal:
    """A decimal from its text ("12.50", or an integer), by the rules of the API's
    Decimal scalar: finite, at most 15 digits before the point and 10 after. Raises
    ValueError with the reason. (Whether it is acceptable money is `money_problem`'s.)"""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError('a decimal is a string, e.g. "12.50"')
    text = str(value)
    if len(text) > MAX_DECIMAL_TEXT:
        raise ValueError("the decimal is too long")
    try:
        parsed = Decimal(text)
    except ArithmeticError:
        raise ValueError(f"{text[:MAX_DECIMAL_TEXT]!r} is not a decimal") from None
    exponent = parsed.as_tuple().exponent
    if not isinstance(exponent, int):  # NaN, sNaN, Infinity
        raise ValueError("the decimal must be finite")
    if parsed and (parsed.adjusted() > MAX_DECIMAL_DIGITS or exponent < -MAX_DECIMAL_PLACES):
        raise ValueError(
            f"out of range: at most {MAX_DECIMAL_DIGITS} digits and {MAX_DECIMAL_PLACES} decimals"
        )
    return parsed


def money_problem(value: Decimal, *, allow_zero: bool, maximum: Decimal) -> str | None:
    """Why `value` is not an acceptable amount of money, or None when it is."""
    if not value.is_finite():
        return "must be a finite number"
    if value < 0 or (value == 0 and not allow_zero):
        return "must be positive" if not allow_zero else "must not be negative"
    if value > maximum:
        return f"must be at most {maximum}"
    exponent = value.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MONEY_PLACES:
        return f"has more than {MONEY_PLACES} decimal places"
    return None


def line_problems(lines: Sequence[Line]) -> list[tuple[list[str], str]]:
    """Every reason the lines of a purchase are unacceptable, with the field path."""
    if not lines:
        return [(["lines"], "an order needs at least one line")]
    if len(lines) > MAX_LINES:
        return [(["lines"], f"an order has at most {MAX_LINES} lines")]
    problems: list[tuple[list[str], str]] = []
    for index, line in enumerate(lines):
        path = ["lines", str(index)]
        if not 0 < line.quantity <= MAX_QUANTITY:
            problems.append(([*path, "quantity"], f"must be between 1 and {MAX_QUANTITY}"))
            continue
        price = money_problem(line.unit_price, allow_zero=False, maximum=MAX_UNIT_PRICE)
        if price:
            problems.append(([*path, "unitPrice"], price))
            continue
        discount = money_problem(
            line.discount, allow_zero=True, maximum=line.unit_price * line.quantity
        )
        if discount:
            problems.append(([*path, "discount"], discount))
    return problems


@dataclass(frozen=True)
class Balances:
    """A member's balances, as the account keeps them."""

    available: int
    pending: int
    held: int
    lifetime_earned: int


def balance_problem(balances: Balances) -> str | None:
    """Why these balances may not be stored, or None when they may: each of available,
    pending and held, and their sum, at most MAX_BALANCE; available at least -MAX_DEBT;
    lifetime earned plus pending (what lifetime earned becomes) at most MAX_LIFETIME."""
    total = balances.available + balances.pending + balances.held
    if max(balances.available, balances.pending, balances.held, total) > MAX_BALANCE:
        return f"a member's balance may not exceed {MAX_BALANCE} points"
    if balances.available < -MAX_DEBT:
        return f"a member's balance may not fall below -{MAX_DEBT} points"
    if balances.lifetime_earned + balances.pending > MAX_LIFETIME:
        return f"a member's lifetime earned points may not exceed {MAX_LIFETIME}"
    return None


def credited(balances: Balances, points: int, *, pending: bool, earned: bool) -> Balances:
    """The balances after a credit of `points` (pending, or available at once)."""
    if pending:
        return dataclasses.replace(balances, pending=balances.pending + points)
    return dataclasses.replace(
        balances,
        available=balances.available + points,
        lifetime_earned=balances.lifetime_earned + (points if earned else 0),
    )


def debited(balances: Balances, points: int) -> Balances:
    return dataclasses.replace(balances, available=balances.available - points)


def order_problem(eligible: Fraction, points: int) -> str | None:
    """Why an order's eligible amount or points are beyond what one order may earn."""
    if eligible > MAX_ORDER_AMOUNT:
        return f"an order's eligible amount may not exceed {MAX_ORDER_AMOUNT}"
    if points > MAX_POINTS:
        return f"an order may not earn more than {MAX_POINTS} points"
    return None


def backdate_problem(occurred_at: datetime, now: datetime, max_backdate_days: int) -> str | None:
    """Why `occurred_at` lies too far in the past to be recorded now, or None."""
    if occurred_at < now - timedelta(days=max_backdate_days):
        return f"occurredAt may lie at most {max_backdate_days} days in the past"
    return None


def text_problem(value: str) -> str | None:
    """Why a string cannot be stored (on every database), or None: NUL characters
    (PostgreSQL text refuses them) and lone UTF-16 surrogates (not encodable as UTF-8)."""
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text (no lone surrogates)"
    return None


def multiplier_applies(
    multiplier: Multiplier, line: Line, channel: Channel, occurred_at: datetime, program: Program
) -> bool:
    """Whether every condition of `multiplier` holds for this line."""
    if multiplier.categories is not None and line.category not in multiplier.categories:
        return False
    if multiplier.skus is not None and line.sku not in multiplier.skus:
        return False
    if multiplier.channels is not None and channel not in multiplier.channels:
        return False
    if multiplier.weekdays is not None:
        weekday = list(Weekday)[occurred_at.astimezone(program.zone).weekday()]
        if weekday not in multiplier.weekdays:
            return False
    if multiplier.starts_at is not None and occurred_at < multiplier.starts_at:
        return False
    return multiplier.ends_at is None or occurred_at < multiplier.ends_at


def price_lines(
    program: Program, lines: Sequence[Line], channel: Channel, occurred_at: datetime
) -> list[PricedLine]:
    """Eligible amount and multiplier factor of each line."""
    priced = []
    for line in lines:
        excluded = line.category is not None and line.category in program.earning.exclude_categories
        amount = Decimal(0) if excluded else line.quantity * line.unit_price - line.discount
        factor = Decimal(1)
        for multiplier in program.earning.multipliers:
            if multiplier_applies(multiplier, line, channel, occurred_at, program):
                factor *= multiplier.factor
        priced.append(PricedLine(line.sku, line.category, line.quantity, amount, factor, line.ref))
    return priced


def purchase_points(
    priced: Iterable[PricedLine], points_per_unit: Decimal, tier_multiplier: Decimal
) -> int:
    """floor(Σ(line amount × line factor) × points_per_unit × tier multiplier)."""
    weighted = sum((Fraction(line.weighted) for line in priced), Fraction(0))
    return math.floor(weighted * Fraction(points_per_unit) * Fraction(tier_multiplier))


def weighted_total(priced: Iterable[PricedLine]) -> Fraction:
    """W: Σ line amount × line factor."""
    return sum((Fraction(line.weighted) for line in priced), Fraction(0))


def eligible_total(priced: Iterable[PricedLine]) -> Fraction:
    """E: Σ line amounts."""
    return sum((Fraction(line.amount) for line in priced), Fraction(0))


def tier_for(tiers: Sequence[Tier], qualifying: int) -> Tier:
    """The highest tier whose threshold ≤ the qualifying value."""
    reached = [tier for tier in tiers if tier.threshold <= qualifying]
    return reached[-1] if reached else tiers[0]


def next_tier(tiers: Sequence[Tier], current: Tier) -> Tier | None:
    higher = [tier for tier in tiers if tier.threshold > current.threshold]
    return higher[0] if higher else None


def tier_rank(tiers: Sequence[Tier], name: str) -> int:
    for index, tier in enumerate(tiers):
        if tier.name == name:
            return index
    return 0


def available_at(occurred_at: datetime, pending_days: int) -> datetime:
    return occurred_at + timedelta(days=pending_days)


def expires_at(available: datetime, expiry_days: int) -> datetime | None:
    return available + timedelta(days=expiry_days) if expiry_days else None


def qualifying_since(now: datetime, window_days: int) -> datetime | None:
    """Start of the tier window, or None for a lifetime window."""
    return now - timedelta(days=window_days) if window_days else None


def birthday_in(birthday: date, year: int) -> date:
    """The member's birthday in `year`; 29 February falls on the 28th in other years."""
    try:
        return birthday.replace(year=year)
    except ValueError:
        return date(year, 2, 28)


def birthday_due(birthday: date, today: date, grace_days: int = 7) -> bool:
    """Whether the birthday bonus is due `today`: on the day or within the grace after it."""
    this_year = birthday_in(birthday, today.year)
    return this_year <= today < this_year + timedelta(days=grace_days)


def hold_discount(points: int, point_value: Decimal) -> Decimal:
    """The checkout discount that `points` buy."""
    return (points * point_value).quantize(Decimal("0.01"))


def month_start(moment: datetime, program: Program) -> datetime:
    """The first instant of the calendar month of `moment`, in the program's time zone."""
    local = moment.astimezone(program.zone)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def day_start(moment: datetime, program: Program) -> datetime:
    """Midnight of `moment`'s day in the program's time zone."""
    local = moment.astimezone(program.zone)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


# Money and minor units. Orders keep their spend in whole cents (an integer column that
# sums exactly on every database); these two are the only conversions between the two.
CENTS_PER_UNIT = 100


def to_cents(amount: Decimal | Fraction | int) -> int:
    """`amount` of money in whole cents, rounded down (toward minus infinity), exactly:
    a fraction of a cent is never counted (12.3456 → 1234, 0.0099 → 0, -0.001 → -1)."""
    return math.floor(Fraction(amount) * CENTS_PER_UNIT)


def from_cents(cents: int) -> Decimal:
    """Whole cents as money with two places, exactly (1234 → 12.34), however large:
    `to_cents(from_cents(c)) == c` for every integer."""
    return Decimal(f"{cents}E-2")


def spend_value(cents: int) -> int:
    """The tier-qualifying value of a spend (basis `spend`): whole currency units,
    rounded down (1999 cents → 19)."""
    return math.floor(from_cents(cents))


def spend_problem(spent_cents: int, eligible: Fraction) -> str | None:
    """Why an order's eligible amount would take the member's net spend (`spent_cents`
    so far) beyond MAX_LIFETIME, or None. Exact: no cent of the order is rounded away."""
    if Fraction(from_cents(spent_cents)) + eligible > MAX_LIFETIME:
        return f"a member's net spend may not exceed {MAX_LIFETIME}"
    return None


# Tier standing.
@dataclass(frozen=True)
class Standing:
    """Where a member stands: its tier, the next one, and what is missing to reach it."""

    current: Tier
    next: Tier | None
    qualifying_value: int
    to_next: int | None


def to_next(upcoming: Tier | None, qualifying: int) -> int | None:
    """The qualifying value still missing to reach `upcoming`: 0 once it is reached (the
    move waits for the next write or job run), None above the top tier."""
    return max(0, upcoming.threshold - qualifying) if upcoming is not None else None


def standing(tiers: Sequence[Tier], tier: str | None, qualifying: int) -> Standing:
    """The standing of a member in `tier` (as its account stores it; None without an
    account, and a name the program no longer has, mean the lowest tier)."""
    current = next((t for t in tiers if t.name == tier), tiers[0])
    upcoming = next_tier(tiers, current)
    return Standing(current, upcoming, qualifying, to_next(upcoming, qualifying))


# Rewards.
class RewardTerms(Protocol):
    """What decides whether a reward can be redeemed (a catalog row has all of it)."""

    @property
    def id(self) -> str: ...
    @property
    def cost(self) -> int: ...
    @property
    def min_tier(self) -> str | None: ...
    @property
    def stock(self) -> int | None: ...
    @property
    def per_member_limit(self) -> int | None: ...
    @property
    def active(self) -> bool: ...


R = TypeVar("R", bound=RewardTerms)


def tier_reaches(tiers: Sequence[Tier], tier: str, min_tier: str | None) -> bool:
    """Whether a member in `tier` may redeem a reward that needs `min_tier` (None: any)."""
    return min_tier is None or tier_rank(tiers, tier) >= tier_rank(tiers, min_tier)


def within_limit(limit: int | None, taken: int) -> bool:
    """Whether one more redemption fits a per-member `limit` when `taken` are not cancelled."""
    return limit is None or taken < limit


def redeemable_now(
    rewards: Iterable[R],
    tiers: Sequence[Tier],
    tier: str,
    available: int,
    redeemed: Mapping[str, int],
) -> list[R]:
    """The rewards a member in `tier` with `available` points could redeem now, in the
    order given: active, its tier reached, in stock, under its per-member limit (with
    `redeemed`: redemptions not cancelled per reward id), and affordable."""
    return [
        reward
        for reward in rewards
        if reward.active
        and tier_reaches(tiers, tier, reward.min_tier)
        and (reward.stock is None or reward.stock > 0)
        and within_limit(reward.per_member_limit, redeemed.get(reward.id, 0))
        and available >= reward.cost
    ]


# Histories.
def kinds_matching(kinds: Iterable[K] | None) -> tuple[K, ...] | None:
    """The entry kinds a history asks for, as a filter: None (no filter given) matches
    every kind; an empty list matches none; otherwise each kind once, sorted."""
    return None if kinds is None else tuple(sorted(set(kinds)))


# Outgoing webhooks: the wait before each retry after a failed attempt; after the last,
# the delivery is dead. The first attempt is at once.
WEBHOOK_RETRY_DELAYS = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
)
# A 4xx other than 408 and 429 (or a redirect, which is not followed) says the receiver
# refuses this request as it is: retried on the same schedule, dead after this many.
WEBHOOK_REFUSED_ATTEMPTS = 3


def webhook_retry_at(attempts: int, status: int | None, at: datetime) -> datetime | None:
    """When to try again after the `attempts`-th attempt failed at `at` with HTTP `status`
    (None: no answer — refused connection, timeout, reset); None when it is dead."""
    refused = status is not None and (300 <= status < 500) and status not in (408, 429)
    if refused and attempts >= WEBHOOK_REFUSED_ATTEMPTS:
        return None
    if attempts > len(WEBHOOK_RETRY_DELAYS):
        return None
    return at + WEBHOOK_RETRY_DELAYS[attempts - 1]
