"""Which hosts a media URL may reach: the guard against server-side request forgery.

A task's URLs come from API callers, and the worker fetches them from inside the operator's
network. Without a guard, ``http://169.254.169.254/…`` (cloud metadata), ``http://localhost:…``
or a private service would be fetched on the caller's behalf. So every host is resolved once,
*all* of its addresses must be public, and the connection then goes to one of those checked
addresses (see ``fetch.py``), so that a second DNS answer cannot point somewhere else
(DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from reelgate.core.errors import InvalidUrl

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Shared address space for carrier-grade NAT; not covered by ``is_private`` on Python 3.11.
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
#: NAT64 prefixes, which embed an IPv4 address in the last 32 bits.
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))

ALLOW_SETTING = "REELGATE_ALLOW_PRIVATE_NETWORKS=true"


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries (mapped, 6to4, NAT64), which is what gets reached."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(ip: IPAddress) -> bool:
    """True when ``ip`` is an ordinary internet address that a fetch may reach."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return is_public_address(embedded)
    if (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_unspecified
        or ip.is_multicast
        or ip.is_reserved
    ):
        return False
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return False
    # ``is_global`` also excludes the IANA special-purpose blocks the flags above miss
    # (documentation, benchmarking, 192.0.0.0/24, ...).
    return ip.is_global


@dataclass(frozen=True)
class NetworkPolicy:
    """Which addresses a fetch may reach besides public ones."""

    #: Everything (``REELGATE_ALLOW_PRIVATE_NETWORKS=true``): development and tests.
    allow_private_networks: bool = False
    #: Specific non-public networks that are trusted anyway, e.g. an object store on the LAN,
    #: so that one internal host can be allowed without opening all of them.
    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def build(
        cls, *, allow_private_networks: bool, allowed_networks: Iterable[str | IPNetwork] = ()
    ) -> NetworkPolicy:
        return cls(
            allow_private_networks,
            tuple(ipaddress.ip_network(net, strict=False) for net in allowed_networks),
        )

    def permits(self, ip: IPAddress) -> bool:
        if self.allow_private_networks or is_public_address(ip):
            return True
        forms: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and (embedded := _embedded_ipv4(ip)):
            forms.append(embedded)
        return any(form in net for form in forms for net in self.allowed_networks)


@dataclass(frozen=True)
class ResolvedHost:
    host: str
    #: Every address the host resolved to, in resolver order, all of them checked.
    addresses: tuple[IPAddress, ...]


def resolve_host(host: str, port: int, policy: NetworkPolicy) -> ResolvedHost:
    """Resolve ``host`` and refuse it unless ``policy`` permits every one of its addresses.

    All addresses must pass, not just the first: an attacker's DNS can return a public and a
    private address together and leave the choice to the client's connection logic.
    Raises ``InvalidUrl`` with a message that names the host; callers add the field name.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidUrl(f"cannot resolve host {host!r} ({exc})") from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        # Drop an IPv6 zone ("fe80::1%eth0"): the address itself decides.
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise InvalidUrl(f"cannot resolve host {host!r} (no addresses)")
    for ip in addresses:
        if not policy.permits(ip):
            shown = host if host == str(ip) else f"{host} ({ip})"
            raise InvalidUrl(
                f"host {shown} resolves to a non-public address; fetching from loopback, "
                f"private, link-local or reserved networks is refused unless the server "
                f"sets {ALLOW_SETTING}"
            )
    return ResolvedHost(host, tuple(addresses))
