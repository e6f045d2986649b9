"""Sign-ins started at the upstream IdP (unsolicited responses): refused unless the upstream accepts
them, and then held to the same checks as answers to our own requests, each assertion used once."""

import time

import pytest
from django.test import Client

from apps.audit.models import AuditEvent
from apps.saml_sp import services
from tests.factories import UserFactory
from tests.saml_sp.conftest import sign_in_upstream
from tests.saml_sp.upstream import redirect_query

pytestmark = pytest.mark.django_db

ACS = "http://testserver/saml/sp/corp/acs/"
SP_ENTITY_ID = "http://testserver/saml/sp/corp/metadata/"


def _alice(upstream_idp):
    user = UserFactory(username="alice", email="alice@corp.example")
    upstream_idp.add_user("alice", "pw", email="alice@corp.example")
    return user


def _unsolicited(upstream_idp, relay_state: str = "/account/", acs: str = ACS, **kwargs):
    _acs, fields = upstream_idp.respond("alice", acs=acs, sp_entity_id=SP_ENTITY_ID, relay_state=relay_state, **kwargs)
    return fields


def _reason() -> str:
    return AuditEvent.objects.filter(action="portal.login.failure").latest("created").after["reason"]


def test_a_sign_in_started_at_the_idp_is_refused_by_default(client, make_upstream, upstream_idp):
    upstream = make_upstream()
    assert upstream.accept_idp_initiated is False
    _alice(upstream_idp)
    response = client.post("/saml/sp/corp/acs/", _unsolicited(upstream_idp))
    assert response.status_code == 403
    assert "only when they start here" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert _reason() == "idp_initiated_refused"


def test_a_sign_in_started_at_the_idp_signs_in_when_the_upstream_accepts_them(client, make_upstream, upstream_idp):
    make_upstream(accept_idp_initiated=True)
    user = _alice(upstream_idp)
    response = client.post("/saml/sp/corp/acs/", _unsolicited(upstream_idp))
    assert response.status_code == 302
    assert response["Location"] == "/account/"
    assert client.session["_auth_user_id"] == str(user.pk)
    accepted = AuditEvent.objects.get(action="saml_sp.response")
    assert accepted.after["solicited"] is False
    assert accepted.after["wire"]["encrypted"] is False


@pytest.mark.parametrize(
    "relay_state", ["https://evil.example/", "//evil.example/x", "javascript:alert(1)", "/\\evil.example"]
)
def test_relay_state_of_an_unsolicited_response_may_only_be_a_path_here(
    client, make_upstream, upstream_idp, relay_state
):
    make_upstream(accept_idp_initiated=True)
    _alice(upstream_idp)
    response = client.post("/saml/sp/corp/acs/", _unsolicited(upstream_idp, relay_state=relay_state))
    assert response.status_code == 302
    assert response["Location"] == "/"


def test_an_unsolicited_response_is_accepted_once_in_any_browser(client, make_upstream, upstream_idp):
    make_upstream(accept_idp_initiated=True)
    _alice(upstream_idp)
    fields = _unsolicited(upstream_idp)
    assert client.post("/saml/sp/corp/acs/", fields).status_code == 302
    other = Client()
    assert other.post("/saml/sp/corp/acs/", fields).status_code == 400
    assert "_auth_user_id" not in other.session
    assert _reason() == "replayed"


def test_a_response_to_another_browsers_request_is_refused_even_where_unsolicited_ones_are_accepted(
    client, make_upstream, upstream_idp
):
    """Login CSRF: an attacker's own (solicited) Response must not be planted in a victim's browser."""
    make_upstream(accept_idp_initiated=True)
    _alice(upstream_idp)
    attacker = Client()
    started = attacker.get("/saml/sp/corp/login/", {"next": "/"})
    query = redirect_query(started["Location"])
    _acs, fields = upstream_idp.answer(query["SAMLRequest"], "/", "alice")
    response = client.post("/saml/sp/corp/acs/", fields)
    assert response.status_code == 400
    assert "_auth_user_id" not in client.session
    assert _reason() == "unknown_request"


def test_an_unsolicited_response_for_another_sp_is_refused(client, make_upstream, upstream_idp):
    make_upstream(accept_idp_initiated=True)
    _alice(upstream_idp)
    fields = _unsolicited(upstream_idp, acs="http://testserver/saml/sp/other/acs/")
    response = client.post("/saml/sp/corp/acs/", fields)
    assert response.status_code in (400, 403)
    assert "_auth_user_id" not in client.session
    # pysaml2 drops a Response addressed elsewhere (no assertion comes out), else our checks refuse it.
    assert _reason() in ("invalid_response", "no_assertion", "wrong_destination", "wrong_recipient")


def test_an_old_response_is_refused(client, make_upstream, upstream_idp, settings):
    make_upstream(accept_idp_initiated=True)
    _alice(upstream_idp)
    settings.SAML_SP_RESPONSE_MAX_AGE_SECONDS = 1
    settings.SAML_IDP_CLOCK_SKEW_SECONDS = 0
    fields = _unsolicited(upstream_idp)
    time.sleep(2.2)
    response = client.post("/saml/sp/corp/acs/", fields)
    assert response.status_code == 400
    assert _reason() == "too_old"


def test_answers_to_our_own_requests_still_sign_in_where_unsolicited_ones_are_accepted(
    client, make_upstream, upstream_idp
):
    make_upstream(accept_idp_initiated=True)
    user = _alice(upstream_idp)
    response, _ = sign_in_upstream(client, upstream_idp, "alice")
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)
    assert AuditEvent.objects.get(action="saml_sp.response").after["solicited"] is True


def test_the_switch_is_audited_and_off_by_default(make_upstream):
    upstream = make_upstream()
    services.upstream_update(actor=None, upstream=upstream, accept_idp_initiated=True)
    event = AuditEvent.objects.get(action="saml_sp.upstream.update")
    assert event.before == {"accept_idp_initiated": False} and event.after == {"accept_idp_initiated": True}
