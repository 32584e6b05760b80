"""Where a webhook may be delivered: public http(s) endpoints only.

A developer-supplied URL is a request our worker makes from inside our network, so: only http
and https, no credentials in the URL, and the host is resolved here and EVERY address it
resolves to must be public (not loopback, private, link-local, CGNAT, multicast, reserved,
unspecified, or a cloud metadata address, IPv4-mapped forms included). The delivery then
connects to the address that was checked (with the original Host header and TLS server name),
never resolving again, so DNS rebinding between check and connect cannot redirect it; each
redirect hop is checked the same way. `WEBHOOK_ALLOW_PRIVATE_ADDRESSES` lifts the address
check for local development and tests.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

# Beyond what `ipaddress` flags: shared address space (RFC 6598) and the metadata services.
_EXTRA_BLOCKED = tuple(
    ipaddress.ip_network(net)
    for net in ("100.64.0.0/10", "169.254.169.254/32", "fd00:ec2::254/128", "192.0.0.0/24")
)


class UnsafeDestination(Exception):
    """The URL or one of its addresses is not somewhere we deliver to."""


@dataclass(frozen=True, slots=True)
class Target:
    """A checked destination: connect to `address`, say `host` in Host and SNI."""

    scheme: str
    host: str
    port: int
    address: str
    path: str  # path and query, at least "/"

    @property
    def connect_url(self) -> str:
        literal = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{literal}:{self.port}{self.path}"

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


def is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    ):
        return False
    return not any(address in network for network in _EXTRA_BLOCKED)


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


def parse_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path+query) of an acceptable URL; UnsafeDestination otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeDestination("not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeDestination("only http and https URLs are allowed")
    if not parts.hostname:
        raise UnsafeDestination("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeDestination("credentials in the URL are not allowed")
    if any(char.isspace() or ord(char) < 32 for char in url):
        raise UnsafeDestination("the URL contains whitespace or control characters")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path


async def resolve(
    url: str,
    *,
    allow_private: bool,
    resolver: Resolver = system_resolver,
    allowed: Callable[[IPAddress], bool] = is_public,
) -> Target:
    """Check `url` and pick the address to connect to (the first one resolved)."""
    scheme, host, port, path = parse_url(url)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            addresses = await resolver(host, port)
        except (OSError, UnicodeError):
            raise UnsafeDestination(f"the host {host} does not resolve") from None
        if not addresses:
            raise UnsafeDestination(f"the host {host} does not resolve")
    if not allow_private:
        for address in addresses:
            if not allowed(ipaddress.ip_address(address.split("%", 1)[0])):
                raise UnsafeDestination(
                    f"{host} resolves to {address}, a private or reserved address"
                )
    return Target(scheme, host, port, addresses[0], path)
