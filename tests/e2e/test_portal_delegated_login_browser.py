"""Delegated login in Chromium: "Sign in with Corp IdP" on the portal, the upstream pysaml2 IdP's
own sign-in page, its signed Response posted to our ACS, and the page the person asked for."""

import re
import shutil
import urllib.request

import pytest

from apps.audit.models import AuditEvent
from apps.saml_sp import services
from tests.factories import UserFactory
from tests.portal.browser import chromium, screenshot
from tests.saml_sp.upstream import UpstreamIdP

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (.ci/run does)"),
]


@pytest.fixture
def upstream_idp():
    idp = UpstreamIdP()
    idp.start()
    yield idp
    idp.stop()


def test_sign_in_through_the_upstream_idp(live_server, settings, monkeypatch, upstream_idp):
    # The portal on the upstream's host name (127.0.0.1, another port): same site, so the
    # SameSite=Lax saml_session cookie (plain-HTTP development setting) rides along the
    # upstream's POST to our ACS. Production cookies are Secure with SameSite=None.
    base = live_server.url.replace("localhost", "127.0.0.1")
    settings.PORTAL_BASE_URL = base
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    user = UserFactory(username="alice", email="alice@corp.example", first_name="Alice")
    upstream = services.upstream_create(actor=None, name="Corp IdP", slug="corp", metadata_url=upstream_idp.entity_id)
    with urllib.request.urlopen(f"{base}/saml/sp/{upstream.slug}/metadata/", timeout=10) as response:
        upstream_idp.trust_sp(response.read().decode())
    upstream_idp.add_user("alice", "upstream-pw", email="alice@corp.example")

    with chromium() as browser:
        page = browser.new_page()
        page.goto(f"{base}/account/")
        page.wait_for_url(re.compile(r"/login/\?next=/account/$"))
        page.click("text=Sign in with Corp IdP")
        page.wait_for_url(re.compile(re.escape(upstream_idp.base) + r"/sso\?"))
        page.fill("#upstream-username", "alice")
        page.fill("#upstream-password", "upstream-pw")
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/account/")
        screenshot(page, "portal-delegated-profile")
        assert page.inner_text("h1") == "Profile"
        assert "alice@corp.example" in page.inner_text("main")

    event = AuditEvent.objects.get(action="portal.login.success")
    assert event.actor == user and event.after == {"method": "saml:corp"}
