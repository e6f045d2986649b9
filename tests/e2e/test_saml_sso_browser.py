"""A person's SSO in a real browser: Chromium opens a real SP's login URL, signs in on our page,
and the SP (python3-saml behind a small WSGI app on loopback) receives a valid response."""

import html
import os
import shutil
import threading
import urllib.request
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.constants import OneLogin_Saml2_Constants
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser

from apps.audit.models import AuditEvent
from apps.connectors import services as connector_services
from tests.factories import GroupFactory, UserFactory

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (.ci/run does)"),
]
ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class _QuietHandler(WSGIRequestHandler):
    # A keep-alive answer is otherwise delayed ~40 ms by Nagle's algorithm.
    disable_nagle_algorithm = True

    def log_message(self, *args) -> None:
        pass


class TinySP:
    """A SAML SP on loopback: GET /login starts SSO, POST /acs validates the response."""

    def __init__(self) -> None:
        self.server: WSGIServer = make_server("127.0.0.1", 0, self.app, handler_class=_QuietHandler)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self.settings: dict | None = None
        self.request_id: str | None = None
        self.received: list[dict] = []

    def configure(self, idp_metadata: str) -> None:
        self.settings = {
            "strict": True,
            "sp": {
                "entityId": f"{self.base}/metadata",
                "assertionConsumerService": {
                    "url": f"{self.base}/acs",
                    "binding": OneLogin_Saml2_Constants.BINDING_HTTP_POST,
                },
                "NameIDFormat": OneLogin_Saml2_Constants.NAMEID_EMAIL_ADDRESS,
            },
            "idp": OneLogin_Saml2_IdPMetadataParser.parse(idp_metadata)["idp"],
            "security": {
                "wantAssertionsSigned": True,
                "wantMessagesSigned": True,
                "requestedAuthnContext": False,
                "rejectDeprecatedAlgorithm": True,
            },
        }

    def _request_data(self, environ: dict, post: dict) -> dict:
        return {
            "https": "off",
            "http_host": environ["HTTP_HOST"],
            "script_name": environ["PATH_INFO"],
            "get_data": {},
            "post_data": post,
        }

    def app(self, environ, start_response):
        path = environ["PATH_INFO"]
        if path == "/login":
            auth = OneLogin_Saml2_Auth(self._request_data(environ, {}), old_settings=self.settings)
            url = auth.login(return_to="/welcome")
            self.request_id = auth.get_last_request_id()
            start_response("302 Found", [("Location", url)])
            return [b""]
        if path == "/acs" and environ["REQUEST_METHOD"] == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            from urllib.parse import parse_qs

            form = {k: v[0] for k, v in parse_qs(environ["wsgi.input"].read(length).decode()).items()}
            auth = OneLogin_Saml2_Auth(self._request_data(environ, form), old_settings=self.settings)
            auth.process_response(request_id=self.request_id)
            errors = auth.get_errors()
            self.received.append(
                {
                    "errors": errors,
                    "reason": auth.get_last_error_reason(),
                    "nameid": auth.get_nameid(),
                    "attributes": auth.get_attributes(),
                    "relay_state": form.get("RelayState"),
                }
            )
            if errors:
                body = f"<h1>SSO failed</h1><p>{html.escape(str(auth.get_last_error_reason()))}</p>"
            else:
                attributes = "".join(
                    f"<li>{html.escape(k)}: {html.escape(', '.join(v))}</li>" for k, v in auth.get_attributes().items()
                )
                body = f"<h1>Signed in as {html.escape(auth.get_nameid())}</h1><ul>{attributes}</ul>"
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [f"<!doctype html><title>Tiny SP</title>{body}".encode()]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]

    def start(self) -> None:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tiny_sp():
    sp = TinySP()
    sp.start()
    yield sp
    sp.stop()


def test_browser_signs_in_through_the_portal_into_the_sp(live_server, settings, tiny_sp, monkeypatch):
    # The IdP URLs are fixed from PORTAL_BASE_URL when the connector is created: the live server's.
    settings.PORTAL_BASE_URL = live_server.url
    user = UserFactory(
        username="jane.doe", email="jane.doe@example.com", first_name="Jane", last_name="Doe", password="s3cret-Pass-99"
    )
    group = GroupFactory(name="Engineering", members=[user])
    connector = connector_services.connector_create(
        actor=None,
        template="generic-saml",
        name="Tiny SP",
        enabled=True,
        sso={"sp_entity_id": f"{tiny_sp.base}/metadata", "acs_urls": [{"url": f"{tiny_sp.base}/acs"}]},
    )
    connector_services.assignment_create(actor=None, connector=connector, group=group)
    with urllib.request.urlopen(f"{live_server.url}/saml/idp/{connector.slug}/metadata", timeout=10) as response:
        tiny_sp.configure(response.read().decode())

    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    # Playwright's sync API keeps an event loop in this thread; the ORM calls above and below are
    # not made while it runs a coroutine.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{tiny_sp.base}/login")
            page.wait_for_selector("#id_username", timeout=15000)
            page.screenshot(path=str(ARTIFACTS / "saml-sso-1-portal-login.png"))
            page.fill("#id_username", "jane.doe")
            page.fill("#id_password", "s3cret-Pass-99")
            page.click("button[type=submit]")
            page.wait_for_url(f"{tiny_sp.base}/acs")
            page.wait_for_selector("h1")
            page.screenshot(path=str(ARTIFACTS / "saml-sso-2-sp-signed-in.png"))
            heading = page.inner_text("h1")
        finally:
            browser.close()

    assert heading == "Signed in as jane.doe@example.com"
    assert len(tiny_sp.received) == 1
    received = tiny_sp.received[0]
    assert received["errors"] == [], received["reason"]
    assert received["attributes"]["email"] == ["jane.doe@example.com"]
    assert received["relay_state"] == "/welcome"
    assert AuditEvent.objects.filter(action="saml.sso.success", actor=user).count() == 1
    assert os.path.getsize(ARTIFACTS / "saml-sso-2-sp-signed-in.png") > 0
