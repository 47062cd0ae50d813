"""Run every benchmark: `python -m bench` (or `make bench`)."""

from __future__ import annotations

import asyncio

from bench import (
    backends,
    backends_salesforce_woocommerce,
    graphql_api,
    inbound,
    ledger_writes,
    live_events,
    webhooks,
)

if __name__ == "__main__":
    asyncio.run(ledger_writes.main())
    print()
    asyncio.run(graphql_api.main())
    print()
    asyncio.run(live_events.main())
    print()
    asyncio.run(webhooks.main())
    print()
    asyncio.run(inbound.main())
    print()
    asyncio.run(backends.main())
    print()
    asyncio.run(backends_salesforce_woocommerce.main())
