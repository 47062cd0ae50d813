"""The sections of a program file that connect it to the systems around the ledger: the
store's CRM and commerce platform, the APIs inbound webhooks read from, and the secrets
they are verified with; and `Section`, what every section of the file is.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator


class Section(BaseModel):
    """A table of the program file: unknown keys are refused, and it never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def signing_secret(value: str) -> str:
    """A Standard Webhooks secret: base64 of 24 to 64 bytes, optionally `whsec_`-prefixed."""
    raw = value.removeprefix("whsec_")
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except binascii.Error:
        raise ValueError("a webhook secret is base64 (`whsec_...`)") from None
    if not 24 <= len(key) <= 64:
        raise ValueError("a webhook secret holds 24 to 64 bytes")
    return value


class BackendSection(Section):
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


class QuickBooks(Section):
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


class WebhookSecrets(Section):
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
        return tuple(signing_secret(value) for value in values)

    def of(self, source: str) -> tuple[str, ...]:
        """Every secret configured for `source`, the current one first; () when none."""
        if source not in type(self).model_fields or source in NOT_SECRETS:
            return ()
        return tuple(getattr(self, source))


class Paypal(Section):
    """The PayPal REST app that verifies PayPal webhooks (verify-webhook-signature), and
    the Webhook ID PayPal gave the listener URL."""

    webhook_id: str = Field(pattern=r"^[A-Za-z0-9]{1,50}$")
    client_id: str = Field(min_length=1, max_length=200)
    client_secret: str = Field(min_length=1, max_length=200)
    base_url: str = Field(pattern=r"^https?://[^\s]+$", max_length=500)


class Square(Section):
    """Square's API, to read the line items of a paid order (Orders API)."""

    base_url: str = Field(pattern=r"^https?://[^\s]+$", max_length=500)
    token: str = Field(min_length=1, max_length=500)
    version: str = Field(default="2026-08-19", pattern=r"^\d{4}-\d{2}-\d{2}$")


class WooCommerceWebhooks(Section):
    """How the `woocommerce` webhook source reads orders.

    `guests`: what a guest order (`customer_id` 0) earns. "ignore" (the default): nothing.
    "email": the billing email, lower-cased, stands in as the customer id, so a guest's
    orders gather on one member (enrolled on the fly when `auto_enroll` is on)."""

    guests: Literal["email", "ignore"] = "ignore"


class StripeApi(Section):
    """The Stripe API, read by the `stripe` webhook source: a refunded charge names its
    PaymentIntent, whose `metadata.order_id` is the order (a restricted key with read
    access to PaymentIntents is enough)."""

    api_key: str = Field(min_length=1, max_length=4096)
    base_url: str = Field(default="https://api.stripe.com", pattern=r"^https?://")
