"""Passkeys (WebAuthn) as the second factor, against a software authenticator."""

import html
import json
import re

import pytest
from django.test import Client

from apps.audit.models import AuditEvent
from apps.portal.models import WebAuthnCredential
from tests.factories import UserFactory
from tests.portal.conftest import PASSWORD, sign_in
from tests.portal.soft_authenticator import SoftAuthenticator

pytestmark = pytest.mark.django_db
ORIGIN = "https://portal.example.com"


@pytest.fixture(autouse=True)
def _portal_url(settings):
    settings.PORTAL_BASE_URL = ORIGIN


def _options(response) -> dict:
    match = re.search(r'data-options="([^"]+)"', response.content.decode())
    assert match, response.content[:500]
    return json.loads(html.unescape(match.group(1)))


def _register(client, authenticator: SoftAuthenticator, name: str = "Laptop"):
    # Signed in, a new factor needs the password typed again first.
    assert client.post("/account/confirm/", {"password": PASSWORD}).status_code == 302
    page = client.get("/account/mfa/passkeys/add/")
    assert page.status_code == 200
    options = _options(page)
    assert options["rp"]["id"] == "portal.example.com"
    return client.post("/account/mfa/passkeys/add/", {"name": name, "credential": authenticator.register(options)})


@pytest.fixture
def registered(client, jane):
    authenticator = SoftAuthenticator(ORIGIN)
    sign_in(client)
    done = _register(client, authenticator)
    assert done.status_code == 200 and len(done.context["codes"]) == 10
    client.post("/logout/")
    return authenticator


def test_register_a_passkey_from_the_profile(client, jane):
    sign_in(client)
    assert "Add a passkey" in client.get("/account/").content.decode()
    assert client.get("/account/mfa/passkeys/add/")["Location"].startswith("/account/confirm/")
    client.post("/account/confirm/", {"password": PASSWORD})
    page = client.get("/account/mfa/passkeys/add/")
    body = page.content.decode()
    assert 'data-webauthn="register"' in body and 'src="/static/portal/webauthn.js"' in body
    assert "<script>" not in body
    response = _register(client, SoftAuthenticator(ORIGIN))
    assert response.status_code == 200
    credential = WebAuthnCredential.objects.get(user=jane)
    assert credential.name == "Laptop" and credential.confirmed
    assert AuditEvent.objects.filter(action="portal.mfa.enrol", after__device="passkey").exists()
    assert "Passkey “Laptop”" in client.get("/account/").content.decode()


def test_password_then_passkey(client, jane, registered):
    assert sign_in(client, next="/account/")["Location"] == "/login/mfa/"
    prompt = client.get("/login/mfa/")
    assert "Use a passkey" in prompt.content.decode()
    options = _options(prompt)
    assert [item["id"] for item in options["allowCredentials"]] == [WebAuthnCredential.objects.get().credential_id]
    response = client.post("/login/mfa/passkey/", {"credential": registered.assert_(options), "next": ""})
    assert response.status_code == 302 and response["Location"] == "/account/"
    assert client.session["_auth_user_id"] == str(jane.pk)
    assert AuditEvent.objects.filter(action="portal.login.success", after__method="password+passkey").exists()
    assert WebAuthnCredential.objects.get().sign_count == 1


def test_an_assertion_works_once_and_only_for_its_origin(client, jane, registered):
    sign_in(client)
    options = _options(client.get("/login/mfa/"))
    wrong_origin = registered.assert_(options, origin="https://evil.example")
    refused = client.post("/login/mfa/passkey/", {"credential": wrong_origin})
    assert refused["Location"] == "/login/mfa/"
    assert "could not be verified" in client.get("/login/mfa/").content.decode()
    assert "_auth_user_id" not in client.session

    options = _options(client.get("/login/mfa/"))
    assertion = registered.assert_(options)
    assert client.post("/login/mfa/passkey/", {"credential": assertion})["Location"] == "/"
    other = Client()
    sign_in(other)
    other.get("/login/mfa/")
    other.post("/login/mfa/passkey/", {"credential": assertion})  # replayed into another sign-in
    assert "_auth_user_id" not in other.session
    assert AuditEvent.objects.filter(action="portal.mfa.failure", after__device="passkey").count() == 2


def test_a_cloned_authenticator_is_refused(client, jane, registered):
    sign_in(client)
    client.post("/login/mfa/passkey/", {"credential": registered.assert_(_options(client.get("/login/mfa/")))})
    assert client.session["_auth_user_id"] == str(jane.pk)
    clone = Client()
    sign_in(clone)
    stale = registered.assert_(_options(clone.get("/login/mfa/")), count_up=False)  # counter did not move
    clone.post("/login/mfa/passkey/", {"credential": stale})
    assert "_auth_user_id" not in clone.session


def test_a_passkey_is_a_second_factor_for_the_console(client):
    UserFactory(username="ops.admin", password=PASSWORD, is_staff=True)
    assert sign_in(client, "ops.admin", next="/console/")["Location"] == "/account/mfa/totp/"
    response = client.post(
        "/account/mfa/passkeys/add/",
        {
            "name": "Key",
            "credential": SoftAuthenticator(ORIGIN).register(_options(client.get("/account/mfa/passkeys/add/"))),
        },
    )
    assert response.context["continue_url"] == "/console/"
    assert client.get("/console/").status_code == 200


def test_policy_enrolment_with_a_passkey_completes_the_sign_in(client, jane, settings):
    settings.PORTAL_MFA_REQUIRED = True
    assert sign_in(client, next="/account/")["Location"] == "/account/mfa/totp/"
    assert "_auth_user_id" not in client.session
    options = _options(client.get("/account/mfa/passkeys/add/"))
    done = client.post(
        "/account/mfa/passkeys/add/", {"name": "Phone", "credential": SoftAuthenticator(ORIGIN).register(options)}
    )
    assert done.context["continue_url"] == "/account/"
    assert client.session["_auth_user_id"] == str(jane.pk)


def test_removing_the_last_factor_removes_the_recovery_codes(client, jane, registered):
    sign_in(client)
    client.post("/login/mfa/passkey/", {"credential": registered.assert_(_options(client.get("/login/mfa/")))})
    credential = WebAuthnCredential.objects.get()
    assert client.post(f"/account/mfa/passkeys/{credential.pk}/remove/").status_code == 302
    assert not WebAuthnCredential.objects.exists()
    assert "Two-step verification is off." in client.get("/account/").content.decode()
