"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic import command

from gateway.migrate import alembic_config


def test_migrations_match_the_models(database_url: str) -> None:
    command.check(alembic_config(database_url))  # raises when a migration is missing
