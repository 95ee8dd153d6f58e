"""The network guard: which addresses count as public, and resolving hosts against a policy."""

from __future__ import annotations

import ipaddress

import pytest

from reelgate.core.errors import InvalidUrl
from reelgate.media.netguard import NetworkPolicy, is_public_address, resolve_host
from tests.unit.media.media_support import FakeDns

NON_PUBLIC = [
    "127.0.0.1",
    "127.255.0.9",
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # carrier-grade NAT
    "100.127.255.254",
    "0.0.0.0",
    "224.0.0.1",  # multicast
    "240.0.0.1",  # reserved
    "255.255.255.255",
    "192.0.2.10",  # documentation
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "ff02::1",
    "::ffff:127.0.0.1",  # IPv4-mapped forms
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "2002:a00:1::",  # 6to4 around 10.0.0.1
    "64:ff9b::a00:1",  # NAT64 around 10.0.0.1
]

PUBLIC = ["8.8.8.8", "93.184.216.34", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", NON_PUBLIC)
def test_non_public_addresses(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))


def test_policy_allows_listed_networks_only() -> None:
    policy = NetworkPolicy.build(allow_private_networks=False, allowed_networks=["10.9.0.0/16"])
    assert policy.permits(ipaddress.ip_address("10.9.1.1"))
    assert policy.permits(ipaddress.ip_address("::ffff:10.9.1.1"))
    assert not policy.permits(ipaddress.ip_address("10.8.1.1"))
    assert NetworkPolicy(allow_private_networks=True).permits(ipaddress.ip_address("10.8.1.1"))


def test_every_address_of_a_host_must_be_public(fake_dns: FakeDns) -> None:
    fake_dns.names["mixed.test"] = ["93.184.216.34", "10.0.0.5"]
    with pytest.raises(InvalidUrl) as info:
        resolve_host("mixed.test", 80, NetworkPolicy())
    assert "mixed.test (10.0.0.5) resolves to a non-public address" in str(info.value)
    assert "REELGATE_ALLOW_PRIVATE_NETWORKS=true" in str(info.value)


def test_public_host_resolves_to_all_its_addresses(fake_dns: FakeDns) -> None:
    fake_dns.names["cdn.test"] = ["93.184.216.34", "2606:4700::1111"]
    resolved = resolve_host("cdn.test", 443, NetworkPolicy())
    assert [str(ip) for ip in resolved.addresses] == ["93.184.216.34", "2606:4700::1111"]


def test_unresolvable_host(fake_dns: FakeDns) -> None:
    with pytest.raises(InvalidUrl) as info:
        resolve_host("nowhere.test", 80, NetworkPolicy())
    assert "cannot resolve host 'nowhere.test'" in str(info.value)


def test_numeric_host_spellings_are_resolved_before_checking() -> None:
    # 2130706433 is 127.0.0.1 as one decimal number; resolvers accept it.
    with pytest.raises(InvalidUrl, match="non-public"):
        resolve_host("2130706433", 80, NetworkPolicy())
