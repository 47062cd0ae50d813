"""Program files: one TOML file per loyalty program, validated once at start-up.

A file that does not validate raises `ProgramFileError` naming the file, the key and the
reason, so the gateway refuses to start rather than run a half-understood program.
"""

from __future__ import annotations

import itertools
import tomllib
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ledger.errors import ProgramFileError
from ledger.program_sections import (
    Commerce,
    Crm,
    Paypal,
    QuickBooks,
    Section,
    Square,
    StripeApi,
    WebhookSecrets,
    WooCommerceWebhooks,
    signing_secret,
)

BUNDLED_PROGRAMS = Path(__file__).parent / "programs"
DEMO_PROGRAM = BUNDLED_PROGRAMS / "demo.toml"

Identifier = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
PositiveDecimal = Annotated[Decimal, Field(gt=0, le=Decimal(1000), allow_inf_nan=False)]


class Weekday(StrEnum):
    MON = "MON"
    TUE = "TUE"
    WED = "WED"
    THU = "THU"
    FRI = "FRI"
    SAT = "SAT"
    SUN = "SUN"


class Channel(StrEnum):
    ONLINE = "ONLINE"
    POS = "POS"
    MOBILE = "MOBILE"


class Multiplier(Section):
    """Applies `factor` to a purchase line when every condition given holds."""

    name: str = Field(min_length=1, max_length=200)
    factor: PositiveDecimal
    categories: tuple[str, ...] | None = None
    skus: tuple[str, ...] | None = None
    channels: tuple[Channel, ...] | None = None
    weekdays: tuple[Weekday, ...] | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None

    @model_validator(mode="after")
    def _window(self) -> Self:
        for key in ("starts_at", "ends_at"):
            value = getattr(self, key)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{key} needs a UTC offset, e.g. 2026-01-01T00:00:00Z")
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class Earning(Section):
    points_per_unit: Annotated[Decimal, Field(ge=0, le=Decimal(10000), allow_inf_nan=False)] = (
        Decimal(1)
    )
    exclude_categories: tuple[str, ...] = ()
    multipliers: tuple[Multiplier, ...] = ()


class Tiering(Section):
    basis: Literal["points", "spend"] = "points"
    window_days: int = Field(default=365, ge=0, le=36500)


class Tier(Section):
    name: str = Field(min_length=1, max_length=100)
    threshold: int = Field(ge=0, le=2 * 10**9)  # rules.MAX_LIFETIME: a GraphQL Int
    earn_multiplier: PositiveDecimal = Decimal(1)


class Bonuses(Section):
    signup: int = Field(default=0, ge=0, le=10**9)
    birthday: int = Field(default=0, ge=0, le=10**9)
    referrer: int = Field(default=0, ge=0, le=10**9)
    referee: int = Field(default=0, ge=0, le=10**9)
    max_referrals_per_month: int = Field(default=10, ge=0, le=10**6)


class Action(Section):
    type: Identifier
    points: int = Field(gt=0, le=10**9)
    per_day: int | None = Field(default=None, gt=0)
    per_member: int | None = Field(default=None, gt=0)


class RewardSeed(Section):
    id: Identifier
    name: str = Field(min_length=1, max_length=200)
    cost: int = Field(gt=0, le=10**9)
    min_tier: str | None = None
    stock: int | None = Field(default=None, ge=0)
    per_member_limit: int | None = Field(default=None, gt=0)


class MemberTokens(Section):
    issuer: str = Field(min_length=1)
    audience: str = Field(min_length=1)
    jwks_url: str = Field(pattern=r"^https?://")
    customer_claim: str = "sub"


class OutgoingWebhook(Section):
    """One receiver of the program's events, signed per Standard Webhooks.

    `secret` signs every delivery; during a rotation `secrets` lists more (the new one
    and the old one), and each delivery carries one signature per secret. `events`
    empty means every topic."""

    url: str = Field(pattern=r"^https?://[^\s]+$", max_length=2048)
    secret: str | None = None
    secrets: tuple[str, ...] = ()
    events: tuple[str, ...] = ()

    @field_validator("secret")
    @classmethod
    def _secret_decodes(cls, value: str | None) -> str | None:
        return None if value is None else signing_secret(value)

    @field_validator("secrets")
    @classmethod
    def _secrets_decode(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(signing_secret(value) for value in values)

    @field_validator("events")
    @classmethod
    def _known_topics(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        from ledger.webhooks import TOPICS

        for value in values:
            if value not in TOPICS:
                raise ValueError(f"unknown event {value!r}; one of {', '.join(TOPICS)}")
        return values

    @model_validator(mode="after")
    def _has_secret(self) -> Self:
        if not self.signing_secrets:
            raise ValueError("give `secret` (or `secrets`) to sign the deliveries with")
        return self

    @property
    def signing_secrets(self) -> tuple[str, ...]:
        """Every secret a delivery is signed with: `secret` first, then `secrets`."""
        first = () if self.secret is None else (self.secret,)
        return tuple(dict.fromkeys(first + self.secrets))


class Program(Section):
    """One loyalty program, as its TOML file describes it."""

    id: Identifier
    name: str = Field(min_length=1, max_length=200)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    timezone: str = "UTC"
    point_value: Annotated[Decimal, Field(ge=0, le=Decimal(1000), allow_inf_nan=False)] = Decimal(
        "0.01"
    )
    pending_days: int = Field(default=0, ge=0, le=3650)
    expiry_days: int = Field(default=0, ge=0, le=36500)
    hold_minutes: int = Field(default=15, gt=0, le=7 * 24 * 60)
    # How far in the past a purchase's or an action's occurredAt may lie (offline tills);
    # older ones are refused, so backdating cannot skip the return window unchecked.
    max_backdate_days: int = Field(default=30, ge=0, le=3650)
    auto_enroll: bool = True
    earning: Earning = Earning()
    tiering: Tiering = Tiering()
    tiers: tuple[Tier, ...] = (Tier(name="Member", threshold=0),)
    bonuses: Bonuses = Bonuses()
    actions: tuple[Action, ...] = ()
    rewards: tuple[RewardSeed, ...] = ()
    member_tokens: MemberTokens | None = None
    webhooks: tuple[OutgoingWebhook, ...] = ()
    crm: Crm | None = None
    commerce: Commerce | None = None
    webhook_secrets: WebhookSecrets = WebhookSecrets()
    paypal: Paypal | None = None
    square: Square | None = None
    quickbooks: QuickBooks | None = None
    woocommerce: WooCommerceWebhooks = WooCommerceWebhooks()
    stripe: StripeApi | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("tiers")
    @classmethod
    def _tiers_ascend(cls, tiers: tuple[Tier, ...]) -> tuple[Tier, ...]:
        if not tiers:
            raise ValueError("at least one tier is needed")
        if tiers[0].threshold != 0:
            raise ValueError("the first tier must have threshold 0")
        names = [tier.name for tier in tiers]
        if len(set(names)) != len(names):
            raise ValueError("tier names must be unique")
        thresholds = [tier.threshold for tier in tiers]
        if any(b <= a for a, b in itertools.pairwise(thresholds)):
            raise ValueError("tier thresholds must strictly ascend")
        return tiers

    @model_validator(mode="after")
    def _references(self) -> Self:
        names = {tier.name for tier in self.tiers}
        for index, reward in enumerate(self.rewards):
            if reward.min_tier is not None and reward.min_tier not in names:
                raise _KeyError(f"rewards.{index}.min_tier", f"unknown tier {reward.min_tier!r}")
        for kind, items in (("rewards", self.rewards), ("actions", self.actions)):
            keys = [item.id if isinstance(item, RewardSeed) else item.type for item in items]
            if len(set(keys)) != len(keys):
                raise _KeyError(kind, "ids must be unique")
        urls = [webhook.url for webhook in self.webhooks]
        if len(set(urls)) != len(urls):
            raise _KeyError("webhooks", "each endpoint url appears once")
        if self.webhook_secrets.quickbooks and self.quickbooks is None:
            raise _KeyError(
                "quickbooks",
                "[webhook_secrets] quickbooks needs a [quickbooks] section (token, base_url)"
                " to read the payments its notifications name",
            )
        return self

    @model_validator(mode="after")
    def _square_complete(self) -> Self:
        secrets = self.webhook_secrets
        if secrets.square and secrets.square_notification_url is None:
            raise _KeyError(
                "webhook_secrets.square_notification_url",
                "required with webhook_secrets.square: the notification URL as registered "
                "in Square is part of what Square signs",
            )
        if secrets.square and self.square is None:
            raise _KeyError(
                "square",
                "required with webhook_secrets.square: base_url and token of the Orders API",
            )
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def tier(self, name: str) -> Tier:
        for tier in self.tiers:
            if tier.name == name:
                return tier
        return self.tiers[0]

    def action(self, type_: str) -> Action | None:
        return next((action for action in self.actions if action.type == type_), None)


class _KeyError(ValueError):
    """A validation failure that knows the dotted key it belongs to."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(reason)
        self.key = key
        self.reason = reason


def parse_program(data: dict[str, Any], path: str = "<program>") -> Program:
    """Validate a decoded program file."""
    try:
        return Program.model_validate(data)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        key = ".".join(str(part) for part in error["loc"])
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, _KeyError):
            raise ProgramFileError(path, cause.key, cause.reason) from None
        reason = error["msg"].removeprefix("Value error, ")
        raise ProgramFileError(path, key, reason) from None


def load_program(path: Path) -> Program:
    """Read and validate one program file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProgramFileError(str(path), "", f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ProgramFileError(str(path), "", "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProgramFileError(str(path), "", f"not valid TOML: {exc}") from None
    return parse_program(data, str(path))


def load_programs(path: Path) -> dict[str, Program]:
    """Load a program file, or every `*.toml` file of a folder (one program per file)."""
    files = sorted(path.glob("*.toml")) if path.is_dir() else [path]
    if not files:
        raise ProgramFileError(str(path), "", "no *.toml program files in this folder")
    programs: dict[str, Program] = {}
    for file in files:
        program = load_program(file)
        if program.id in programs:
            raise ProgramFileError(str(file), "id", f"program {program.id!r} is defined twice")
        programs[program.id] = program
    return programs
