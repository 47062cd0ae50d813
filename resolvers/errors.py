"""Top-level GraphQL errors with a stable `extensions.code` (DESIGN §4)."""

from __future__ import annotations

from graphql import GraphQLError

UNAUTHENTICATED = "UNAUTHENTICATED"
FORBIDDEN = "FORBIDDEN"
BAD_USER_INPUT = "BAD_USER_INPUT"
QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
UNKNOWN_MEMBER = "UNKNOWN_MEMBER"
BACKEND_UNAVAILABLE = "BACKEND_UNAVAILABLE"  # a CRM or store could not answer: that field is null
SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"  # the database is away or locked: retry later
INTERNAL = "INTERNAL"

UNAVAILABLE_MESSAGE = "the database is unavailable now; retry later"


class ApiError(GraphQLError):
    """An expected refusal (auth, limits, malformed arguments): shown to the caller as is."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message, extensions={"code": code})
        self.code = code


class BackendUnavailableError(GraphQLError):
    """A field from a CRM or a store that could not be had: null, with this error naming
    the backend (`extensions.backend`) and why (`extensions.reason`)."""

    def __init__(self, kind: str, role: str, reason: str) -> None:
        super().__init__(
            f"the {role} ({kind}) is unavailable now: {reason}",
            extensions={"code": BACKEND_UNAVAILABLE, "backend": kind, "reason": reason},
        )
