"""The registry builds one client per program and backend, and says so when a program
file names a kind it has no client for."""

from __future__ import annotations

import pytest

from backends.commerce.shopify import ShopifyClient
from backends.commerce.woocommerce import WooCommerceClient
from backends.crm.hubspot import HubSpotClient
from backends.crm.salesforce import SalesforceClient
from backends.registry import CRM_CLIENTS, UnsupportedBackend
from tests.backends.support import backends


async def test_each_program_gets_its_own_clients_and_sessions() -> None:
    crm = {"kind": "hubspot", "base_url": "http://127.0.0.1:9", "token": "t"}
    store = {"kind": "shopify", "base_url": "http://127.0.0.1:9", "token": "s"}
    programs = {"a": {"crm": crm, "commerce": store}, "b": {"crm": crm}, "c": {}}
    async with backends(programs=programs) as registry:
        a, b = registry.crm("a"), registry.crm("b")
        assert isinstance(a, HubSpotClient) and isinstance(b, HubSpotClient)
        assert a is not b and a.session is not b.session and a.circuit != b.circuit
        assert isinstance(registry.commerce("a"), ShopifyClient)
        assert registry.commerce("b") is None
        assert registry.crm("c") is None and registry.commerce("c") is None
        assert len(registry.clients()) == 3


async def test_a_kind_without_a_client_is_unavailable_not_a_crash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(CRM_CLIENTS, "salesforce")  # every kind has a client now
    crm = {
        "kind": "salesforce",
        "base_url": "https://example.my.salesforce.com",
        "client_id": "id",
        "client_secret": "secret",
    }
    async with backends(crm=crm) as registry:
        with pytest.raises(UnsupportedBackend) as raised:
            registry.crm("test")
    assert raised.value.kind == "salesforce"


def test_a_hubspot_crm_needs_a_token() -> None:
    from ledger.errors import ProgramFileError
    from tests.support.ledger import make_program

    with pytest.raises(ProgramFileError, match="token"):
        make_program(crm={"kind": "hubspot", "base_url": "https://api.hubapi.com"})


async def test_salesforce_and_woocommerce_have_their_clients() -> None:
    crm = {
        "kind": "salesforce",
        "base_url": "https://example.my.salesforce.com",
        "client_id": "id",
        "client_secret": "secret",
    }
    store = {
        "kind": "woocommerce",
        "base_url": "https://shop.example",
        "consumer_key": "ck_1",
        "consumer_secret": "cs_1",
    }
    async with backends(crm=crm, commerce=store) as registry:
        assert isinstance(registry.crm("test"), SalesforceClient)
        assert isinstance(registry.commerce("test"), WooCommerceClient)
        assert len(registry.clients()) == 2
