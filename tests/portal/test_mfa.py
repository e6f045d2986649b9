"""The second factor: TOTP after the password, recovery codes, enrolment, policy, staff pages."""

import pytest
from django.test import Client
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.audit.models import AuditEvent
from apps.portal.services import PENDING_KEY
from tests.factories import UserFactory
from tests.portal.conftest import PASSWORD, sign_in, totp_code

pytestmark = pytest.mark.django_db


def test_password_then_totp(client, jane, totp_device, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    response = sign_in(client, next="/account/")
    assert response.status_code == 302
    assert response["Location"] == "/login/mfa/"
    # Not signed in yet: only a pending sign-in, and no page behind it.
    assert "_auth_user_id" not in client.session
    assert client.get("/account/").status_code == 302
    prompt = client.get("/login/mfa/")
    body = prompt.content.decode()
    assert '<label for="id_code">Authentication code</label>' in body
    assert 'autocomplete="one-time-code"' in body

    wrong = client.post("/login/mfa/", {"code": "000000" if totp_code(totp_device) != "000000" else "111111"})
    assert "did not work" in wrong.content.decode()
    assert "_auth_user_id" not in client.session

    done = client.post("/login/mfa/", {"code": totp_code(totp_device)})
    assert done.status_code == 302
    assert done["Location"] == "/account/"
    assert client.session["_auth_user_id"] == str(jane.pk)
    assert PENDING_KEY not in client.session
    actions = list(AuditEvent.objects.order_by("created", "id").values_list("action", flat=True))
    assert actions[-3:] == ["portal.mfa.failure", "portal.mfa.success", "portal.login.success"]
    assert AuditEvent.objects.get(action="portal.login.success").after == {"method": "password+totp"}


def test_a_totp_code_cannot_be_used_twice(client, jane, totp_device):
    code = totp_code(totp_device)
    sign_in(client)
    assert client.post("/login/mfa/", {"code": code}).status_code == 302
    other = Client()
    sign_in(other)
    replay = other.post("/login/mfa/", {"code": code})
    assert replay.status_code == 200
    assert "did not work" in replay.content.decode()
    assert "_auth_user_id" not in other.session
    # The next time step's code works (a real app would show it 30 s later).
    totp_device.refresh_from_db()
    totp_device.throttle_reset()
    assert other.post("/login/mfa/", {"code": totp_code(totp_device, steps_ahead=1)}).status_code == 302


def test_a_recovery_code_works_once(client, jane, totp_device):
    from apps.portal import enrolment

    codes = enrolment.recovery_codes_regenerate(user=jane)
    assert len(codes) == 10
    sign_in(client)
    assert client.post("/login/mfa/", {"code": codes[0].upper()}).status_code == 302
    assert AuditEvent.objects.filter(action="portal.mfa.success", after__device="recovery").exists()
    assert StaticToken.objects.filter(device__user=jane).count() == 9
    other = Client()
    sign_in(other)
    assert "did not work" in other.post("/login/mfa/", {"code": codes[0]}).content.decode()


def test_wrong_codes_slow_down_the_next_try(client, jane, totp_device):
    sign_in(client)
    right = totp_code(totp_device)
    client.post("/login/mfa/", {"code": "000000" if right != "000000" else "111111"})
    # django-otp's throttle: right after a wrong code, even the right one waits (1 s, 2 s, 4 s...).
    throttled = client.post("/login/mfa/", {"code": right})
    assert "wait a few seconds" in throttled.content.decode()
    assert "_auth_user_id" not in client.session


def test_too_many_wrong_codes_end_the_pending_sign_in(client, jane, totp_device, settings):
    settings.PORTAL_MFA_MAX_ATTEMPTS = 3
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    sign_in(client)
    for _ in range(2):
        client.post("/login/mfa/", {"code": "12345x"})
    response = client.post("/login/mfa/", {"code": "12345x"})
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert PENDING_KEY not in client.session
    assert client.get("/login/mfa/")["Location"] == "/login/"


def test_wrong_codes_count_towards_the_lockout(client, jane, totp_device, settings):
    settings.AXES_FAILURE_LIMIT = 4
    settings.PORTAL_MFA_MAX_ATTEMPTS = 10
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    client.post("/login/", {"username": "jane.doe", "password": "wrong"})
    sign_in(client)
    for _ in range(3):
        client.post("/login/mfa/", {"code": "abcdef"})
    locked = client.post("/login/mfa/", {"code": totp_code(totp_device)})
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session


def test_a_pending_sign_in_expires(client, jane, totp_device, settings):
    sign_in(client)
    session = client.session
    session[PENDING_KEY]["started"] -= settings.PORTAL_MFA_PENDING_SECONDS + 1
    session.save()
    assert client.post("/login/mfa/", {"code": totp_code(totp_device)})["Location"] == "/login/"
    assert "_auth_user_id" not in client.session


def test_enrolment_with_qr_code_and_recovery_codes(client, jane, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    sign_in(client)
    # Signed in, the password is asked again before a factor is set up (and no secret is made).
    asked = client.get("/account/mfa/totp/")
    assert asked["Location"] == "/account/confirm/?next=%2Faccount%2Fmfa%2Ftotp%2F"
    assert not TOTPDevice.objects.filter(user=jane).exists()
    prompt = client.get(asked["Location"])
    assert prompt.status_code == 200 and 'autocomplete="current-password"' in prompt.content.decode()
    assert client.post(asked["Location"], {"password": "wrong"}).status_code == 400
    confirmed = client.post(asked["Location"], {"password": PASSWORD, "next": "/account/mfa/totp/"})
    assert confirmed["Location"] == "/account/mfa/totp/"
    page = client.get("/account/mfa/totp/")
    body = page.content.decode()
    assert page.status_code == 200
    assert "<svg" in body and 'role="img"' in body
    device = TOTPDevice.objects.get(user=jane, confirmed=False)
    assert "otpauth://" not in body  # the URI is in the QR code only, the key is shown for typing
    assert (
        client.post("/account/mfa/totp/", {"code": "000000" if totp_code(device) != "000000" else "1"}).status_code
        == 400
    )
    done = client.post("/account/mfa/totp/", {"code": totp_code(device)})
    assert done.status_code == 200
    codes = done.context["codes"]
    assert len(codes) == 10 and all(code in done.content.decode() for code in codes)
    device.refresh_from_db()
    assert device.confirmed
    assert AuditEvent.objects.filter(action="portal.mfa.enrol", target_id=str(jane.pk)).exists()
    # The secret is never in the audit trail.
    assert not AuditEvent.objects.filter(after__icontains=device.key).exists()
    profile = client.get("/account/").content.decode()
    assert "Authenticator app" in profile and "Recovery codes · 10 left" in profile


def test_policy_requires_a_factor_enrols_before_signing_in(client, jane, settings):
    settings.PORTAL_MFA_REQUIRED = True
    response = sign_in(client, next="/account/")
    assert response["Location"] == "/account/mfa/totp/"
    assert "_auth_user_id" not in client.session
    assert "requires a second factor" in client.get("/account/mfa/totp/").content.decode()
    device = TOTPDevice.objects.get(user=jane)
    done = client.post("/account/mfa/totp/", {"code": totp_code(device)})
    assert done.status_code == 200 and done.context["continue_url"] == "/account/"
    assert client.session["_auth_user_id"] == str(jane.pk)


def test_admins_need_a_second_factor_for_the_console(client):
    admin = UserFactory(username="ops.admin", password=PASSWORD, is_staff=True)
    assert client.get("/console/")["Location"].startswith("/login/?next=/console/")
    # The password alone does not sign an administrator in: enrolment first, then the console.
    response = sign_in(client, "ops.admin", next="/console/")
    assert response["Location"] == "/account/mfa/totp/"
    assert "_auth_user_id" not in client.session
    assert client.get("/console/")["Location"].startswith("/login/")
    assert "Administrators need a second factor" in client.get(response["Location"]).content.decode()
    device = TOTPDevice.objects.get(user=admin)
    done = client.post("/account/mfa/totp/", {"code": totp_code(device)})
    assert done.context["continue_url"] == "/console/"
    console = client.get("/console/")
    assert console.status_code == 200
    assert "/api/v1/docs" in console.content.decode()

    # Next time the password alone is not enough: the code comes before any page.
    fresh = Client()
    assert sign_in(fresh, "ops.admin", next="/console/")["Location"] == "/login/mfa/"
    assert fresh.get("/console/").status_code == 302


def test_staff_signed_in_without_the_factor_are_asked_for_it(client):
    admin = UserFactory(username="ops.admin", password=PASSWORD, is_staff=True)
    TOTPDevice.objects.create(user=admin, name="app", confirmed=True)
    client.force_login(admin)  # e.g. an upstream IdP sign-in, which the portal's factor did not follow
    assert client.get("/console/")["Location"] == "/login/mfa/?next=%2Fconsole%2F"
    device = TOTPDevice.objects.get(user=admin)
    step_up = client.post("/login/mfa/?next=%2Fconsole%2F", {"code": totp_code(device), "next": "/console/"})
    assert step_up["Location"] == "/console/"
    assert client.get("/console/").status_code == 200


def test_the_console_is_not_for_other_users(client, jane):
    sign_in(client)
    assert client.get("/console/").status_code == 403


def test_an_sp_initiated_sso_resumes_after_password_and_totp(client, jane, totp_device):
    from urllib.parse import urlsplit

    from apps.connectors import services as connector_services
    from tests.saml_idp.conftest import auto_post, make_connector
    from tests.saml_idp.sp import OneLoginSP

    connector = make_connector()
    connector_services.assignment_create(actor=None, connector=connector, user=jane)
    sp = OneLoginSP(client.get(f"/saml/idp/{connector.slug}/metadata").content)
    url, request_id = sp.redirect_login(relay_state="/after")
    parts = urlsplit(url)
    login_url = client.get(f"{parts.path}?{parts.query}")["Location"]
    assert client.post(login_url, {"username": "jane.doe", "password": PASSWORD})["Location"] == "/login/mfa/"
    resumed = client.post("/login/mfa/", {"code": totp_code(totp_device)})
    assert resumed["Location"].startswith(f"/saml/idp/{connector.slug}/sso/continue?t=")
    _acs, fields = auto_post(client.get(resumed["Location"]))
    result = sp.acs(fields["SAMLResponse"], request_id=request_id, relay_state=fields["RelayState"])
    assert result.ok, result.reason


def test_an_account_without_a_password_confirms_by_a_fresh_upstream_sign_in(client, settings):
    import time

    from apps.portal.services import SIGNED_IN_AT_KEY

    person = UserFactory(username="sso.only")  # signs in through an upstream IdP only
    assert not person.has_usable_password()
    client.force_login(person, backend="apps.saml_sp.backends.UpstreamSaml2Backend")
    session = client.session
    session[SIGNED_IN_AT_KEY] = int(time.time()) - settings.PORTAL_MFA_PENDING_SECONDS - 5
    session.save()
    asked = client.get("/account/mfa/totp/")
    assert asked["Location"].startswith("/account/confirm/")
    prompt = client.get(asked["Location"]).content.decode()
    assert "Sign in there again" in prompt and 'name="password"' not in prompt
    # A password cannot stand in: there is none.
    assert client.post("/account/confirm/", {"password": ""}).status_code == 400
    # Just signed in (upstream): the sign-in is the confirmation.
    session = client.session
    session[SIGNED_IN_AT_KEY] = int(time.time())
    session.save()
    assert client.get("/account/mfa/totp/").status_code == 200
