"""Sensitive actions ask for the password or a code again after CONSOLE_REAUTH_SECONDS."""

from axes.models import AccessAttempt
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.audit.models import AuditEvent
from tests.console.conftest import PASSWORD, console_client
from tests.portal.conftest import totp_code


def test_reauth_with_password_returns_to_the_console_page(db, super_admin):
    client = console_client(super_admin, signed_in_seconds_ago=3600)
    response = client.post("/console/confirm/", {"secret": PASSWORD, "next": "/console/keys/"})
    assert response.status_code == 302
    assert response["Location"] == "/console/keys/"
    assert AuditEvent.objects.filter(action="portal.reauth.success", actor=super_admin).exists()


def test_reauth_with_a_totp_code(db, super_admin):
    client = console_client(super_admin, signed_in_seconds_ago=3600)
    device = TOTPDevice.objects.get(user=super_admin)
    response = client.post("/console/confirm/", {"secret": totp_code(device), "next": "/console/"})
    assert response.status_code == 302


def test_wrong_secret_is_a_form_error_and_audited(db, super_admin):
    client = console_client(super_admin, signed_in_seconds_ago=3600)
    response = client.post("/console/confirm/", {"secret": "nope", "next": "/console/"})
    assert response.status_code == 400
    assert "did not match" in response.content.decode()
    assert AuditEvent.objects.filter(action="portal.reauth.failure").exists()
    # Counted towards the account's lockout like a wrong password at the sign-in page.
    assert AccessAttempt.objects.get(username=super_admin.username).failures_since_start == 1


def test_next_outside_the_console_is_refused(db, super_admin):
    client = console_client(super_admin, signed_in_seconds_ago=3600)
    for evil in ("https://evil.example/", "//evil.example/console/", "/account/"):
        response = client.post("/console/confirm/", {"secret": PASSWORD, "next": evil})
        assert response["Location"] == "/console/"
