"""Single logout with the upstream IdP (pysaml2's IdP): the portal's signed LogoutRequest when someone
who signed in through it signs out, its LogoutResponse, and the upstream's own LogoutRequests, which
end the portal session only when they name it."""

import ast
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.test import Client

from apps.audit.models import AuditEvent
from apps.portal.models import PortalSession
from apps.saml_sp import services
from tests.factories import UserFactory
from tests.saml_sp.conftest import sign_in_upstream
from tests.saml_sp.upstream import redirect_query

pytestmark = pytest.mark.django_db

SLO = "http://testserver/saml/sp/corp/slo/"
SP_ENTITY_ID = "http://testserver/saml/sp/corp/metadata/"


@pytest.fixture
def signed_in(client, make_upstream, upstream_idp):
    upstream = make_upstream()
    user = UserFactory(username="alice", email="alice@corp.example")
    upstream_idp.add_user("alice", "pw", email="alice@corp.example")
    response, _ = sign_in_upstream(client, upstream_idp, "alice")
    assert response.status_code == 302
    return upstream, user


def _signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_signing_out_ends_with_a_signed_logout_request_to_the_upstream_and_reads_its_answer(
    client, signed_in, upstream_idp
):
    _upstream, user = signed_in
    session_index = upstream_idp.session_index
    response = client.post("/logout/")
    # No app to sign out of first: straight to the upstream, the portal session already ended.
    assert response.status_code == 302
    assert response["Location"].startswith(f"{upstream_idp.base}/slo?")
    assert not _signed_in(client)
    assert not PortalSession.objects.filter(user=user).exists()
    query = redirect_query(response["Location"])
    assert "Signature" in query and query["SigAlg"].endswith("rsa-sha256")

    # pysaml2's IdP verifies our signature against the SP metadata, and reads whom we name.
    request, answer_url = upstream_idp.answer_logout(query)
    assert request.name_id.text == "alice@corp.example"
    assert [index.text for index in request.session_index] == [session_index]
    assert request.issuer.text == SP_ENTITY_ID
    assert answer_url.startswith(SLO)

    page = client.get(urlsplit(answer_url).path + "?" + urlsplit(answer_url).query)
    assert page.status_code == 200
    assert "signed out of the portal and of Corp IdP" in page.content.decode()
    sent = AuditEvent.objects.get(action="saml_sp.slo.request")
    assert sent.after["request_id"] == request.id
    answered = AuditEvent.objects.get(action="saml_sp.slo.response")
    assert answered.after["confirmed"] is True and answered.after["signed"] is True


def test_a_logout_response_in_a_browser_that_did_not_ask_confirms_nothing(client, signed_in, upstream_idp):
    response = client.post("/logout/")
    _request, answer_url = upstream_idp.answer_logout(redirect_query(response["Location"]))
    page = Client().get(urlsplit(answer_url).path + "?" + urlsplit(answer_url).query)
    assert page.status_code == 200
    assert "did not confirm" in page.content.decode()
    answered = AuditEvent.objects.get(action="saml_sp.slo.response")
    assert answered.after["matches_request"] is False and answered.after["confirmed"] is False


def test_without_single_logout_the_upstream_is_not_asked(client, make_upstream, upstream_idp):
    make_upstream(single_logout=False)
    UserFactory(username="alice", email="alice@corp.example")
    upstream_idp.add_user("alice", "pw", email="alice@corp.example")
    sign_in_upstream(client, upstream_idp, "alice")
    response = client.post("/logout/")
    assert response.status_code == 200
    assert upstream_idp.base not in response.content.decode()
    assert not _signed_in(client)
    assert not AuditEvent.objects.filter(action="saml_sp.slo.request").exists()


def test_a_password_session_does_not_sign_out_of_the_upstream(client, make_upstream, upstream_idp):
    make_upstream()
    user = UserFactory(username="bob", email="bob@corp.example")
    user.set_password("Bob-Passw0rd-long")
    user.save()
    client.post("/login/", {"username": "bob", "password": "Bob-Passw0rd-long"})
    assert _signed_in(client)
    response = client.post("/logout/")
    assert response.status_code == 200
    assert not AuditEvent.objects.filter(action="saml_sp.slo.request").exists()


def test_the_upstreams_logout_request_ends_the_session_it_names(client, signed_in, upstream_idp):
    _upstream, user = signed_in
    url = upstream_idp.logout_request_url(
        SLO, SP_ENTITY_ID, name_id="alice@corp.example", session_index=upstream_idp.session_index
    )
    response = client.get(urlsplit(url).path + "?" + urlsplit(url).query)
    assert not _signed_in(client)
    assert not PortalSession.objects.filter(user=user).exists()
    # Our LogoutResponse goes back to the upstream (no app to sign out of first).
    assert response.status_code == 302 and response["Location"].startswith(f"{upstream_idp.base}/slo?")
    assert "SAMLResponse" in redirect_query(response["Location"])
    event = AuditEvent.objects.get(action="saml_sp.slo")
    assert event.after["session_ended"] is True and event.after["signed"] is False


@pytest.mark.parametrize(
    ("name_id", "session_index", "sign", "kept_because"),
    [
        ("alice@corp.example", "_another-session", False, "session_index_mismatch"),
        ("mallory@corp.example", None, True, "name_id_mismatch"),
        ("alice@corp.example", None, False, "session_index_missing"),
    ],
)
def test_a_logout_request_that_does_not_name_this_session_leaves_it(
    client, signed_in, upstream_idp, name_id, session_index, sign, kept_because
):
    url = upstream_idp.logout_request_url(SLO, SP_ENTITY_ID, name_id=name_id, session_index=session_index, sign=sign)
    response = client.get(urlsplit(url).path + "?" + urlsplit(url).query)
    assert _signed_in(client)
    # The upstream still hears Success: the session it names is not open here.
    assert response.status_code == 302 and "SAMLResponse" in redirect_query(response["Location"])
    event = AuditEvent.objects.get(action="saml_sp.slo")
    assert event.after["session_ended"] is False and event.after["kept_because"] == kept_because


def test_a_signed_logout_request_without_session_index_ends_the_session(client, signed_in, upstream_idp):
    url = upstream_idp.logout_request_url(
        SLO, SP_ENTITY_ID, name_id="alice@corp.example", session_index=None, sign=True
    )
    client.get(urlsplit(url).path + "?" + urlsplit(url).query)
    assert not _signed_in(client)
    assert AuditEvent.objects.get(action="saml_sp.slo").after["signed"] is True


def test_a_forged_signature_is_refused_and_the_session_stays(client, signed_in, upstream_idp):
    url = upstream_idp.logout_request_url(
        SLO, SP_ENTITY_ID, name_id="alice@corp.example", session_index=None, sign=True
    )
    path, query = urlsplit(url).path, urlsplit(url).query
    forged = query.replace("Signature=", "Signature=AAAA")
    response = client.get(f"{path}?{forged}")
    assert response.status_code == 400
    assert _signed_in(client)
    assert AuditEvent.objects.get(action="saml_sp.slo.refused").after["reason"] == "bad_signature"


def test_a_replayed_logout_request_is_acted_on_once(client, make_upstream, upstream_idp):
    """A signed request without SessionIndex speaks for every session of the NameID: replayed after
    the person signed in again, it must not end the new session."""
    make_upstream()
    UserFactory(username="alice", email="alice@corp.example")
    upstream_idp.add_user("alice", "pw", email="alice@corp.example")
    sign_in_upstream(client, upstream_idp, "alice")
    url = upstream_idp.logout_request_url(
        SLO, SP_ENTITY_ID, name_id="alice@corp.example", session_index=None, sign=True
    )
    target = urlsplit(url).path + "?" + urlsplit(url).query
    client.get(target)
    assert not _signed_in(client)
    sign_in_upstream(client, upstream_idp, "alice")
    client.get(target)
    assert _signed_in(client)
    latest = AuditEvent.objects.filter(action="saml_sp.slo").latest("created")
    assert latest.after["kept_because"] == "replayed"


def test_a_logout_request_from_another_issuer_is_refused(client, signed_in, upstream_idp):
    upstream, _user = signed_in
    services.upstream_update(
        actor=None,
        upstream=upstream,
        metadata_xml=upstream.metadata_xml.replace(upstream_idp.entity_id, f"{upstream_idp.entity_id}-other"),
    )
    url = upstream_idp.logout_request_url(
        SLO, SP_ENTITY_ID, name_id="alice@corp.example", session_index=upstream_idp.session_index
    )
    response = client.get(urlsplit(url).path + "?" + urlsplit(url).query)
    assert response.status_code == 400
    assert _signed_in(client)


def _imports(package: str) -> set[str]:
    found = set()
    for path in Path("apps", package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
    return found


def test_import_contract_portal_knows_nothing_of_delegated_login_and_the_idp_nothing_of_either():
    assert not {name for name in _imports("portal") if name.startswith("apps.saml_sp")}
    assert not {name for name in _imports("saml_idp") if name.startswith(("apps.portal", "apps.saml_sp"))}


def test_apps_are_signed_out_first_then_the_page_goes_on_to_the_upstream(client, signed_in, upstream_idp):
    from apps.connectors import services as connector_services

    _upstream, user = signed_in
    app = connector_services.connector_create(
        actor=None,
        template="generic-saml",
        name="App",
        enabled=True,
        sso={
            "sp_entity_id": "https://sp.example.com/saml/metadata",
            "acs_urls": [{"url": "https://sp.example.com/saml/acs"}],
            "slo_url": "https://sp.example.com/saml/sls",
        },
    )
    connector_services.assignment_create(actor=None, connector=app, user=user)
    assert client.post(f"/saml/idp/{app.slug}/launch").status_code == 200
    response = client.post("/logout/")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-src="https://sp.example.com/saml/sls?SAMLRequest=' in body
    assert "Then signing you out of Corp IdP" in body
    assert f'href="{upstream_idp.base}/slo?SAMLRequest=' in body and "data-slo-then-link" in body
    assert 'src="/static/portal/logout.js"' in body
    assert not _signed_in(client)
    # The answer is matched in the signed-out session this page left behind.
    link = body.split(f'href="{upstream_idp.base}/slo?', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    _request, answer_url = upstream_idp.answer_logout(redirect_query(f"{upstream_idp.base}/slo?{link}"))
    page = client.get(urlsplit(answer_url).path + "?" + urlsplit(answer_url).query)
    assert "signed out of the portal and of Corp IdP" in page.content.decode()
