"""R3 and R4 of DESIGN §10 with the other pair of backends: Salesforce as the CRM and
WooCommerce as the store, against their fakes (`python -m bench.backends_salesforce_woocommerce`).

The measurement is `bench.backends`'s. In R4, Salesforce's calls are its token and SOQL
queries; WooCommerce's are orders requests, one per member, since its API filters by
one customer.
"""

from __future__ import annotations

from backends.fakes.salesforce import EXTERNAL_ID_FIELD, FakeSalesforce
from backends.fakes.woocommerce import FakeWooCommerce
from bench.backends import FIRST_CUSTOMER, MEMBERS, measure
from ledger.program_sections import Commerce, Crm


async def main() -> None:
    crm, store = FakeSalesforce(), FakeWooCommerce()
    for i in range(MEMBERS):
        crm.add_contact(str(FIRST_CUSTOMER + i), f"F{i}", f"L{i}")
        store.add_order(FIRST_CUSTOMER + i, total="12.50")

    def forget_calls() -> None:
        crm.calls.clear()
        store.calls.clear()

    def configure() -> tuple[Crm, Commerce]:
        crm_config = Crm(
            kind="salesforce",
            base_url=crm.base,
            client_id=crm.client_id,
            client_secret=crm.client_secret,
            customer_id_property=EXTERNAL_ID_FIELD,
            cache_ttl=0,
        )
        store_config = Commerce(
            kind="woocommerce",
            base_url=store.base,
            consumer_key=store.key.consumer_key,
            consumer_secret=store.key.consumer_secret,
            cache_ttl=0,
        )
        return crm_config, store_config

    figures = await measure(crm, store, configure, forget_calls)
    print(figures.r3_line("Salesforce ", "WooCommerce "))
    print(
        figures.r4_line(
            f"Salesforce calls {dict(crm.calls)}, WooCommerce calls {dict(store.calls)}"
        )
    )


if __name__ == "__main__":
    import asyncio

    asyncio.run(main())
