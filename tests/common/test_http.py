"""The outbound guard: refused targets, and fetches pinned to the address that was checked."""

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from apps.common.http import OutboundURLError, check_outbound_url, fetch_limited


@pytest.fixture
def metadata_server():
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True

        def do_GET(self):
            seen.append(self.headers["Host"])
            body = b"<EntityDescriptor/>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], seen
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "gopher://example.com/", "http://169.254.169.254/latest/meta-data/", "http://10.0.0.8/"],
)
def test_refused_targets(url, settings):
    settings.OUTBOUND_ALLOW_PRIVATE_NETWORKS = False
    with pytest.raises(OutboundURLError):
        check_outbound_url(url)


def test_loopback_refused_unless_allowed(settings):
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    with pytest.raises(OutboundURLError):
        check_outbound_url("http://127.0.0.1:6379/")


def test_fetch_connects_to_the_checked_address_not_a_second_lookup(metadata_server, settings, monkeypatch):
    """A name is resolved once, by the check; the connection goes to that address (no rebinding)."""
    port, seen = metadata_server
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    real_getaddrinfo = socket.getaddrinfo
    lookups = []

    def resolver(host, *args, **kwargs):
        if host == "idp.rebind.test":
            lookups.append(host)
            # The first answer is the one checked; any later lookup would hand out the metadata service.
            address = "127.0.0.1" if len(lookups) == 1 else "169.254.169.254"
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    body = fetch_limited(f"http://idp.rebind.test:{port}/metadata", max_bytes=1024)
    assert body == b"<EntityDescriptor/>"
    assert lookups == ["idp.rebind.test"]
    assert seen == [f"idp.rebind.test:{port}"]


# --- Keep-alive clients: every new connection is checked as it opens ---------------------------------


def _rebinding_resolver(monkeypatch, host: str, answers: list[str], port: int) -> list[str]:
    """Resolve `host` to each of `answers` in turn (the last one from then on); log every lookup."""
    real_getaddrinfo = socket.getaddrinfo
    lookups: list[str] = []

    def resolver(name, *args, **kwargs):
        if name == host:
            lookups.append(name)
            address = answers[min(len(lookups), len(answers)) - 1]
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real_getaddrinfo(name, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    return lookups


def test_a_connection_to_a_refused_address_is_not_opened(metadata_server, settings):
    import httpx2

    from apps.common.http import address_checking_transport

    port, seen = metadata_server
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    with httpx2.Client(transport=address_checking_transport()) as client:
        with pytest.raises(httpx2.ConnectError, match="loopback"):
            client.get(f"http://localhost:{port}/")
        settings.OUTBOUND_ALLOW_LOOPBACK = True
        assert client.get(f"http://localhost:{port}/").status_code == 200
    assert seen == [f"localhost:{port}"]


def test_a_name_that_rebinds_between_connections_is_refused_at_the_next_one(metadata_server, settings, monkeypatch):
    """The test server closes every connection (HTTP/1.0), so each request opens a new one."""
    import httpx2

    from apps.common.http import address_checking_transport

    port, seen = metadata_server
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    lookups = _rebinding_resolver(monkeypatch, "scim.rebind.test", ["127.0.0.1", "169.254.169.254"], port)
    with httpx2.Client(transport=address_checking_transport(), headers={"Authorization": "Bearer s3cret"}) as client:
        assert client.get(f"http://scim.rebind.test:{port}/Users").status_code == 200
        with pytest.raises(httpx2.ConnectError, match=r"169\.254\.169\.254"):
            client.get(f"http://scim.rebind.test:{port}/Users")
    assert lookups == ["scim.rebind.test", "scim.rebind.test"]
    assert seen == [f"scim.rebind.test:{port}"]


def test_the_outbound_scim_client_checks_its_connections(metadata_server, settings):
    from apps.common.http import _AddressCheckingBackend
    from apps.provisioning.client import ScimClient, TransientScimError

    port, seen = metadata_server
    client = ScimClient(f"http://localhost:{port}/scim/v2", "token")
    try:
        # httpx2 has no argument for it: a release that moves the pool must fail here, not go unchecked.
        assert isinstance(client.http._transport._pool._network_backend, _AddressCheckingBackend)
        settings.OUTBOUND_ALLOW_LOOPBACK = False
        with pytest.raises(TransientScimError, match="loopback"):
            client.get("Users", "1")
    finally:
        client.close()
    assert seen == []
