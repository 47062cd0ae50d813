"""Program files: the bundled demo loads, and a bad file names its file, key and reason."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from ledger.errors import ProgramFileError
from ledger.program import DEMO_PROGRAM, load_program, load_programs

VALID = 'id = "shop"\nname = "Shop"\ncurrency = "EUR"\n'


def test_the_bundled_demo_program_loads() -> None:
    program = load_program(DEMO_PROGRAM)
    assert (program.id, program.currency, program.pending_days) == ("acme", "USD", 14)
    assert [tier.name for tier in program.tiers] == ["Bronze", "Silver", "Gold"]
    assert program.tier("Gold").earn_multiplier == Decimal("1.5")
    assert program.earning.exclude_categories == ("gift-cards",)
    assert program.action("product_review") is not None


def test_defaults_of_a_minimal_program(tmp_path: Path) -> None:
    path = tmp_path / "shop.toml"
    path.write_text(VALID)
    program = load_program(path)
    assert program.point_value == Decimal("0.01")
    assert (program.pending_days, program.expiry_days, program.hold_minutes) == (0, 0, 15)
    assert program.tiers[0].threshold == 0


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        pytest.param("id = ", "", "not valid TOML", id="not-toml"),
        pytest.param(VALID.replace('"EUR"', '"euro"'), "currency", "match pattern", id="currency"),
        pytest.param(
            VALID + "pending_days = -1\n",
            "pending_days",
            "greater than or equal to 0",
            id="negative-days",
        ),
        pytest.param(
            VALID + 'pending_days = "two"\n', "pending_days", "valid integer", id="wrong-type"
        ),
        pytest.param(
            VALID + "colour = 1\n", "colour", "Extra inputs are not permitted", id="unknown-key"
        ),
        pytest.param(
            VALID + 'timezone = "Mars/Olympus"\n',
            "timezone",
            "unknown time zone 'Mars/Olympus'",
            id="timezone",
        ),
        pytest.param(
            VALID + '[[tiers]]\nname = "A"\nthreshold = 10\n',
            "tiers",
            "the first tier must have threshold 0",
            id="first-tier",
        ),
        pytest.param(
            VALID + '[[tiers]]\nname = "A"\nthreshold = 0\n[[tiers]]\nname = "B"\nthreshold = 0\n',
            "tiers",
            "tier thresholds must strictly ascend",
            id="tiers-ascend",
        ),
        pytest.param(
            VALID + '[[rewards]]\nid = "r"\nname = "R"\ncost = 5\nmin_tier = "Platinum"\n',
            "rewards.0.min_tier",
            "unknown tier 'Platinum'",
            id="min-tier",
        ),
        pytest.param(
            VALID + '[[rewards]]\nid = "r"\nname = "R"\ncost = 5\n'
            '[[rewards]]\nid = "r"\nname = "S"\ncost = 6\n',
            "rewards",
            "ids must be unique",
            id="duplicate-reward",
        ),
        pytest.param(
            VALID + '[[earning.multipliers]]\nname = "M"\nfactor = "0"\n',
            "earning.multipliers.0.factor",
            "greater than 0",
            id="factor-zero",
        ),
        pytest.param(
            VALID + '[[earning.multipliers]]\nname = "M"\nfactor = "-2"\n',
            "earning.multipliers.0.factor",
            "greater than 0",
            id="factor-negative",
        ),
        pytest.param(
            VALID + '[[earning.multipliers]]\nname = "M"\nfactor = "2"\n'
            "starts_at = 2026-01-01T00:00:00\n",
            "earning.multipliers.0",
            "starts_at needs a UTC offset",
            id="naive-start",
        ),
        pytest.param(
            VALID + '[[earning.multipliers]]\nname = "M"\nfactor = "2"\nweekdays = ["FUN"]\n',
            "earning.multipliers.0.weekdays.0",
            "Input should be",
            id="weekday",
        ),
        pytest.param(
            VALID + '[webhook_secrets]\nevents = "not base64!"\n',
            "webhook_secrets.events",
            "a webhook secret is base64",
            id="events-secret",
        ),
        pytest.param(
            VALID + '[webhook_secrets]\nshopify = ""\n',
            "webhook_secrets.shopify.0",
            "at least 1 character",
            id="empty-secret",
        ),
    ],
)
def test_a_bad_program_file_names_file_key_and_reason(
    tmp_path: Path, text: str, key: str, reason: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ProgramFileError) as raised:
        load_program(path)
    assert raised.value.path == str(path)
    assert raised.value.key == key
    assert reason in raised.value.reason
    assert str(raised.value).startswith(f"{path}: ")


def test_a_missing_file_is_a_program_file_error(tmp_path: Path) -> None:
    with pytest.raises(ProgramFileError) as raised:
        load_program(tmp_path / "absent.toml")
    assert "cannot read" in raised.value.reason


def test_a_folder_holds_one_program_per_file(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(VALID)
    (tmp_path / "b.toml").write_text(VALID.replace('"shop"', '"outlet"'))
    assert sorted(load_programs(tmp_path)) == ["outlet", "shop"]


def test_the_same_program_twice_names_the_second_file(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(VALID)
    (tmp_path / "b.toml").write_text(VALID)
    with pytest.raises(ProgramFileError) as raised:
        load_programs(tmp_path)
    assert (raised.value.path, raised.value.key) == (str(tmp_path / "b.toml"), "id")


def test_an_empty_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ProgramFileError, match=r"no \*\.toml program files"):
        load_programs(tmp_path)


def test_inbound_secrets_take_one_or_a_list_current_first(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(VALID + '[webhook_secrets]\nshopify = ["new", "old"]\nstripe = "whsec_x"\n')
    secrets = load_program(path).webhook_secrets
    assert secrets.of("shopify") == ("new", "old")
    assert secrets.of("stripe") == ("whsec_x",)
    assert secrets.of("events") == ()
    assert secrets.of("of") == ()  # only secret keys are looked up


SQUARE_OK = (
    VALID + '[webhook_secrets]\nsquare = "key"\n'
    'square_notification_url = "https://loyalty.example/webhooks/shop/square"\n'
    '[square]\nbase_url = "https://connect.squareup.com"\ntoken = "EAAA"\n'
)
PAYPAL_OK = (
    VALID + '[paypal]\nwebhook_id = "1JE4291016473214C"\nclient_id = "id"\n'
    'client_secret = "secret"\nbase_url = "https://api-m.paypal.com"\n'
)


def test_square_and_paypal_sections_load(tmp_path: Path) -> None:
    path = tmp_path / "shop.toml"
    path.write_text(SQUARE_OK)
    program = load_program(path)
    assert program.square is not None
    assert (program.square.base_url, program.square.version) == (
        "https://connect.squareup.com",
        "2026-08-19",
    )
    assert program.webhook_secrets.of("square") == ("key",)
    assert program.webhook_secrets.of("square_notification_url") == ()  # not a secret
    path.write_text(PAYPAL_OK)
    paypal = load_program(path).paypal
    assert paypal is not None and paypal.webhook_id == "1JE4291016473214C"


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        pytest.param(
            VALID + '[webhook_secrets]\nsquare = "key"\n'
            '[square]\nbase_url = "https://connect.squareup.com"\ntoken = "EAAA"\n',
            "webhook_secrets.square_notification_url",
            "the notification URL as registered in Square is part of what Square signs",
            id="square-without-url",
        ),
        pytest.param(
            VALID + '[webhook_secrets]\nsquare = "key"\n'
            'square_notification_url = "https://loyalty.example/webhooks/shop/square"\n',
            "square",
            "required with webhook_secrets.square",
            id="square-without-api",
        ),
        pytest.param(
            SQUARE_OK.replace('"https://connect.squareup.com"', '"connect.squareup.com"'),
            "square.base_url",
            "should match pattern",
            id="square-base-url",
        ),
        pytest.param(
            PAYPAL_OK.replace('webhook_id = "1JE4291016473214C"', 'webhook_id = "WH-1"'),
            "paypal.webhook_id",
            "should match pattern",
            id="paypal-webhook-id",
        ),
        pytest.param(
            PAYPAL_OK.replace('client_secret = "secret"\n', ""),
            "paypal.client_secret",
            "Field required",
            id="paypal-secret",
        ),
    ],
)
def test_a_bad_square_or_paypal_section_names_its_key(
    tmp_path: Path, text: str, key: str, reason: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ProgramFileError) as raised:
        load_program(path)
    assert raised.value.key == key
    assert reason in raised.value.reason
