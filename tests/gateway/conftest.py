"""Fixtures of the gateway tests: a running gateway over a fresh ledger."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.gateway import Gateway, running_gateway


@pytest.fixture
async def gw(database_url: str) -> AsyncIterator[Gateway]:
    async with running_gateway(database_url) as gateway:
        yield gateway
