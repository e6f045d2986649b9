"""A person in Chromium: password and TOTP, the launchpad, IdP-initiated SSO into a python3-saml SP,
sign-out with SLO, the lockout, password reset through the email outbox, and the login page's
accessibility basics. Screenshots go to test-artifacts/."""

import re
import shutil
import urllib.request

import pytest
from django.core import mail
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.audit.models import AuditEvent
from apps.connectors import services as connector_services
from tests.factories import GroupFactory, UserFactory
from tests.portal.browser import SloSP, chromium, screenshot
from tests.portal.conftest import totp_code

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (.ci/run does)"),
]
PASSWORD = "s3cret-Pass-99"


@pytest.fixture
def browser_env(live_server, settings, monkeypatch):
    # The IdP URLs are fixed from PORTAL_BASE_URL when a connector is created: the live server's.
    settings.PORTAL_BASE_URL = live_server.url
    settings.AXES_FAILURE_LIMIT = 3
    # Playwright's sync API keeps an event loop in this thread; ORM calls are made between its calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    return live_server


@pytest.fixture
def slo_sp():
    sp = SloSP()
    sp.start()
    yield sp
    sp.stop()


@pytest.fixture
def jane(db):
    return UserFactory(
        username="jane.doe", email="jane.doe@example.com", first_name="Jane", last_name="Doe", password=PASSWORD
    )


def test_login_page_accessibility_basics(browser_env):
    with chromium() as browser:
        page = browser.new_page()
        page.goto(f"{browser_env.url}/login/")
        screenshot(page, "portal-login")
        assert page.get_attribute("html", "lang") == "en"
        assert page.inner_text("h1") == "Sign in"
        # Every visible field has a label that names it.
        unlabeled = page.evaluate(
            """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                 .filter(e => !e.labels || e.labels.length === 0 || !e.labels[0].textContent.trim())
                 .map(e => e.name)"""
        )
        assert unlabeled == []
        assert page.get_by_label("Username or email").get_attribute("name") == "username"
        assert page.get_by_label("Password").get_attribute("name") == "password"
        # Focus starts in the first field and Tab follows the visual order.
        order = [page.evaluate("document.activeElement.id")]
        for _ in range(3):
            page.keyboard.press("Tab")
            order.append(page.evaluate("document.activeElement.id || document.activeElement.textContent.trim()"))
        assert order == ["id_username", "id_password", "Sign in", "Forgot your password?"]
        # The error is announced and tied to the fields.
        page.fill("#id_username", "nobody")
        page.fill("#id_password", "wrong")
        page.keyboard.press("Enter")
        page.wait_for_selector("[role=alert]")
        assert "do not match" in page.inner_text("[role=alert]")
        assert page.get_attribute("#id_password", "aria-describedby") == "sign-in-error"


def test_password_totp_launchpad_idp_initiated_sso_and_logout_with_slo(browser_env, slo_sp, jane):
    device = TOTPDevice.objects.create(user=jane, name="Authenticator app", confirmed=True)
    group = GroupFactory(name="Engineering", members=[jane])
    app = connector_services.connector_create(
        actor=None,
        template="generic-saml",
        name="Tiny SP",
        enabled=True,
        sso={
            "sp_entity_id": f"{slo_sp.base}/metadata",
            "acs_urls": [{"url": f"{slo_sp.base}/acs"}],
            "slo_url": f"{slo_sp.base}/sls",
        },
    )
    connector_services.assignment_create(actor=None, connector=app, group=group)
    bookmark = connector_services.connector_create(
        actor=None, template="bookmark", name="Handbook", enabled=True, bookmark_url="https://handbook.example.com/"
    )
    connector_services.assignment_create(actor=None, connector=bookmark, user=jane)
    with urllib.request.urlopen(f"{browser_env.url}/saml/idp/{app.slug}/metadata", timeout=10) as response:
        slo_sp.configure(response.read().decode())

    with chromium() as browser:
        page = browser.new_page()
        page.goto(f"{browser_env.url}/")
        page.wait_for_url(re.compile(r"/login/\?next=/$"))
        page.fill("#id_username", "jane.doe")
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{browser_env.url}/login/mfa/")
        assert page.evaluate("document.activeElement.id") == "id_code"
        screenshot(page, "portal-mfa")
        page.fill("#id_code", totp_code(device))
        page.click("button[type=submit]")
        page.wait_for_url(f"{browser_env.url}/")
        tiles = page.locator(".tile .tile-name").all_inner_texts()
        assert tiles == ["Handbook", "Tiny SP"]
        assert page.locator(".tile img").count() == 2
        screenshot(page, "portal-launchpad")

        # The SAML tile: IdP-initiated SSO, the SP validates our Response.
        page.click("text=Tiny SP")
        page.wait_for_url(f"{slo_sp.base}/acs")
        assert page.inner_text("h1") == "Signed in as jane.doe@example.com"
        assert slo_sp.received[-1]["errors"] == [], slo_sp.received[-1]["reason"]
        assert slo_sp.sessions == {"jane.doe@example.com"}

        # Sign out: the portal session ends and the SP gets a LogoutRequest in a hidden frame.
        page.goto(f"{browser_env.url}/logout/")
        page.click("button[type=submit]")
        page.wait_for_selector("[data-slo-done=true]", timeout=15000)
        screenshot(page, "portal-logged-out")
        assert page.inner_text("h1") == "You are signed out"
        assert slo_sp.logouts and slo_sp.logouts[-1]["errors"] == [], slo_sp.logouts[-1]["reason"]
        assert slo_sp.sessions == set()
        page.goto(f"{browser_env.url}/")
        page.wait_for_url(re.compile(r"/login/"))

    actions = list(AuditEvent.objects.order_by("created", "id").values_list("action", flat=True))
    assert actions.index("portal.mfa.success") < actions.index("portal.login.success") < actions.index("portal.logout")
    # The SP's LogoutResponse, sent back inside the frame, is stopped by the page's frame-src:
    # it never reaches the IdP's SLO endpoint (which takes LogoutRequests only).
    assert not AuditEvent.objects.filter(action="saml.slo.refused").exists()


def test_a_link_from_another_site_asks_before_signing_in_to_an_app(browser_env, slo_sp, jane):
    """Sign-in without intent: the launch URL opened from a foreign page (Chromium sends its own
    Sec-Fetch-Site) shows a confirmation; only its button, a POST with the CSRF token, signs in."""
    app = connector_services.connector_create(
        actor=None,
        template="generic-saml",
        name="Tiny SP",
        enabled=True,
        sso={"sp_entity_id": f"{slo_sp.base}/metadata", "acs_urls": [{"url": f"{slo_sp.base}/acs"}]},
    )
    connector_services.assignment_create(actor=None, connector=app, user=jane)
    with urllib.request.urlopen(f"{browser_env.url}/saml/idp/{app.slug}/metadata", timeout=10) as response:
        slo_sp.configure(response.read().decode())

    with chromium() as browser:
        page = browser.new_page()
        page.goto(f"{browser_env.url}/login/")
        page.fill("#id_username", "jane.doe")
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{browser_env.url}/")

        # Another site (the SP's origin stands in for it) sends the browser to the launch URL.
        page.goto(f"{slo_sp.base}/elsewhere")
        page.evaluate(f"window.location.href = '{browser_env.url}/saml/idp/{app.slug}/launch'")
        page.wait_for_selector("text=Sign in to Tiny SP?")
        screenshot(page, "portal-launch-confirmation")
        assert slo_sp.received == []
        assert not AuditEvent.objects.filter(action="saml.sso.success").exists()

        page.click("text=Continue to Tiny SP")
        page.wait_for_url(f"{slo_sp.base}/acs")
        assert page.inner_text("h1") == "Signed in as jane.doe@example.com"
        assert slo_sp.received[-1]["errors"] == [], slo_sp.received[-1]["reason"]


def test_lockout_after_n_failures(browser_env, jane):
    with chromium() as browser:
        page = browser.new_page()
        page.goto(f"{browser_env.url}/login/")
        for _ in range(3):
            page.fill("#id_username", "jane.doe")
            page.fill("#id_password", "wrong-password")
            page.click("button[type=submit]")
            page.wait_for_load_state()
        assert "Too many attempts" in page.inner_text("h1")
        # Even the right password is refused now.
        page.goto(f"{browser_env.url}/login/")
        page.fill("#id_username", "jane.doe")
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("text=Too many attempts")
        screenshot(page, "portal-locked")
        assert "/login/" in page.url
    assert AuditEvent.objects.filter(action="portal.lockout").exists()


def test_password_reset_through_the_email_outbox(browser_env, jane):
    with chromium() as browser:
        page = browser.new_page()
        page.goto(f"{browser_env.url}/login/")
        page.click("text=Forgot your password?")
        page.fill("#id_email", "jane.doe@example.com")
        page.click("button[type=submit]")
        page.wait_for_selector("text=Check your email")
        assert len(mail.outbox) == 1
        link = re.search(r"https?://\S+/password-reset/\S+/", mail.outbox[0].body).group(0)
        page.goto(link)
        page.wait_for_selector("#id_new_password1")
        page.fill("#id_new_password1", "short")
        page.fill("#id_new_password2", "short")
        page.click("button[type=submit]")
        page.wait_for_selector("[role=alert]")
        assert "too short" in page.inner_text("[role=alert]")
        page.fill("#id_new_password1", "Brand-new-Passphrase-7")
        page.fill("#id_new_password2", "Brand-new-Passphrase-7")
        page.click("button[type=submit]")
        page.wait_for_selector("text=Your password is changed")
        page.get_by_role("link", name="Sign in").click()
        page.fill("#id_username", "jane.doe@example.com")
        page.fill("#id_password", "Brand-new-Passphrase-7")
        page.click("button[type=submit]")
        page.wait_for_url(f"{browser_env.url}/")
        assert page.inner_text("h1") == "My apps"


def test_passkey_as_the_second_factor_with_a_virtual_authenticator(browser_env, jane):
    with chromium() as browser:
        context = browser.new_context()
        page = context.new_page()
        # Chromium's virtual authenticator (DevTools protocol) stands in for a platform passkey.
        devtools = context.new_cdp_session(page)
        devtools.send("WebAuthn.enable")
        devtools.send(
            "WebAuthn.addVirtualAuthenticator",
            {
                "options": {
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": True,
                    "hasUserVerification": True,
                    "isUserVerified": True,
                    "automaticPresenceSimulation": True,
                }
            },
        )
        page.goto(f"{browser_env.url}/login/?next=/account/mfa/passkeys/add/")
        page.fill("#id_username", "jane.doe")
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        # Setting up a factor asks for the password again first (apps.portal.enrolment).
        page.wait_for_url(f"{browser_env.url}/account/confirm/?next=%2Faccount%2Fmfa%2Fpasskeys%2Fadd%2F")
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{browser_env.url}/account/mfa/passkeys/add/")
        page.fill("#id_name", "Virtual key")
        page.click("text=Create passkey")
        page.wait_for_selector("text=Save your recovery codes")
        page.click("text=I have saved them, continue")
        page.wait_for_url(f"{browser_env.url}/account/")
        assert "Passkey “Virtual key”" in page.inner_text("main")

        page.goto(f"{browser_env.url}/logout/")
        page.click("button[type=submit]")
        page.wait_for_selector("text=You are signed out")
        page.goto(f"{browser_env.url}/login/")
        page.fill("#id_username", "jane.doe")
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{browser_env.url}/login/mfa/")
        screenshot(page, "portal-mfa-passkey")
        page.click("text=Use a passkey")
        page.wait_for_url(f"{browser_env.url}/")
        assert page.inner_text("h1") == "My apps"
    assert AuditEvent.objects.filter(action="portal.login.success", after__method="password+passkey").exists()
