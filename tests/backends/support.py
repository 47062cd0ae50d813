"""A program's backend clients over real HTTP to the fakes, without a gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from backends.registry import Backends
from tests.support.ledger import make_program


@asynccontextmanager
async def backends(**sections: Any) -> AsyncIterator[Backends]:
    """`Backends` for one program "test" (`crm=`, `commerce=` sections), or for many:
    `programs={"a": {"crm": ...}, "b": {...}}`."""
    programs = sections.pop("programs", None) or {"test": sections}
    made = {pid: make_program(id=pid, **config) for pid, config in programs.items()}
    registry = Backends(made)
    try:
        yield registry
    finally:
        await registry.close()
