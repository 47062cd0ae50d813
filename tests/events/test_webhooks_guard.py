"""The address guard of outgoing webhooks, with LOYALTY_ALLOW_PRIVATE_WEBHOOKS off:
loopback, private, link-local and metadata addresses, literal or behind a name, are
refused with nothing sent, recorded REFUSED and never retried."""

from __future__ import annotations

import ipaddress
import logging
import socket
from datetime import timedelta

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from sqlalchemy import select

from events import webhook_guard
from events.webhooks import WebhookDispatcher
from ledger.db import Database
from ledger.models import DeliveryOutcome, WebhookDelivery
from ledger.service import LoyaltyService
from tests.support.ledger import Clock, enroll, make_program
from tests.support.receiver import SECRET, Receiver, receiving


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "10.0.0.1", "169.254.169.254", "localhost"])
async def test_private_endpoints_are_refused_and_nothing_is_sent(
    database: Database, clock: Clock, host: str, caplog: pytest.LogCaptureFixture
) -> None:
    bind = "::1" if host == "[::1]" else "127.0.0.1"
    if bind == "::1" and not _has_ipv6_loopback():
        pytest.skip("no IPv6 loopback here")
    async with receiving(Receiver(host=bind)) as hook:
        url = f"http://{host}:{hook.port}/hook"
        program = make_program(webhooks=[{"url": url, "secret": SECRET}])
        service = LoyaltyService({program.id: program}, clock=clock)
        await enroll(database, service, "c-1")  # member.enrolled and the signup bonus
        with caplog.at_level(logging.WARNING, logger="loyalty.webhooks"):
            sender = WebhookDispatcher(database, service.programs, clock, allow_private=False)
        literal = host != "localhost"
        assert (url in caplog.text) is literal  # a literal private address warns at start
        report = await sender.run_due(clock.now)
        for day in range(1, 3):
            await sender.run_due(clock.now + timedelta(days=day))
        assert hook.received == []
    assert report.outcomes == {"test": {"REFUSED": 2}}
    async with database.reading() as session:
        rows = (await session.scalars(select(WebhookDelivery))).all()
    assert [(r.outcome, r.attempts, r.next_attempt_at, r.last_status) for r in rows] == [
        (DeliveryOutcome.REFUSED, 1, None, None)
    ] * 2
    expected = (
        "private address refused"
        if literal
        else "localhost resolves only to addresses webhooks may not reach"
    )
    assert {row.attempt_log[0]["error"] for row in rows} == {expected}


async def test_the_flag_lets_loopback_through(database: Database, clock: Clock) -> None:
    async with receiving(Receiver()) as hook:
        program = make_program(webhooks=[{"url": hook.url, "secret": SECRET}])
        service = LoyaltyService({program.id: program}, clock=clock)
        await enroll(database, service, "c-1")
        await WebhookDispatcher(database, service.programs, clock, allow_private=True).run_due(
            clock.now
        )
    assert len(hook.received) == 2


class _Rebinding(AbstractResolver):
    """A name server that answers a public address and a loopback one for the name."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host, host=address, port=port, family=socket.AF_INET, proto=0, flags=0
            )
            for address in ("93.184.215.14", "127.0.0.1")
        ]

    async def close(self) -> None:
        return None


async def test_the_resolver_keeps_only_public_addresses() -> None:
    guarded = webhook_guard.GuardedResolver(_Rebinding())
    assert [r["host"] for r in await guarded.resolve("rebind.example", 80)] == ["93.184.215.14"]
    with pytest.raises(webhook_guard.RefusedAddress):
        await webhook_guard.GuardedResolver().resolve("localhost", 80)


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("10.0.0.1", True),
        ("172.16.5.4", True),
        ("192.168.1.1", True),
        ("169.254.169.254", True),
        ("fd00:ec2::254", True),
        ("fe80::1", True),
        ("100.100.100.200", True),
        ("100.64.0.1", True),
        ("0.0.0.0", True),
        ("::", True),
        ("224.0.0.1", True),
        ("ff02::1", True),
        ("::ffff:127.0.0.1", True),
        ("::ffff:10.0.0.1", True),
        ("93.184.215.14", False),
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", False),
    ],
)
def test_which_addresses_are_refused(address: str, refused: bool) -> None:
    assert webhook_guard.is_refused(ipaddress.ip_address(address)) is refused


def test_literal_addresses_are_read_from_the_url() -> None:
    assert webhook_guard.refused_literal("http://[::1]:8080/x")
    assert webhook_guard.refused_literal("https://169.254.169.254/latest/meta-data")
    assert not webhook_guard.refused_literal("https://hooks.example/x")
    assert not webhook_guard.refused_literal("https://93.184.215.14/x")
