"""The SSRF guard: which URLs and addresses webhooks may be delivered to."""

from __future__ import annotations

import ipaddress

import pytest

from control_plane.webhooks import ssrf


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
        "169.254.1.1", "100.64.0.1", "0.0.0.0", "224.0.0.1", "240.0.0.1", "255.255.255.255",
        "::1", "::", "fe80::1", "fc00::1", "fd00:ec2::254", "::ffff:127.0.0.1",
        "::ffff:169.254.169.254", "192.0.0.8", "198.18.0.1",
    ],
)  # fmt: skip
def test_private_loopback_link_local_and_metadata_addresses_are_refused(address: str) -> None:
    assert not ssrf.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "1.1.1.1"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert ssrf.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook", "file:///etc/passwd", "gopher://x", "http://", "https:///x",
        "http://user:pass@example.com/", "http://exa mple.com/", "javascript:alert(1)",
        "http://example.com:99999/",
    ],
)  # fmt: skip
async def test_only_plain_http_and_https_urls_are_accepted(url: str) -> None:
    with pytest.raises(ssrf.UnsafeDestination):
        await ssrf.resolve(url, allow_private=True, resolver=_never)


async def _never(host: str, port: int) -> list[str]:
    raise AssertionError("must not resolve")


async def test_every_resolved_address_must_be_public() -> None:
    async def mixed(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.0.0.5"]  # one private answer is enough to refuse

    with pytest.raises(ssrf.UnsafeDestination, match=r"10\.0\.0\.5"):
        await ssrf.resolve("https://hooks.example.test/x", allow_private=False, resolver=mixed)


async def test_the_checked_address_is_the_one_connected_to() -> None:
    """DNS rebinding: the name is resolved once; the target pins that answer, so a second
    lookup (which might now say 127.0.0.1) never happens."""
    answers = [["93.184.216.34"], ["127.0.0.1"]]

    async def rebinding(host: str, port: int) -> list[str]:
        return answers.pop(0)

    target = await ssrf.resolve(
        "https://hooks.example.test:8443/in?x=1", allow_private=False, resolver=rebinding
    )
    assert target.connect_url == "https://93.184.216.34:8443/in?x=1"
    assert target.host_header == "hooks.example.test:8443"
    assert answers == [["127.0.0.1"]]  # never asked again


async def test_literal_addresses_are_checked_too() -> None:
    with pytest.raises(ssrf.UnsafeDestination):
        await ssrf.resolve("http://[::1]:8080/", allow_private=False, resolver=_never)
    with pytest.raises(ssrf.UnsafeDestination):
        await ssrf.resolve("http://2130706433/", allow_private=False)  # 127.0.0.1 in decimal
    target = await ssrf.resolve("http://[::1]:8080/", allow_private=True, resolver=_never)
    assert target.connect_url == "http://[::1]:8080/"


async def test_a_host_that_does_not_resolve_is_refused() -> None:
    async def nothing(host: str, port: int) -> list[str]:
        raise OSError("no such host")

    with pytest.raises(ssrf.UnsafeDestination, match="does not resolve"):
        await ssrf.resolve("https://nowhere.example.test/", allow_private=False, resolver=nothing)
