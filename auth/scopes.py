"""The OAuth2 scopes of the gateway. A token asks for a subset of its client's scopes."""

from __future__ import annotations

MEMBERS_READ = "members:read"
MEMBERS_PII = "members:pii"
MEMBERS_WRITE = "members:write"
POINTS_WRITE = "points:write"
POINTS_ADJUST = "points:adjust"
REWARDS_READ = "rewards:read"
REWARDS_REDEEM = "rewards:redeem"
REWARDS_MANAGE = "rewards:manage"
ANALYTICS_READ = "analytics:read"
WEBHOOKS_MANAGE = "webhooks:manage"

ALL = frozenset(
    {
        MEMBERS_READ,
        MEMBERS_PII,
        MEMBERS_WRITE,
        POINTS_WRITE,
        POINTS_ADJUST,
        REWARDS_READ,
        REWARDS_REDEEM,
        REWARDS_MANAGE,
        ANALYTICS_READ,
        WEBHOOKS_MANAGE,
    }
)


class UnknownScope(ValueError):
    """A scope string that names no scope of the gateway."""


def parse(text: str) -> frozenset[str]:
    """Space-separated scopes (RFC 6749 §3.3), each one known."""
    scopes = frozenset(text.split())
    unknown = scopes - ALL
    if unknown:
        raise UnknownScope(f"unknown scope(s): {' '.join(sorted(unknown))}")
    return scopes


def render(scopes: frozenset[str]) -> str:
    return " ".join(sorted(scopes))


class InvalidScope(ValueError):
    """A token request for scopes the client does not have (RFC 6749 `invalid_scope`)."""


def grant(allowed: frozenset[str], requested: str | None) -> frozenset[str]:
    """The scopes a token gets: those requested, or all of the client's when none are
    named; `InvalidScope` for an unknown scope or one the client was not given."""
    try:
        wanted = parse(requested) if requested else allowed
    except UnknownScope as exc:
        raise InvalidScope(str(exc)) from None
    if not wanted <= allowed:
        raise InvalidScope("scope(s) not granted to this client: " + render(wanted - allowed))
    return wanted
