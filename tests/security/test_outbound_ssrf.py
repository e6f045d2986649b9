"""Outbound requests an attacker aims at the portal's own network: admin-typed URLs (SCIM base URLs,
SP and upstream IdP metadata URLs) whose host is, or resolves to, an address that is not on the
public internet. Run as in production (DEBUG=false, loopback and private networks not allowed).

Names resolve through a stand-in for DNS (as the DNS-rebinding tests of tests/common/test_http.py
do), and a tripwire on `socket.create_connection` records every connection the guard lets through
and refuses it, so that no test ever sends a packet to a cloud metadata service.
"""

import socket

import pytest
from django.core.exceptions import ValidationError

from apps.common.http import OutboundURLError, check_outbound_url
from apps.connectors import metadata_refresh
from apps.connectors.models import SsoSettings
from apps.provisioning.client import ScimClient, TransientScimError
from apps.saml_sp import services as upstream_services
from apps.saml_sp.models import UpstreamIdentityProvider
from tests.saml_idp.conftest import make_connector

pytestmark = pytest.mark.django_db

# Addresses that are not on the public internet, however they are written. The ones marked
# "metadata" are cloud metadata services, refused even where private networks are allowed.
REFUSED = [
    pytest.param("100.100.100.200", id="alibaba-cloud-metadata"),
    pytest.param("100.64.0.1", id="cgnat-100.64/10"),
    pytest.param("100.101.102.103", id="tailscale-cgnat"),
    pytest.param("169.254.169.254", id="link-local-metadata"),
    pytest.param("168.63.129.16", id="azure-wireserver"),
    pytest.param("2002:a9fe:a9fe::1", id="6to4-of-169.254.169.254"),
    pytest.param("2002:6464:64c8::", id="6to4-of-100.100.100.200"),
    pytest.param("2002:a00:1::1", id="6to4-of-10.0.0.1"),
    pytest.param("64:ff9b::a9fe:a9fe", id="nat64-of-169.254.169.254"),
    pytest.param("64:ff9b::6464:64c8", id="nat64-of-100.100.100.200"),
    pytest.param("64:ff9b::a00:1", id="nat64-of-10.0.0.1"),
    pytest.param("64:ff9b:1::a9fe:a9fe", id="local-nat64-prefix"),
    pytest.param("::ffff:169.254.169.254", id="ipv4-mapped-metadata"),
    pytest.param("::ffff:100.100.100.200", id="ipv4-mapped-alibaba"),
    pytest.param("::ffff:100.64.0.1", id="ipv4-mapped-cgnat"),
    pytest.param("::169.254.169.254", id="ipv4-compatible-metadata"),
    pytest.param("::ffff:0:a9fe:a9fe", id="ipv4-translated-metadata"),
    pytest.param("2001:0:4136:e378:8000:63bf:5601:5601", id="teredo-client-169.254.169.254"),
    pytest.param("fd00:ec2::254", id="aws-ipv6-metadata"),
    pytest.param("fe80::1", id="ipv6-link-local"),
    pytest.param("fc00::1", id="ipv6-unique-local"),
    pytest.param("10.0.0.1", id="rfc1918-10"),
    pytest.param("172.16.0.1", id="rfc1918-172.16"),
    pytest.param("192.168.1.1", id="rfc1918-192.168"),
    pytest.param("127.0.0.1", id="loopback"),
    pytest.param("::1", id="ipv6-loopback"),
    pytest.param("0.0.0.0", id="unspecified"),  # noqa: S104
    pytest.param("192.0.0.1", id="ietf-protocol-assignments"),
    pytest.param("192.0.2.10", id="documentation-test-net-1"),
    pytest.param("198.18.0.1", id="benchmarking"),
    pytest.param("240.0.0.1", id="reserved-240/4"),
    pytest.param("224.0.0.1", id="ipv4-multicast"),
    pytest.param("239.255.255.250", id="ipv4-multicast-ssdp"),
    pytest.param("ff0e::1", id="ipv6-global-multicast"),
    pytest.param("2001:db8::1", id="ipv6-documentation"),
    pytest.param("3fff::1", id="ipv6-documentation-3fff"),
    pytest.param("5f00::1", id="ipv6-srv6-sids"),
    pytest.param("100::1", id="ipv6-discard-only"),
]

PUBLIC = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "2002:808:808::1", "64:ff9b::808:808"]


@pytest.fixture(autouse=True)
def production_outbound_rules(settings):
    """What DEBUG=false gives: no loopback, no private networks."""
    settings.DEBUG = False
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    settings.OUTBOUND_ALLOW_PRIVATE_NETWORKS = False


@pytest.fixture
def dns(monkeypatch):
    """A stand-in DNS: `names[host] = address` makes `host` resolve to `address`."""
    names: dict[str, str] = {}
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in names:
            address = names[host]
            if ":" in address:
                return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port or 0, 0, 0))]
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port or 0))]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names


@pytest.fixture
def connections(monkeypatch):
    """Every TCP connection opened through `socket.create_connection` (httpx and httpx2 both use
    it): recorded, and refused, so that a guard that lets one through fails the test quickly."""
    attempted: list[str] = []

    def create_connection(address, *args, **kwargs):
        attempted.append(address[0])
        raise ConnectionRefusedError(f"test tripwire: the portal tried to connect to {address[0]}")

    monkeypatch.setattr(socket, "create_connection", create_connection)
    return attempted


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


# --- The guard itself ------------------------------------------------------------------------------


@pytest.mark.parametrize("address", REFUSED)
def test_guard_refuses_a_url_on_a_non_public_address_literal(address, connections):
    with pytest.raises(OutboundURLError, match="does not contact"):
        check_outbound_url(f"https://{_url_host(address)}/latest/meta-data/")
    assert connections == []


@pytest.mark.parametrize("address", REFUSED)
def test_guard_refuses_a_name_that_resolves_to_a_non_public_address(address, dns, connections):
    dns["metadata.attacker.test"] = address
    with pytest.raises(OutboundURLError, match="does not contact"):
        check_outbound_url("https://metadata.attacker.test/latest/meta-data/")
    assert connections == []


@pytest.mark.parametrize("address", PUBLIC)
def test_guard_still_allows_public_addresses_however_they_are_written(address):
    assert check_outbound_url(f"https://{_url_host(address)}/scim/v2").addresses


@pytest.mark.parametrize(
    "address",
    ["100.100.100.200", "169.254.169.254", "fd00:ec2::254", "2002:a9fe:a9fe::", "::ffff:169.254.169.254"],
)
def test_private_networks_opt_in_never_opens_cloud_metadata_addresses(address, settings):
    settings.OUTBOUND_ALLOW_PRIVATE_NETWORKS = True
    with pytest.raises(OutboundURLError, match="does not contact"):
        check_outbound_url(f"https://{_url_host(address)}/")


@pytest.mark.parametrize("address", ["10.0.0.1", "192.168.1.1", "100.101.102.103", "fd12:3456::1"])
def test_private_networks_opt_in_admits_lan_and_tailnet_apps(address, settings):
    settings.OUTBOUND_ALLOW_PRIVATE_NETWORKS = True
    assert check_outbound_url(f"https://{_url_host(address)}/scim/v2").addresses


# --- Through each entry point that takes a URL -----------------------------------------------------


@pytest.mark.parametrize("address", REFUSED)
def test_scim_client_refuses_to_connect_when_its_host_resolves_to_a_non_public_address(address, dns, connections):
    """The provisioning worker's keep-alive client checks every connection as it opens
    (apps.common.http.address_checking_transport): the bearer token never leaves."""
    dns["scim.attacker.test"] = address
    client = ScimClient("https://scim.attacker.test/scim/v2", "bearer-token-of-the-app")
    try:
        with pytest.raises(TransientScimError, match="does not contact"):
            client.get("Users", "1")
    finally:
        client.close()
    assert connections == []


@pytest.mark.parametrize("address", REFUSED)
def test_sp_metadata_import_refuses_a_url_that_resolves_to_a_non_public_address(address, dns, connections):
    connector = make_connector(name="Metadata target", slug="metadata-target")
    before = SsoSettings.objects.filter(pk=connector.pk).values().get()
    dns["sp.attacker.test"] = address
    with pytest.raises(ValidationError) as refused:
        metadata_refresh.connector_import_sp_metadata(
            actor=None, connector=connector, url="https://sp.attacker.test/saml/metadata"
        )
    assert "does not contact" in str(refused.value.message_dict["url"])
    assert SsoSettings.objects.filter(pk=connector.pk).values().get() == before
    assert connections == []


@pytest.mark.parametrize("address", REFUSED)
def test_delegated_login_metadata_url_refused_when_it_resolves_to_a_non_public_address(address, dns, connections):
    dns["idp.attacker.test"] = address
    with pytest.raises(ValidationError) as refused:
        upstream_services.upstream_create(
            actor=None, name="Corp IdP", metadata_url="https://idp.attacker.test/metadata"
        )
    assert "does not contact" in str(refused.value.message_dict["metadata_url"])
    assert not UpstreamIdentityProvider.objects.exists()
    assert connections == []
