"""The Salesforce CRM client against the Salesforce fake, over real HTTP: the client
credentials token, SOQL batches of 200 with their pages, escaping, token refresh, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from backends.client import Breakers, client_session
from backends.crm.base import CrmProfile, LoyaltyStanding
from backends.crm.salesforce import SalesforceClient, soql_string
from backends.errors import (
    BackendThrottled,
    BackendTimeout,
    BackendUnavailable,
    BadAnswer,
    BadCredentials,
)
from backends.fakes.salesforce import EXTERNAL_ID_FIELD, FakeSalesforce
from ledger.program_sections import Crm


@pytest.fixture
async def salesforce() -> AsyncIterator[FakeSalesforce]:
    fake = FakeSalesforce()
    async with fake.serving():
        yield fake


def crm(fake: FakeSalesforce, **overrides: Any) -> Crm:
    settings: dict[str, Any] = {
        "kind": "salesforce",
        "base_url": fake.base,
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "customer_id_property": EXTERNAL_ID_FIELD,
        "cache_ttl": 0,
        **overrides,
    }
    return Crm(**settings)


@pytest.fixture
async def client(salesforce: FakeSalesforce) -> AsyncIterator[SalesforceClient]:
    config = crm(salesforce)
    async with client_session(config) as session:
        yield SalesforceClient("test", config, session, Breakers())


def test_soql_string_escapes_the_reserved_characters() -> None:
    assert soql_string("plain-42") == "'plain-42'"
    assert soql_string("o'brien\\1") == "'o\\'brien\\\\1'"
    assert soql_string('a"b\nc\td') == "'a\\\"b\\nc\\td'"
    assert soql_string("' OR Name != '") == "'\\' OR Name != \\''"


async def test_profiles_in_one_query_with_exact_fields(
    salesforce: FakeSalesforce, client: SalesforceClient
) -> None:
    salesforce.add_contact("c-1", "Ada", "Lovelace", company="Analytical Engines")
    salesforce.add_contact("c-2", "Grace", "Hopper")

    profiles = await client.profiles(["c-1", "c-2", "c-3"])

    assert profiles == {
        "c-1": CrmProfile(
            source="salesforce",
            first_name="Ada",
            last_name="Lovelace",
            company="Analytical Engines",
        ),
        "c-2": CrmProfile(source="salesforce", first_name="Grace", last_name="Hopper"),
        "c-3": None,
    }
    assert salesforce.calls["token"] == 1
    assert salesforce.calls["query"] == 1
    assert salesforce.queries == [
        "SELECT Id, FirstName, LastName, Account.Name, Loyalty_Customer_Id__c FROM Contact"
        " WHERE Loyalty_Customer_Id__c IN ('c-1', 'c-2', 'c-3')"
    ]


async def test_one_query_per_200_ids_and_every_page_followed(
    salesforce: FakeSalesforce, client: SalesforceClient
) -> None:
    ids = [f"cust-{n}" for n in range(450)]
    for n, customer_id in enumerate(ids):
        salesforce.add_contact(customer_id, f"First{n}", f"Last{n}")
    salesforce.page_size = 150  # each query of 200 answers in two pages

    profiles = await client.profiles(ids)

    assert len(profiles) == 450
    assert profiles["cust-449"] == CrmProfile(
        source="salesforce", first_name="First449", last_name="Last449"
    )
    assert salesforce.calls["query"] == 3  # 200 + 200 + 50 ids
    assert salesforce.calls["query_more"] == 2  # the second pages of the two full queries
    assert salesforce.calls["token"] == 1  # shared by the three concurrent queries
    assert sorted(q.count("'cust-") for q in salesforce.queries) == [50, 200, 200]


async def test_ids_with_quotes_and_backslashes_are_escaped_and_match(
    salesforce: FakeSalesforce, client: SalesforceClient
) -> None:
    tricky = "o'brien\\1"
    salesforce.add_contact(tricky, "Conan", "O'Brien")
    salesforce.add_contact("x", "Not", "Asked")

    profiles = await client.profiles([tricky, "') OR Id != ('"])

    assert profiles == {
        tricky: CrmProfile(source="salesforce", first_name="Conan", last_name="O'Brien"),
        "') OR Id != ('": None,
    }


async def test_case_of_a_text_external_id_does_not_matter(
    salesforce: FakeSalesforce, client: SalesforceClient
) -> None:
    salesforce.add_contact("ABC-7", "Upper", "Case")
    assert await client.profiles(["abc-7"]) == {
        "abc-7": CrmProfile(source="salesforce", first_name="Upper", last_name="Case")
    }


async def test_expired_session_gets_one_new_token_and_the_query_repeated(
    salesforce: FakeSalesforce, client: SalesforceClient
) -> None:
    salesforce.add_contact("c-1", "Ada", "Lovelace")
    await client.profiles(["c-1"])
    salesforce.expire_tokens()

    profiles = await client.profiles(["c-1"])

    assert profiles["c-1"] == CrmProfile(
        source="salesforce", first_name="Ada", last_name="Lovelace"
    )
    assert salesforce.calls["token"] == 2
    assert salesforce.calls["query"] == 3  # first, refused, repeated


async def test_the_token_is_kept_between_calls(
    salesforce: FakeSalesforce, client: SalesforceClient
) -> None:
    for _ in range(3):
        await client.profiles(["c-1"])
    assert salesforce.calls["token"] == 1
    assert salesforce.calls["query"] == 3


async def test_wrong_secret_is_bad_credentials(salesforce: FakeSalesforce) -> None:
    config = crm(salesforce, client_secret="wrong")
    async with client_session(config) as session:
        client = SalesforceClient("test", config, session, Breakers())
        with pytest.raises(BadCredentials, match="invalid_client"):
            await client.profiles(["c-1"])
    assert salesforce.calls["token"] == 1  # a refusal is not retried
    assert salesforce.calls["query"] == 0


async def test_unknown_consumer_key_is_bad_credentials(salesforce: FakeSalesforce) -> None:
    config = crm(salesforce, client_id="3MVG9nobody")
    async with client_session(config) as session:
        client = SalesforceClient("test", config, session, Breakers())
        with pytest.raises(BadCredentials, match="invalid_client_id"):
            await client.profiles(["c-1"])


async def test_a_token_refused_twice_is_bad_credentials(
    salesforce: FakeSalesforce, client: SalesforceClient
) -> None:
    await client.profiles(["c-1"])
    salesforce.tokens.clear()
    salesforce.fail(401, times=2)  # the repeated query is refused too
    with pytest.raises(BadCredentials, match="INVALID_SESSION_ID"):
        await client.profiles(["c-2"])
    assert salesforce.calls["token"] == 2  # one new token, not a loop


async def test_unknown_field_is_a_bad_answer(salesforce: FakeSalesforce) -> None:
    config = crm(salesforce, customer_id_property="Missing__c")
    async with client_session(config) as session:
        client = SalesforceClient("test", config, session, Breakers())
        with pytest.raises(BadAnswer, match="INVALID_FIELD"):
            await client.profiles(["c-1"])
    assert salesforce.calls["query"] == 1  # a 400 is not retried


async def test_malformed_json_is_a_bad_answer(
    salesforce: FakeSalesforce, client: SalesforceClient
) -> None:
    salesforce.malformed = True
    with pytest.raises(BadAnswer, match="not JSON"):
        await client.profiles(["c-1"])


async def test_a_5xx_is_retried_then_answers(
    salesforce: FakeSalesforce, client: SalesforceClient
) -> None:
    salesforce.add_contact("c-1", "Ada", "Lovelace")
    salesforce.fail(503)
    profiles = await client.profiles(["c-1"])
    assert profiles["c-1"] is not None
    assert salesforce.calls["failed"] == 1
    assert salesforce.calls["query"] == 1  # the failed call never reached the handler


async def test_outage_is_unavailable(salesforce: FakeSalesforce, client: SalesforceClient) -> None:
    salesforce.outage = True
    with pytest.raises(BackendUnavailable):
        await client.profiles(["c-1"])


async def test_request_limit_exceeded_is_throttling(
    salesforce: FakeSalesforce, client: SalesforceClient
) -> None:
    salesforce.limit_exceeded(times=5)
    with pytest.raises(BackendThrottled):
        await client.profiles(["c-1"])


async def test_a_hang_ends_at_the_deadline(salesforce: FakeSalesforce) -> None:
    config = crm(salesforce, timeout=0.3)
    async with client_session(config) as session:
        client = SalesforceClient("test", config, session, Breakers())
        salesforce.hang = True
        with pytest.raises(BackendTimeout):
            await client.profiles(["c-1"])


async def test_a_next_records_url_elsewhere_is_not_followed(
    salesforce: FakeSalesforce, client: SalesforceClient
) -> None:
    for n in range(3):
        salesforce.add_contact(f"c-{n}")
    salesforce.page_size = 1
    original = salesforce._page

    def hostile(*args: Any, **kwargs: Any) -> Any:
        response = original(*args, **kwargs)
        assert response.text is not None
        response.text = response.text.replace('"/services/data/', '"https://evil.example/')
        return response

    salesforce._page = hostile  # type: ignore[method-assign]
    with pytest.raises(BadAnswer, match="nextRecordsUrl"):
        await client.profiles(["c-0", "c-1", "c-2"])


async def test_write_back_updates_each_contact_by_external_id(
    salesforce: FakeSalesforce, client: SalesforceClient
) -> None:
    ada, slash = salesforce.add_contact("ada"), salesforce.add_contact("a/b c")

    await client.write_loyalty(
        {
            "ada": LoyaltyStanding(450, "Silver"),
            "a/b c": LoyaltyStanding(100, "Bronze"),
            "nobody": LoyaltyStanding(5, "Bronze"),
        }
    )

    assert ada.loyalty == {"Loyalty_Points__c": 450, "Loyalty_Tier__c": "Silver"}
    assert slash.loyalty == {"Loyalty_Points__c": 100, "Loyalty_Tier__c": "Bronze"}
    assert salesforce.calls["upsert"] == 3  # one PATCH per member
    assert [c.customer_id for c in salesforce.contacts] == ["ada", "a/b c"]  # none created
    assert salesforce.contact("nobody") is None


async def test_write_back_after_an_expired_session_gets_a_new_token(
    salesforce: FakeSalesforce, client: SalesforceClient
) -> None:
    ada = salesforce.add_contact("ada")
    await client.write_loyalty({"ada": LoyaltyStanding(1, "Bronze")})
    salesforce.expire_tokens()
    await client.write_loyalty({"ada": LoyaltyStanding(2, "Bronze")})
    assert ada.loyalty["Loyalty_Points__c"] == 2
    assert salesforce.calls["token"] == 2


async def test_write_back_by_a_field_that_is_no_external_id_is_a_bad_answer(
    salesforce: FakeSalesforce,
) -> None:
    config = crm(salesforce, customer_id_property="Email")
    async with client_session(config) as session:
        client = SalesforceClient("test", config, session, Breakers())
        with pytest.raises(BadAnswer, match="external ID field Email"):
            await client.write_loyalty({"ada": LoyaltyStanding(1, "Bronze")})


async def test_write_back_is_not_retried_on_5xx(
    salesforce: FakeSalesforce, client: SalesforceClient
) -> None:
    salesforce.add_contact("ada")
    salesforce.fail(500)
    with pytest.raises(BackendUnavailable):
        await client.write_loyalty({"ada": LoyaltyStanding(10, "Bronze")})
    assert salesforce.calls["failed"] == 1
    assert salesforce.upserts == []


def test_a_salesforce_crm_needs_its_credentials() -> None:
    with pytest.raises(ValueError, match="client_id"):
        Crm(kind="salesforce", base_url="https://acme.my.salesforce.com")


async def test_a_batch_too_long_for_one_url_is_split(
    salesforce: FakeSalesforce, client: SalesforceClient
) -> None:
    ids = [f"{n:03d}-" + "x" * 96 for n in range(200)]  # 100 characters each
    salesforce.add_contact(ids[0], "First", "Of200")
    salesforce.add_contact(ids[-1], "Last", "Of200")

    profiles = await client.profiles(ids)

    assert profiles[ids[0]] == CrmProfile(
        source="salesforce", first_name="First", last_name="Of200"
    )
    assert profiles[ids[-1]] == CrmProfile(
        source="salesforce", first_name="Last", last_name="Of200"
    )
    assert sum(p is None for p in profiles.values()) == 198
    assert salesforce.calls["query"] == 2  # 20 KB of ids would pass Salesforce's 16 KB URL
    assert sorted(q.count("xxxx'") for q in salesforce.queries) == [100, 100]


async def test_a_429_waits_its_retry_after_then_answers(
    salesforce: FakeSalesforce, client: SalesforceClient
) -> None:
    salesforce.add_contact("c-1", "Ada", "Lovelace")
    salesforce.throttle(0.1)
    profiles = await client.profiles(["c-1"])
    assert profiles["c-1"] is not None
    assert salesforce.calls["failed"] == 1


async def test_a_maintenance_page_is_unavailable(
    salesforce: FakeSalesforce, client: SalesforceClient
) -> None:
    salesforce.fail(503, times=5)
    with pytest.raises(BackendUnavailable, match="503"):
        await client.profiles(["c-1"])
    assert salesforce.calls["failed"] == 3  # the base client's attempts, then it gives up
