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
