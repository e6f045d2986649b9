"""Brute-force protection: lockout by account and by address (each with its own limit and
cool-off), X-Forwarded-For, SSO login page, unlock."""

from io import StringIO
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.test import Client

from apps.audit.models import AuditEvent
from apps.connectors import services as connector_services
from apps.portal import lockout
from tests.factories import UserFactory
from tests.portal.conftest import PASSWORD, sign_in

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _limit(settings):
    settings.AXES_FAILURE_LIMIT = 5
    # The address limit is far higher (default 50); ten keeps these tests short.
    settings.PORTAL_LOCKOUT_ADDRESS_FAILURE_LIMIT = 10


def _fail(client, username="jane.doe", n=1, **extra):
    for _ in range(n):
        client.post("/login/", {"username": username, "password": "wrong"}, **extra)


def _locked(response) -> bool:
    return response.status_code == 429 and "Too many attempts" in response.content.decode()


def test_lockout_after_n_failures_even_with_the_right_password(client, jane):
    _fail(client, n=5)
    response = sign_in(client)
    assert _locked(response)
    assert "_auth_user_id" not in client.session
    assert "ask your administrator" in response.content.decode()
    lockouts = AuditEvent.objects.filter(action="portal.lockout")
    assert lockouts.exists()
    assert lockouts.first().target_id == str(jane.pk)


def test_the_account_counter_does_not_care_about_case_email_or_address(client, jane):
    _fail(Client(REMOTE_ADDR="10.0.0.1"), "JANE.DOE", n=2)
    _fail(Client(REMOTE_ADDR="10.0.0.2"), "jane.doe@EXAMPLE.com", n=2)
    _fail(Client(REMOTE_ADDR="10.0.0.3"), "jane.doe", n=1)
    assert _locked(sign_in(Client(REMOTE_ADDR="10.0.0.4")))


def test_one_address_trying_many_accounts_is_locked_at_the_address_limit(client, jane):
    for n in range(9):
        _fail(client, f"someone{n}")
    # Nine failures for other names do not stop jane behind the same address...
    assert sign_in(client).status_code == 302
    client.logout()
    # ...and her sign-in does not wipe the address's count: the tenth failure locks it.
    _fail(client, "someone9")
    assert _locked(sign_in(client))
    assert "network address" in sign_in(client).content.decode()
    # Jane from elsewhere is not affected by that address.
    assert sign_in(Client(REMOTE_ADDR="192.0.2.77")).status_code == 302


def test_a_changing_x_forwarded_for_does_not_reset_the_lockout(jane, settings):
    settings.TRUSTED_PROXIES = []
    for n in range(10):
        Client().post("/login/", {"username": f"probe{n}", "password": "x"}, HTTP_X_FORWARDED_FOR=f"203.0.113.{n}")
    assert _locked(Client().post("/login/", {"username": "x", "password": "y"}, HTTP_X_FORWARDED_FOR="198.51.100.9"))
    # Behind a trusted proxy (the test client's 127.0.0.1), only the entry the proxy appended
    # counts; the client-written part does not.
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    lockout.portal_unlock_ip(actor=None, ip="127.0.0.1")
    for n in range(5):
        _fail(Client(), "jane.doe", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}, 198.51.100.1")
    assert _locked(sign_in(Client(), HTTP_X_FORWARDED_FOR="192.0.2.1, 198.51.100.1"))


def test_failures_on_the_sso_login_page_count(client, jane, settings):
    from tests.saml_idp.conftest import make_connector
    from tests.saml_idp.sp import OneLoginSP

    connector = make_connector()
    connector_services.assignment_create(actor=None, connector=connector, user=jane)
    sp = OneLoginSP(client.get(f"/saml/idp/{connector.slug}/metadata").content)
    url, _ = sp.redirect_login()
    parts = urlsplit(url)
    to_login = client.get(f"{parts.path}?{parts.query}")
    assert to_login.status_code == 302
    login_url = to_login["Location"]
    assert login_url.startswith("/login/?next=")
    for _ in range(3):
        client.post(login_url, {"username": "jane.doe", "password": "wrong"})
    _fail(client, n=2)  # plus two on the plain sign-in page
    assert _locked(client.post(login_url, {"username": "jane.doe", "password": PASSWORD}))


def test_admin_unlock_by_service_and_command(client, jane):
    _fail(client, n=5)
    assert _locked(sign_in(client))
    assert lockout.portal_unlock(actor=None, user=jane) >= 1
    assert AuditEvent.objects.filter(action="portal.unlock", target_id=str(jane.pk)).exists()
    assert sign_in(client).status_code == 302

    other = UserFactory(username="sam", password=PASSWORD)
    _fail(Client(REMOTE_ADDR="10.9.9.9"), "sam", n=5)
    assert _locked(sign_in(Client(REMOTE_ADDR="10.9.9.8"), "sam"))
    out = StringIO()
    call_command("portal_unlock", "sam", stdout=out)
    assert "Unlocked sam" in out.getvalue()
    assert sign_in(Client(REMOTE_ADDR="10.9.9.8"), other.username).status_code == 302
    call_command("axes_reset_username", "sam", stdout=StringIO())  # axes' own command still works


def test_a_successful_sign_in_resets_the_account_counter(client, jane):
    _fail(client, n=4)
    assert sign_in(client).status_code == 302
    client.logout()
    _fail(client, n=4)
    assert sign_in(client).status_code == 302
