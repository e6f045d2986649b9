"""The one way the portal talks to URLs that admins type: timeouts, size caps and an SSRF guard."""

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore2
import httpx
import httpx2
from django.conf import settings

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


class OutboundURLError(ValueError):
    """The URL may not be fetched: bad scheme, or it points at a private or internal address."""


@dataclass(frozen=True)
class CheckedURL:
    url: str
    host: str
    addresses: tuple[str, ...]


def is_loopback_host(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _networks(*cidrs: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


# Cloud metadata services hand out credentials to whoever asks from inside: never contacted, not
# even where private networks are allowed. Link-local covers 169.254.169.254 (AWS, GCP, Azure, OCI).
_METADATA = _networks("169.254.0.0/16", "fe80::/10", "100.100.100.200/32", "168.63.129.16/32", "fd00:ec2::254/128")
# What OUTBOUND_ALLOW_PRIVATE_NETWORKS admits: where an app on the LAN, a VPN or a tailnet lives.
_PRIVATE_NETWORKS = _networks("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
# IPv6 that Python 3.11's is_global calls global but IANA does not: local-use NAT64 (RFC 8215),
# documentation (RFC 9637). Outside 2000::/3 nothing is global unicast (SRv6 5f00::/16, 100::/64...).
_NOT_GLOBAL_IPV6 = _networks("64:ff9b:1::/48", "3fff::/20")
_GLOBAL_UNICAST_IPV6 = ipaddress.ip_network("2000::/3")
# IPv6 forms that carry an IPv4 address in their last 32 bits (the mapped and 6to4 forms and
# Teredo have properties of their own).
_EMBEDDING_IPV4 = _networks("64:ff9b::/96", "::ffff:0:0:0/96", "::/96")

_PRIVATE = "a private, loopback or link-local address"


def embedded_ipv4(address: IPAddress) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address leads to: IPv4-mapped, 6to4, Teredo (server and client),
    NAT64 (64:ff9b::/96), IPv4-translated and IPv4-compatible forms. Empty for anything else."""
    if not isinstance(address, ipaddress.IPv6Address):
        return ()
    if address.ipv4_mapped is not None:
        return (address.ipv4_mapped,)
    if address.sixtofour is not None:
        return (address.sixtofour,)
    if address.teredo is not None:
        return address.teredo
    # :: and ::1 are the IPv6 unspecified and loopback addresses, not IPv4-compatible ones.
    if int(address) > 1 and any(address in network for network in _EMBEDDING_IPV4):
        return (ipaddress.IPv4Address(int(address) & 0xFFFFFFFF),)
    return ()


def address_refusal(address: IPAddress) -> str:
    """Why the portal must not connect to `address`, or "" when it may.

    Only globally routable addresses, plus loopback and private networks where the settings allow
    them. An IPv6 address that carries an IPv4 one is judged by the IPv4 address it leads to.
    """
    embedded = embedded_ipv4(address)
    if embedded:
        for inner in embedded:
            refusal = address_refusal(inner)
            if refusal:
                return f"an IPv6 form of {inner}, {refusal}"
        return ""
    if any(address in network for network in _METADATA):
        return _PRIVATE if address.is_link_local else "a cloud metadata address"
    if address.is_unspecified:  # 0.0.0.0 and :: reach this host's own services
        return _PRIVATE
    if address.is_loopback:
        return "" if settings.OUTBOUND_ALLOW_LOOPBACK else _PRIVATE
    if any(address in network for network in _PRIVATE_NETWORKS):
        return "" if settings.OUTBOUND_ALLOW_PRIVATE_NETWORKS else _PRIVATE
    # Python's is_global calls multicast global, and some IPv6 ranges (see above) too.
    not_public = address.is_multicast or not address.is_global
    if isinstance(address, ipaddress.IPv6Address):
        not_public = not_public or address not in _GLOBAL_UNICAST_IPV6
        not_public = not_public or any(address in network for network in _NOT_GLOBAL_IPV6)
    return "an address that is not on the public internet" if not_public else ""


def check_outbound_url(url: str, *, resolve: bool = True) -> CheckedURL:
    """Refuse what the server must never fetch; returns the resolved addresses it may use."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise OutboundURLError("Only http and https URLs can be used.")
    if not parts.hostname:
        raise OutboundURLError("The URL has no host.")
    if parts.username or parts.password:
        raise OutboundURLError("Credentials in the URL are not allowed; use the token field.")
    host = parts.hostname
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise OutboundURLError("The URL has an invalid port.") from exc
    if not resolve:
        return CheckedURL(url, host, ())
    return CheckedURL(url, host, allowed_addresses(host, port))


def allowed_addresses(host: str, port: int) -> tuple[str, ...]:
    """Every address `host` resolves to, if the portal may contact all of them."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OutboundURLError(f"The host {host!r} cannot be resolved.") from exc
    addresses = tuple(dict.fromkeys(info[4][0] for info in infos))
    for address in addresses:
        refusal = address_refusal(ipaddress.ip_address(address.split("%")[0]))
        if refusal:
            raise OutboundURLError(f"{host} resolves to {address}, {refusal}, which the portal does not contact.")
    return addresses


class _AddressCheckingBackend(httpcore2.SyncBackend):
    """Resolves the host of every new connection itself, applies the outbound rules to the answer
    and connects to the address it checked. TLS still verifies the certificate against the name."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.NetworkStream:
        try:
            address = allowed_addresses(host, port)[0].split("%")[0]
        except OutboundURLError as exc:
            raise httpcore2.ConnectError(str(exc)) from exc
        return super().connect_tcp(address, port, timeout, local_address, socket_options)


def address_checking_transport(**kwargs: Any) -> httpx2.HTTPTransport:
    """An httpx2 transport for keep-alive clients of admin-typed URLs (the outbound SCIM client).

    The URL was checked when it was saved and before each run, but a name that answered with a
    public address then can answer with 169.254.169.254 when the pool opens its next connection
    (DNS rebinding), and the bearer token would follow. So each connection is checked as it opens.
    """
    transport = httpx2.HTTPTransport(**kwargs)
    # httpx2 takes no network backend argument; its pool does (tests/common/test_http.py checks it).
    transport._pool._network_backend = _AddressCheckingBackend()
    return transport


def outbound_client(**kwargs) -> httpx.Client:
    """An httpx client with the portal's timeouts; keep it for many requests (creating one costs ~50 ms)."""
    kwargs.setdefault("timeout", DEFAULT_TIMEOUT)
    kwargs.setdefault("follow_redirects", False)
    kwargs.setdefault("headers", {"User-Agent": "idp-portal"})
    return httpx.Client(**kwargs)


def pinned_request(checked: CheckedURL) -> tuple[httpx.URL, dict[str, str], dict[str, str]]:
    """The URL, headers and extensions that reach the address the check approved.

    Connecting by name would resolve it again, and a name that answered with a public address
    for the check can answer with 169.254.169.254 a moment later (DNS rebinding). So connect
    to the checked address, send the name as Host, and verify TLS against the name (SNI).
    """
    original = httpx.URL(checked.url)
    if not checked.addresses:
        return original, {}, {}
    address = checked.addresses[0].split("%")[0]
    headers = {"Host": original.netloc.decode("ascii")}
    extensions = {"sni_hostname": checked.host} if original.scheme == "https" else {}
    return original.copy_with(host=address), headers, extensions


def fetch_limited(url: str, *, max_bytes: int, accept: str = "*/*") -> bytes:
    """GET a checked URL, refusing redirects elsewhere and bodies over `max_bytes`."""
    target, headers, extensions = pinned_request(check_outbound_url(url))
    with (
        outbound_client() as client,
        client.stream("GET", target, headers={"Accept": accept, **headers}, extensions=extensions) as response,
    ):
        if response.is_redirect:
            raise OutboundURLError(f"The URL redirects ({response.status_code}); give the final URL instead.")
        if response.status_code != 200:
            raise OutboundURLError(f"The server answered HTTP {response.status_code}.")
        body = bytearray()
        for chunk in response.iter_bytes():
            body.extend(chunk)
            if len(body) > max_bytes:
                raise OutboundURLError(f"The response is larger than {max_bytes // 1024} KB.")
        return bytes(body)
