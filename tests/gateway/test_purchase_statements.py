"""The write of DESIGN §10's R2, `recordPurchase` with a fresh idempotency key and order
id for a member who bought before, costs a known number of SQL statements, each a round
trip to the database under the writer's lock. A change that adds one fails here first."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from ledger import rules
from tests.support.gateway import Gateway
from tests.support.operations import buy, enroll, line

# The relay, the webhook dispatcher and the revocation poll run on the same engine:
# not the request's statements.
BACKGROUND = ("FROM outbox", "FROM webhook_deliveries", "FROM revoked_tokens", "UPDATE outbox")


@contextmanager
def statements(gw: Gateway) -> Iterator[list[tuple[int, str]]]:
    """Every statement sent meanwhile, with the connection that sent it; COMMIT too."""
    engine = gw.database.engine.sync_engine
    seen: list[tuple[int, str]] = []

    def sent(connection: Any, cursor: Any, text: str, *args: Any) -> None:
        seen.append((id(connection), " ".join(text.split())))

    def committed(connection: Any) -> None:
        seen.append((id(connection), "COMMIT"))

    event.listen(engine, "before_cursor_execute", sent)
    event.listen(engine, "commit", committed)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", sent)
        event.remove(engine, "commit", committed)


def write_transaction(seen: list[tuple[int, str]]) -> tuple[list[str], int]:
    """The statements of the purchase's transaction, from the idempotency key's insert
    (its first statement once begun) to its COMMIT, on its connection alone; and the
    position of that COMMIT in `seen`."""
    first = next(i for i, (_, text) in enumerate(seen) if text.startswith(KEY_INSERT))
    connection = seen[first][0]
    mine = [(i, text) for i, (c, text) in enumerate(seen) if i >= first and c == connection]
    end = next(n for n, (_, text) in enumerate(mine) if text == "COMMIT")
    return [text for _, text in mine[: end + 1]], mine[end][0]


KEY_INSERT = "INSERT INTO idempotency_keys"
# Per database: the advisory lock of the order id is PostgreSQL's alone. No SAVEPOINT:
# a purchase that succeeds has nothing to roll back.
WRITE_STATEMENTS = {"sqlite": 12, "postgresql": 13}


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
async def test_a_purchase_costs_few_statements(gw: Gateway) -> None:
    await enroll(gw, "ada")  # 100 points
    await buy(gw, "ada", "1000", line("10.00"))  # 10 pending
    await gw.token()  # minted before counting
    with statements(gw) as seen:
        bought = await buy(
            gw, "ada", "1001", line("30.00", 2, "shoes", "SHOE"), line("10.49", 1, "socks")
        )
    assert bought["userErrors"] == []
    assert bought["transaction"]["points"] == 130
    assert bought["member"]["points"] == {"available": 100, "pending": 140}
    written, _ = write_transaction(seen)
    dialect = gw.database.engine.dialect.name
    assert len(written) == WRITE_STATEMENTS[dialect], "\n".join(written)
    assert not [text for text in written if "SAVEPOINT" in text]


BENCH_PURCHASE = """mutation Buy($input: PurchaseInput!) {
  recordPurchase(input: $input) { transaction { points } userErrors { code } } }"""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_answer_to_a_purchase_reads_nothing_back(gw: Gateway) -> None:
    """The entry comes back from its INSERT; the member is read only when asked for."""
    await enroll(gw, "ada")
    await gw.token()
    purchase = {
        "idempotencyKey": "buy-1",
        "member": {"customerId": "ada"},
        "orderId": "1",
        "currency": "USD",
        "lines": [line("30.00", 2, "shoes", "SHOE")],
    }
    with statements(gw) as seen:
        data = await gw.partner(BENCH_PURCHASE, {"input": purchase})
    assert data["recordPurchase"] == {"transaction": {"points": 120}, "userErrors": []}
    _, commit = write_transaction(seen)
    after = seen[commit + 1 :]
    reads = [text for _, text in after if "FROM entries" in text or "FROM members" in text]
    assert reads == []
    # A replay of the key answers the same, the entry read back by its id.
    again = await gw.partner(BENCH_PURCHASE, {"input": purchase})
    assert again == data


def purchase_input(
    key: str, customer: str, order: str, price: str, category: str | None = None
) -> dict[str, Any]:
    return {
        "idempotencyKey": key,
        "member": {"customerId": customer},
        "orderId": order,
        "currency": "USD",
        "lines": [line(price, 1, category)],
    }


REFUSABLE = """mutation Buy($input: PurchaseInput!) {
  recordPurchase(input: $input) { transaction { points } userErrors { code } } }"""
MEMBER = "query M($c: String!) { member(ref: {customerId: $c}) { points { available pending } } }"


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
async def test_a_refusal_after_writing_leaves_nothing_of_the_command(gw: Gateway) -> None:
    """A new customer is enrolled on the fly, then the order is refused for its points
    (shoes earn double: over one entry's bound, though the amount is within its own).
    Run without a savepoint, the command had written the member when it was refused,
    so its transaction rolls back and it runs again with the savepoint. Nothing of it
    stays: no member, no key (the input was invalid)."""
    await gw.token()
    shoes = str(rules.MAX_POINTS // 2 + 1)
    refused = {"transaction": None, "userErrors": [{"code": "INVALID_AMOUNT"}]}
    with statements(gw) as seen:
        data = await gw.partner(
            REFUSABLE, {"input": purchase_input("k1", "new", "1", shoes, "shoes")}
        )
    assert data["recordPurchase"] == refused
    keys = [text for _, text in seen if text.startswith(KEY_INSERT)]
    assert len(keys) == 2  # the first run, rolled back, and the run with the savepoint
    assert [text for _, text in seen if text.startswith("SAVEPOINT")] != []
    assert (await gw.partner(MEMBER, {"c": "new"}))["member"] is None
    # The key was not kept: corrected, the same key enrols the customer and earns once.
    data = await gw.partner(REFUSABLE, {"input": purchase_input("k1", "new", "1", "10.00")})
    assert data["recordPurchase"] == {"transaction": {"points": 10}, "userErrors": []}
    member = (await gw.partner(MEMBER, {"c": "new"}))["member"]
    assert member["points"] == {"available": 100, "pending": 10}


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
async def test_a_refusal_before_writing_is_kept_in_one_transaction(gw: Gateway) -> None:
    """An order id that earned already is refused before the command writes anything:
    one transaction, no savepoint, the refusal kept under its key and replayed."""
    await enroll(gw, "ada")
    await buy(gw, "ada", "1", line("10.00"))
    await gw.token()
    again = purchase_input("k2", "ada", "1", "20.00")
    with statements(gw) as seen:
        data = await gw.partner(REFUSABLE, {"input": again})
    refused = {"transaction": None, "userErrors": [{"code": "DUPLICATE_ORDER"}]}
    assert data["recordPurchase"] == refused
    written, _ = write_transaction(seen)
    assert [text for _, text in seen if text.startswith(KEY_INSERT)] == [written[0]]
    assert not [text for text in written if "SAVEPOINT" in text]
    assert (await gw.partner(REFUSABLE, {"input": again}))["recordPurchase"] == refused
    member = (await gw.partner(MEMBER, {"c": "ada"}))["member"]
    assert member["points"] == {"available": 100, "pending": 10}


REDEEM = """mutation R($i: RedeemRewardInput!) { redeemReward(input: $i) {
  redemption { id code points status } userErrors { code } } }"""
ADJUST = "mutation A($i: AdjustPointsInput!) { adjustPoints(input: $i) { userErrors { code } } }"


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
async def test_the_answer_to_a_redemption_reads_nothing_back(gw: Gateway) -> None:
    """The redemption comes from the write, not from a read after the commit (which, with
    the pool exhausted, could turn the answer to a write that stands into a 503)."""
    await enroll(gw, "ada")
    grant = {"idempotencyKey": "a-1", "member": {"customerId": "ada"}, "points": 1000}
    granted = await gw.partner(ADJUST, {"i": {**grant, "reason": "test"}})
    assert granted["adjustPoints"]["userErrors"] == []
    redeem = {"idempotencyKey": "r-1", "member": {"customerId": "ada"}, "rewardId": "five-off"}
    with statements(gw) as seen:
        data = await gw.partner(REDEEM, {"i": redeem})
    payload = data["redeemReward"]
    assert payload["userErrors"] == []
    assert (payload["redemption"]["status"], payload["redemption"]["points"]) == ("ISSUED", 500)
    _, commit = write_transaction(seen)
    assert [text for _, text in seen[commit + 1 :] if "FROM redemptions" in text] == []
    # A replay of the key answers the same, the redemption read back by its id.
    again = await gw.partner(REDEEM, {"i": redeem})
    assert again == data
