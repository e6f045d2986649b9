"""Security checks of the console as a whole (issue 7): CSRF, sessions, sign-out, headers, errors."""

import time

import pytest
from django.test import Client, override_settings
from django.urls import path
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.console.decorators import console_view
from apps.directory.roles import Capability
from tests.console.conftest import PASSWORD, console_client
from tests.portal.conftest import totp_code

CONSOLE_PAGES = ("/console/", "/console/audit/", "/console/confirm/")


def _sign_in_with_password_and_totp(client: Client, user) -> None:
    assert client.post("/login/", {"username": user.username, "password": PASSWORD})["Location"] == "/login/mfa/"
    device = TOTPDevice.objects.get(user=user)
    assert client.post("/login/mfa/", {"code": totp_code(device)}).status_code == 302


def test_csrf_refused_without_a_token(db, super_admin):
    client = console_client(super_admin, signed_in_seconds_ago=3600)
    client.handler.enforce_csrf_checks = True
    response = client.post("/console/confirm/", {"secret": PASSWORD, "next": "/console/"})
    assert response.status_code == 403
    assert "portal_reauth_at" not in client.session


def test_csrf_refused_from_a_foreign_origin_even_with_a_token(db, super_admin):
    client = console_client(super_admin, signed_in_seconds_ago=3600)
    client.handler.enforce_csrf_checks = True
    client.get("/console/confirm/")
    token = client.cookies["csrftoken"].value
    foreign = client.post(
        "/console/confirm/",
        {"secret": PASSWORD, "next": "/console/", "csrfmiddlewaretoken": token},
        HTTP_ORIGIN="https://evil.example",
    )
    assert foreign.status_code == 403
    same = client.post(
        "/console/confirm/",
        {"secret": PASSWORD, "next": "/console/", "csrfmiddlewaretoken": token},
        HTTP_ORIGIN="http://testserver",
    )
    assert same.status_code == 302


def test_session_key_and_csrf_token_rotate_at_sign_in(db, super_admin):
    client = Client()
    client.get("/login/")
    session_before = client.cookies["sessionid"].value if "sessionid" in client.cookies else None
    csrf_before = client.cookies["csrftoken"].value
    _sign_in_with_password_and_totp(client, super_admin)
    assert client.cookies["sessionid"].value != session_before
    assert client.cookies["csrftoken"].value != csrf_before
    assert client.get("/console/").status_code == 200


def test_a_signed_out_cookie_reaches_no_page(db, super_admin):
    client = Client()
    _sign_in_with_password_and_totp(client, super_admin)
    stolen = client.cookies["sessionid"].value
    assert client.get("/console/").status_code == 200
    client.post("/logout/")
    replay = Client()
    replay.cookies["sessionid"] = stolen
    for page in CONSOLE_PAGES:
        response = replay.get(page)
        assert response.status_code == 302, page
        assert response["Location"].startswith("/login/"), page


def test_console_pages_cannot_be_framed_and_forbid_inline_script(db, super_client):
    response = super_client.get("/console/")
    assert response["X-Frame-Options"] == "DENY"
    policy = response["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    html = response.content.decode()
    assert "<script>" not in html and " style=" not in html and " onclick=" not in html


def test_staff_without_a_role_capability_and_non_staff(db, helpdesk_client):
    from tests.factories import UserFactory

    assert helpdesk_client.get("/console/audit/").status_code == 403
    person = UserFactory(username="just.a.person", password=PASSWORD)
    client = Client()
    client.force_login(person, backend="apps.portal.backends.PortalBackend")
    assert client.get("/console/").status_code == 403


def _boom(request):
    raise RuntimeError("secret internals: do not show")


urlpatterns = [
    path("console/boom/", console_view(Capability.VIEW_DIRECTORY)(_boom)),
    path("", __import__("django.urls", fromlist=["include"]).include("idp_portal.urls")),
]


@override_settings(ROOT_URLCONF=__name__, DEBUG=False)
def test_error_pages_show_no_stack_trace(db, super_admin):
    client = console_client(super_admin)
    client.raise_request_exception = False
    response = client.get("/console/boom/")
    assert response.status_code == 500
    body = response.content.decode()
    assert "Traceback" not in body and "secret internals" not in body and "RuntimeError" not in body
    missing = client.get("/console/no-such-page/")
    assert missing.status_code == 404
    assert "Page not found" in missing.content.decode()


@pytest.mark.parametrize("seconds_ago", [60, 3600])
def test_sign_in_age_drives_recent_authentication(db, super_admin, seconds_ago, rf):
    from apps.console.decorators import recently_authenticated

    client = console_client(super_admin, signed_in_seconds_ago=seconds_ago)
    request = rf.get("/")
    request.session = client.session
    assert recently_authenticated(request) is (seconds_ago < 900)
    request.session["portal_reauth_at"] = int(time.time())
    assert recently_authenticated(request)
