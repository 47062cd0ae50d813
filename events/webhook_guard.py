"""The address guard of outgoing webhooks: no delivery reaches a loopback, private,
link-local, multicast, unspecified, reserved or cloud-metadata address, unless
`LOYALTY_ALLOW_PRIVATE_WEBHOOKS=true`.

Host names are checked on the addresses the connection is actually made to: the guard
is the resolver of the connector, so a name that resolves to a public address for a
check and to 127.0.0.1 for the connection (DNS rebinding) gets nowhere. Literal
addresses never reach a resolver (aiohttp connects to them directly): they are checked
on the URL, before anything is sent.
"""

from __future__ import annotations

import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

# Metadata services of the clouds, named even where the ranges already cover them.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class RefusedAddress(OSError):
    """The endpoint is (or resolves only to) an address the guard refuses."""


def is_refused(address: Address) -> bool:
    """Loopback, private, link-local, multicast, unspecified, reserved, shared, metadata:
    anything not globally routable (IPv4-mapped IPv6 addresses read as their IPv4)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address in METADATA_ADDRESSES or address.is_multicast or not address.is_global


def literal_address(url: str) -> Address | None:
    """The address of a URL whose host is an IP literal, else None."""
    host = URL(url).raw_host or ""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return None


def refused_literal(url: str) -> bool:
    """Whether the URL names a refused address literally (warned about at start)."""
    address = literal_address(url)
    return address is not None and is_refused(address)


class GuardedResolver(AbstractResolver):
    """The connector's resolver: only the addresses the guard lets through."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self.inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        allowed = [result for result in results if not is_refused(_address(result["host"]))]
        if not allowed:
            raise RefusedAddress(f"{host} resolves only to addresses webhooks may not reach")
        return allowed

    async def close(self) -> None:
        await self.inner.close()


def _address(host: str) -> Address:
    return ipaddress.ip_address(host.split("%")[0])
