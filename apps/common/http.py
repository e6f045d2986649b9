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


def _address_allowed(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_loopback:
        return settings.OUTBOUND_ALLOW_LOOPBACK
    if address.is_private or address.is_link_local or address.is_reserved or address.is_multicast:
        return settings.OUTBOUND_ALLOW_PRIVATE_NETWORKS and not address.is_link_local
    return not address.is_unspecified


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
        if not _address_allowed(ipaddress.ip_address(address.split("%")[0])):
            raise OutboundURLError(
                f"{host} resolves to {address}, a private, loopback or link-local address, which the portal "
                "does not contact."
            )
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
