"""Who is calling: a partner's client-credentials token, a member's token, or no one."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Partner:
    """A client-credentials token: a partner, a till, a back office."""

    program_id: str
    client_id: str
    scopes: frozenset[str]
    jti: str = ""


@dataclass(frozen=True)
class Shopper:
    """A member token from the store's identity provider."""

    program_id: str
    customer_id: str


@dataclass(frozen=True)
class Anonymous:
    """No token: reaches `__typename` and introspection, nothing of a program."""


Principal = Partner | Shopper | Anonymous
