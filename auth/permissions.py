"""Permission classes for root fields and mutations: a scope, or the member itself.

Anonymous callers get UNAUTHENTICATED; a token without the scope gets FORBIDDEN. Which
member a member token may reach is checked where the reference is read (resolvers).
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError
from strawberry.permission import BasePermission, PermissionExtension

from auth.principals import Anonymous, Partner, Shopper


class AccessDenied(GraphQLError):
    def __init__(self, message: str, code: str) -> None:
        super().__init__(message, extensions={"code": code})
        self.code = code


class Needs(BasePermission):
    """The caller holds `scope`, or (when `member` is set) is a member signed in."""

    def __init__(self, scope: str | None, *, member: bool = False, partner: bool = True) -> None:
        self.scope = scope
        self.member = member
        self.partner = partner

    def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        principal = info.context.principal
        if isinstance(principal, Anonymous):
            raise AccessDenied("a bearer token is required", "UNAUTHENTICATED")
        if isinstance(principal, Shopper):
            if self.member:
                return True
            raise AccessDenied("a member token cannot do this", "FORBIDDEN")
        assert isinstance(principal, Partner)
        if self.partner and (self.scope is None or self.scope in principal.scopes):
            return True
        needed = f"the scope {self.scope}" if self.scope else "a member token"
        raise AccessDenied(f"this needs {needed}", "FORBIDDEN")


def needs(scope: str | None, *, member: bool = False, partner: bool = True) -> list[Any]:
    """The field extensions that guard a root field."""
    return [
        PermissionExtension(
            permissions=[Needs(scope, member=member, partner=partner)], use_directives=False
        )
    ]
