"""Client secrets: generated with enough entropy, stored only as a salted scrypt hash.

One scrypt costs ~35 ms of CPU and 16 MiB of memory. The async callers run it in a small
pool of worker threads (`in_key_worker`), never on the event loop: other requests keep
being served while secrets are checked, and a burst of wrong secrets cannot take more
than `KEY_WORKERS` derivations' worth of memory at once.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
# More derivations at once than cores only queue for the CPU, and take it from the loop.
KEY_WORKERS = min(4, os.cpu_count() or 1)

P = ParamSpec("P")
T = TypeVar("T")

# Its own pool, not the loop's default executor: scrypt releases the GIL, and a queue of
# derivations must not hold up DNS lookups and other work of the default executor.
_key_pool = ThreadPoolExecutor(max_workers=KEY_WORKERS, thread_name_prefix="key-derivation")


async def in_key_worker(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`function(*args, **kwargs)` in a key-derivation worker thread."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_key_pool, lambda: function(*args, **kwargs))


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, **SCRYPT)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def verify_secret(secret: str, stored: str) -> bool:
    """Constant-time check of `secret` against a stored hash."""
    try:
        scheme, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(secret.encode(), salt=base64.b64decode(salt), **SCRYPT)
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


# Checked against when the client id is unknown, so both paths cost one scrypt.
DUMMY_HASH = hash_secret(secrets.token_urlsafe(16))
