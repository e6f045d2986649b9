"""Browser helpers for the portal's end-to-end tests (tests/e2e/test_portal_*.py).

Chromium is Debian's, driven by Playwright exactly as tests/e2e/test_saml_sso_browser.py does;
the SP is that test's TinySP (python3-saml on loopback) with a SingleLogoutService added.
"""

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from socketserver import ThreadingMixIn
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIServer, make_server

from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.constants import OneLogin_Saml2_Constants
from onelogin.saml2.logout_request import OneLogin_Saml2_Logout_Request

from tests.e2e.test_saml_sso_browser import CHROMIUM_ARGS, TinySP, _QuietHandler


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts"


@contextmanager
def chromium() -> Iterator:
    """A headless Debian Chromium (no `playwright install`), closed afterwards."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


class SloSP(TinySP):
    """TinySP plus /sls: python3-saml processes our LogoutRequest and ends its own session.

    `sessions` holds the NameIDs signed in at this SP; a LogoutRequest removes its NameID.
    """

    def __init__(self) -> None:
        super().__init__()
        # Threaded: Chromium opens speculative connections that a one-at-a-time server would wait
        # on while the real request (the SLO frame's) queues behind them.
        self.server.server_close()
        self.server = make_server(
            "127.0.0.1", 0, self.app, server_class=ThreadingWSGIServer, handler_class=_QuietHandler
        )
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self.sessions: set[str] = set()
        self.logouts: list[dict] = []

    def configure(self, idp_metadata: str) -> None:
        super().configure(idp_metadata)
        self.settings["sp"]["singleLogoutService"] = {
            "url": f"{self.base}/sls",
            "binding": OneLogin_Saml2_Constants.BINDING_HTTP_REDIRECT,
        }

    def app(self, environ, start_response):
        path = environ["PATH_INFO"]
        if path == "/sls":
            query = {name: values[0] for name, values in parse_qs(environ.get("QUERY_STRING", "")).items()}
            request_data = {**self._request_data(environ, {}), "get_data": query}
            auth = OneLogin_Saml2_Auth(request_data, old_settings=self.settings)
            ended: list[str] = []

            def end_session() -> None:
                name_id = OneLogin_Saml2_Logout_Request.get_nameid(auth.get_last_request_xml())
                self.sessions.discard(name_id)
                ended.append(name_id)

            redirect = auth.process_slo(delete_session_cb=end_session)
            self.logouts.append({"errors": auth.get_errors(), "reason": auth.get_last_error_reason(), "ended": ended})
            if redirect:
                start_response("302 Found", [("Location", redirect)])
                return [b""]
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"logged out"]
        result = super().app(environ, start_response)
        if path == "/acs" and self.received and not self.received[-1]["errors"]:
            self.sessions.add(self.received[-1]["nameid"])
        return result
