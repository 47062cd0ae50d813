"""The errors of the federated backends: every aiohttp error, timeout, refusal and odd
answer of a CRM or a store leaves `backends/` as one of these, never as itself.

    BackendError                 the base: which backend (`kind`), and why
    ├── BackendUnavailable       network error, 5xx, an open circuit: retry later
    │   ├── BackendTimeout       no answer within the backend's timeout
    │   └── BackendThrottled     429 or the API's own throttling; `retry_after` seconds
    ├── BadCredentials           401 / 403: the program file's token is wrong
    └── BadAnswer                an answer that is not what the API documents

The GraphQL layer shows each as `BACKEND_UNAVAILABLE` on the field that needed it.
"""

from __future__ import annotations


class BackendError(Exception):
    """A backend could not give what was asked. `kind` is the backend (`hubspot`)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.reason = message


class BackendUnavailable(BackendError):
    """Down, failing (5xx), unreachable or its circuit open: worth retrying later."""


class BackendTimeout(BackendUnavailable):
    """No complete answer within the backend's timeout."""


class BackendThrottled(BackendUnavailable):
    """The backend asked us to slow down (HTTP 429, Shopify THROTTLED)."""

    def __init__(self, kind: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(kind, message)
        self.retry_after = retry_after


class CircuitOpen(BackendUnavailable):
    """Too many recent failures: not asked at all until the cool-down has passed."""


class BadCredentials(BackendError):
    """The backend refused our credentials (401 / 403)."""


class BadAnswer(BackendError):
    """An answer that breaks the API's documented shape (not JSON, missing fields, 4xx)."""
