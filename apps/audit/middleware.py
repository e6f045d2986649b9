"""Who is asking: the client address (believing forwarded headers only from the proxies in
TRUSTED_PROXIES) and the request id, kept for the audit rows this request writes."""

import ipaddress
import re
import uuid
from collections.abc import Callable
from functools import cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from apps.audit.context import request_context

# A caller may pass its own request id so that its logs and ours line up; anything else is
# replaced, so that audit rows never carry attacker-chosen text.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# What only a proxy may tell us: who the client is, and whether it spoke HTTPS to the proxy.
FORWARDED_HEADERS = (
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_X_REAL_IP",
    "HTTP_FORWARDED",
)
# An address with a port, as some proxies write them: "192.0.2.1:5678", "[2001:db8::1]:443".
_WITH_PORT = re.compile(r"^\[?(?P<host>[^\]]+?)\]?(?::\d+)?$")


@cache
def _networks(entries: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(entry) for entry in entries)


def _address(text: str) -> IPAddress | None:
    text = text.strip()
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        match = _WITH_PORT.match(text)
        try:
            address = ipaddress.ip_address(match["host"]) if match else None
        except ValueError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d.
        return address.ipv4_mapped
    return address


def is_trusted_proxy(address: IPAddress) -> bool:
    return any(address in network for network in _networks(tuple(settings.TRUSTED_PROXIES)))


def _peer(request: HttpRequest) -> IPAddress | None:
    return _address(request.META.get("REMOTE_ADDR", ""))


def client_ip(request: HttpRequest) -> str | None:
    """The client address: the lockout counts failures by it and the audit trail records it.

    The TCP peer, unless that peer is one of TRUSTED_PROXIES: then X-Forwarded-For is read from
    the right (the entry the nearest proxy appended) leftwards, skipping addresses of trusted
    proxies; the first other address is the client. Entries further left were written by the
    client itself and are never believed. Anyone who reaches the portal directly is judged by
    their own address, whatever headers they send.
    """
    peer = _peer(request)
    if peer is None:
        return None
    client = peer
    if is_trusted_proxy(peer):
        hops = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                # A trusted proxy passed on something that is not an address: believe nothing further.
                break
            client = address
            if not is_trusted_proxy(address):
                break
    return str(client)


class ForwardedHeadersMiddleware:
    """Drop the forwarded headers (FORWARDED_HEADERS) from requests that do not come from a
    trusted proxy, before anything reads them: Django's SECURE_PROXY_SSL_HEADER and the SSL
    redirect would otherwise take a direct client's word that it uses HTTPS. First in MIDDLEWARE.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        peer = _peer(request)
        if peer is None or not is_trusted_proxy(peer):
            for name in FORWARDED_HEADERS:
                request.META.pop(name, None)
        return self.get_response(request)


class RequestContextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        offered = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = offered if _REQUEST_ID.match(offered) else uuid.uuid4().hex
        request.request_id = request_id
        with request_context(request_id=request_id, ip=client_ip(request)):
            response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response
