"""Fixtures of the webhook source tests: a running gateway whose test program gives
every source its secret, without signup or referral bonuses (so points are exact)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.gateway import Gateway, running_gateway
from tests.support.inbound import SECRETS

NO_BONUSES = {"signup": 0, "referrer": 0, "referee": 0}


@pytest.fixture
async def gw(database_url: str) -> AsyncIterator[Gateway]:
    async with running_gateway(database_url, webhook_secrets=SECRETS, bonuses=NO_BONUSES) as gw:
        yield gw
