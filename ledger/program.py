"""Program files: one TOML file per loyalty program, validated once at start-up.

A file that does not validate raises `ProgramFileError` naming the file, the key and the
reason, so the gateway refuses to start rather than run a half-understood program.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import tomllib
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ledger.errors import ProgramFileError

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


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Multiplier(_Section):
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


class Earning(_Section):
    points_per_unit: Annotated[Decimal, Field(ge=0, le=Decimal(10000), allow_inf_nan=False)] = (
        Decimal(1)
    )
    exclude_categories: tuple[str, ...] = ()
    multipliers: tuple[Multiplier, ...] = ()


class Tiering(_Section):
    basis: Literal["points", "spend"] = "points"
    window_days: int = Field(default=365, ge=0, le=36500)


class Tier(_Section):
    name: str = Field(min_length=1, max_length=100)
    threshold: int = Field(ge=0, le=2 * 10**9)  # rules.MAX_LIFETIME: a GraphQL Int
    earn_multiplier: PositiveDecimal = Decimal(1)


class Bonuses(_Section):
    signup: int = Field(default=0, ge=0, le=10**9)
    birthday: int = Field(default=0, ge=0, le=10**9)
    referrer: int = Field(default=0, ge=0, le=10**9)
    referee: int = Field(default=0, ge=0, le=10**9)
    max_referrals_per_month: int = Field(default=10, ge=0, le=10**6)


class Action(_Section):
    type: Identifier
    points: int = Field(gt=0, le=10**9)
    per_day: int | None = Field(default=None, gt=0)
    per_member: int | None = Field(default=None, gt=0)


class RewardSeed(_Section):
    id: Identifier
    name: str = Field(min_length=1, max_length=200)
    cost: int = Field(gt=0, le=10**9)
    min_tier: str | None = None
    stock: int | None = Field(default=None, ge=0)
    per_member_limit: int | None = Field(default=None, gt=0)


class MemberTokens(_Section):
    issuer: str = Field(min_length=1)
    audience: str = Field(min_length=1)
    jwks_url: str = Field(pattern=r"^https?://")
    customer_claim: str = "sub"


class OutgoingWebhook(_Section):
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
        return None if value is None else _signing_secret(value)

    @field_validator("secrets")
    @classmethod
    def _secrets_decode(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_signing_secret(value) for value in values)

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


def _signing_secret(value: str) -> str:
    """A Standard Webhooks secret: base64 of 24 to 64 bytes, optionally `whsec_`-prefixed."""
    raw = value.removeprefix("whsec_")
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except binascii.Error:
        raise ValueError("a webhook secret is base64 (`whsec_...`)") from None
    if not 24 <= len(key) <= 64:
        raise ValueError("a webhook secret holds 24 to 64 bytes")
    return value


class BackendSection(_Section):
    """What every federated backend has: where it is, and how patient to be with it."""

    base_url: str = Field(pattern=r"^https?://")
    token: str | None = None
    timeout: float = Field(default=1.0, gt=0, le=30)  # seconds for a whole call, retries included
    attempts: int = Field(default=3, ge=1, le=5)  # tries of a read (network errors, 5xx, 429)
    breaker_failures: int = Field(default=5, ge=1, le=1000)  # failed calls in a row that open it
    breaker_cooldown: float = Field(default=30.0, gt=0, le=3600)  # seconds open before a trial
    cache_ttl: float = Field(default=30.0, ge=0, le=3600)  # seconds an answer is reused; 0 = never
    cache_size: int = Field(default=10_000, ge=1, le=1_000_000)


class Crm(BackendSection):
    kind: Literal["hubspot", "salesforce"]
    client_id: str | None = None
    client_secret: str | None = None
    # The CRM property that holds a member's customerId (HubSpot's `idProperty`): a
    # unique-value property of the contact.
    customer_id_property: str = Field(
        default="customer_id", pattern=r"^[A-Za-z][A-Za-z0-9_]{0,99}$"
    )

    @model_validator(mode="after")
    def _credentials(self) -> Self:
        if self.kind == "hubspot" and not self.token:
            raise ValueError("a hubspot CRM needs `token` (a private app access token)")
        return self

    @model_validator(mode="after")
    def _salesforce_credentials(self) -> Self:
        if self.kind == "salesforce" and not (self.client_id and self.client_secret):
            raise ValueError(
                "a salesforce CRM needs `client_id` and `client_secret` (its app's consumer key"
                " and secret, for the client credentials flow)"
            )
        return self


def _rsa_public_key(value: str) -> None:
    """An Adobe Commerce webhook key: the PEM RSA public key of its configuration page."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(value.strip().encode())
    except ValueError:
        raise ValueError(
            "the Adobe Commerce webhook key is a PEM public key (-----BEGIN PUBLIC KEY-----)"
        ) from None
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 2048:
        raise ValueError("the Adobe Commerce webhook key is an RSA key of 2048 bits or more")


class QuickBooks(_Section):
    """QuickBooks Online API access, to read the payments and invoices a webhook names."""

    base_url: str = Field(default="https://quickbooks.api.intuit.com", pattern=r"^https?://")
    token: str = Field(min_length=1, max_length=4096)  # an OAuth 2.0 access token
    minor_version: int = Field(default=75, ge=75, le=999)


class Commerce(BackendSection):
    kind: Literal["shopify", "woocommerce"]
    consumer_key: str | None = None
    consumer_secret: str | None = None
    api_version: str = Field(default="2025-07", pattern=r"^\d{4}-\d{2}$")  # Shopify Admin API
    # WooCommerce: orders requests in flight at once (it filters by one customer per request)
    max_concurrency: int = Field(default=8, ge=1, le=20)

    @model_validator(mode="after")
    def _credentials(self) -> Self:
        if self.kind == "shopify" and not self.token:
            raise ValueError("a shopify store needs `token` (an Admin API access token)")
        return self

    @model_validator(mode="after")
    def _woocommerce_credentials(self) -> Self:
        if self.kind == "woocommerce" and not (self.consumer_key and self.consumer_secret):
            raise ValueError(
                "a woocommerce store needs `consumer_key` and `consumer_secret` (a REST API key"
                " with Read access)"
            )
        return self


def _listed(value: object) -> object:
    return (value,) if isinstance(value, str) else value


Secret = Annotated[str, Field(min_length=1, max_length=4096)]
# One secret, or a list of them: read as a tuple, the current secret first.
Secrets = Annotated[tuple[Secret, ...], BeforeValidator(_listed)]


NOT_SECRETS = frozenset({"square_notification_url"})  # keys of [webhook_secrets] that are not


class WebhookSecrets(_Section):
    """Inbound webhook secrets, one key per source (`/webhooks/{program}/{source}`).

    Each key takes one secret or a list of them: during a rotation list the new secret
    and the old one (`shopify = ["new", "old"]`), and a delivery signed with either is
    accepted. A source without a secret answers 404."""

    shopify: Secrets = ()
    woocommerce: Secrets = ()
    stripe: Secrets = ()
    events: Secrets = ()
    square: Secrets = ()  # the subscription's signature key
    # The notification URL exactly as registered in Square: it is part of what is signed.
    square_notification_url: str | None = Field(
        default=None, pattern=r"^https?://[^\s]+$", max_length=2048
    )
    lightspeed: Secrets = ()  # Lightspeed Retail (X-Series): the app's client secret
    magento: Secrets = ()  # Adobe Commerce webhooks: the PEM public key
    quickbooks: Secrets = ()  # Intuit webhooks: the verifier token

    @field_validator("magento")
    @classmethod
    def _magento_public_keys(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            _rsa_public_key(value)
        return values

    @field_validator("events")
    @classmethod
    def _events_decode(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_signing_secret(value) for value in values)

    def of(self, source: str) -> tuple[str, ...]:
        """Every secret configured for `source`, the current one first; () when none."""
        if source not in type(self).model_fields or source in NOT_SECRETS:
            return ()
        return tuple(getattr(self, source))


class Paypal(_Section):
    """The PayPal REST app that verifies PayPal webhooks (verify-webhook-signature), and
    the Webhook ID PayPal gave the listener URL."""

    webhook_id: str = Field(pattern=r"^[A-Za-z0-9]{1,50}$")
    client_id: str = Field(min_length=1, max_length=200)
    client_secret: str = Field(min_length=1, max_length=200)
    base_url: str = Field(pattern=r"^https?://[^\s]+$", max_length=500)


class Square(_Section):
    """Square's API, to read the line items of a paid order (Orders API)."""

    base_url: str = Field(pattern=r"^https?://[^\s]+$", max_length=500)
    token: str = Field(min_length=1, max_length=500)
    version: str = Field(default="2026-08-19", pattern=r"^\d{4}-\d{2}-\d{2}$")


class WooCommerceWebhooks(_Section):
    """How the `woocommerce` webhook source reads orders.

    `guests`: what a guest order (`customer_id` 0) earns. "ignore" (the default): nothing.
    "email": the billing email, lower-cased, stands in as the customer id, so a guest's
    orders gather on one member (enrolled on the fly when `auto_enroll` is on)."""

    guests: Literal["email", "ignore"] = "ignore"


class StripeApi(_Section):
    """The Stripe API, read by the `stripe` webhook source: a refunded charge names its
    PaymentIntent, whose `metadata.order_id` is the order (a restricted key with read
    access to PaymentIntents is enough)."""

    api_key: str = Field(min_length=1, max_length=4096)
    base_url: str = Field(default="https://api.stripe.com", pattern=r"^https?://")


class Program(_Section):
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
