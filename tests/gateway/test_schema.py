"""The checked-in `schema.graphql` is the schema the code serves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from schema.root import build_schema, sdl

ROOT = Path(__file__).resolve().parents[2]


def test_checked_in_sdl_matches_the_code() -> None:
    checked_in = (ROOT / "schema.graphql").read_text()
    assert checked_in == sdl(), (
        "schema.graphql drifted: run `loyalty-gateway schema > schema.graphql`"
    )


def test_schema_command_prints_the_sdl() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "schema"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        stdin=subprocess.DEVNULL,
    ).stdout
    assert printed == sdl()


def test_the_root_fields_are_those_of_the_design() -> None:
    schema = build_schema()._schema
    assert schema.query_type is not None and schema.mutation_type is not None
    assert set(schema.query_type.fields) == {
        "me",
        "member",
        "members",
        "tiers",
        "rewards",
        "programStats",
        "pointsSeries",
        "exportMember",
        "webhookDeliveries",
    }
    assert set(schema.mutation_type.fields) == {
        "enrollMember",
        "updateMember",
        "forgetMember",
        "recordPurchase",
        "recordPurchases",
        "recordAction",
        "refundPurchase",
        "adjustPoints",
        "redeemReward",
        "useRedemption",
        "cancelRedemption",
        "holdPoints",
        "capturePoints",
        "releasePoints",
        "upsertReward",
        "retryWebhookDelivery",
    }
