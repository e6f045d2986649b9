"""Delegated login: the portal as a djangosaml2 SP of a pysaml2 IdP (a peer nobody here wrote)."""

from urllib.parse import urlsplit

import pytest
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.audit.models import AuditEvent
from apps.directory import services as directory_services
from apps.directory.models import User
from apps.saml_sp import services
from apps.saml_sp.models import UpstreamIdentityProvider
from tests.factories import UserFactory
from tests.saml_sp.conftest import sign_in_upstream
from tests.saml_sp.upstream import redirect_query

pytestmark = pytest.mark.django_db


def test_login_page_offers_the_upstream_and_signs_in_a_matched_user(client, make_upstream, upstream_idp):
    make_upstream()
    user = UserFactory(username="alice", email="alice@corp.example")
    upstream_idp.add_user("alice", "upstream-pw", email="Alice@Corp.example")

    page = client.get("/login/", {"next": "/account/"})
    assert "Sign in with Corp IdP" in page.content.decode()
    assert "/saml/sp/corp/login/?next=%2Faccount%2F" in page.content.decode()

    response, _ = sign_in_upstream(client, upstream_idp, "alice")
    assert response.status_code == 302
    assert response["Location"] == "/account/"
    assert client.get("/account/").context["user"] == user
    # Our AuthnRequest went to the upstream from our SP entity ID, asking for our ACS.
    assert upstream_idp.requests[0]["issuer"] == "http://testserver/saml/sp/corp/metadata/"
    assert upstream_idp.requests[0]["acs"] == "http://testserver/saml/sp/corp/acs/"
    event = AuditEvent.objects.get(action="portal.login.success")
    assert event.actor == user and event.after == {"method": "saml:corp"}


def test_unknown_user_is_refused_without_jit(client, make_upstream, upstream_idp):
    make_upstream()
    upstream_idp.add_user("bob", "pw", email="bob@corp.example")
    response, _ = sign_in_upstream(client, upstream_idp, "bob")
    assert response.status_code == 403
    assert "did not match an active account" in response.content.decode()
    assert "_auth_user_id" not in client.session
    event = AuditEvent.objects.get(action="portal.login.failure")
    assert event.after["reason"] == "unknown_user"
    assert event.after["method"] == "saml:corp"


def test_jit_creates_the_user_with_mapped_attributes(client, make_upstream, upstream_idp):
    make_upstream(
        jit_create=True,
        attribute_mapping={"first_name": "givenName", "last_name": "sn", "username": "uid", "employee_id": "empNo"},
    )
    upstream_idp.add_user(
        "carol", "pw", email="carol@corp.example", givenName=["Carol"], sn=["Danvers"], uid=["carol.d"], empNo=["E42"]
    )
    response, _ = sign_in_upstream(client, upstream_idp, "carol")
    assert response.status_code == 302
    user = User.objects.get(email="carol@corp.example")
    assert (user.username, user.first_name, user.last_name, user.employee_id) == ("carol.d", "Carol", "Danvers", "E42")
    assert not user.has_usable_password()
    assert AuditEvent.objects.filter(action="saml_sp.jit_create", target_id=str(user.pk)).exists()
    assert AuditEvent.objects.filter(action="user.create", target_id=str(user.pk)).exists()


def test_suspended_user_is_refused(client, make_upstream, upstream_idp):
    make_upstream(jit_create=True)
    user = UserFactory(username="dave", email="dave@corp.example")
    directory_services.user_suspend(actor=None, user=user)
    upstream_idp.add_user("dave", "pw", email="dave@corp.example")
    response, _ = sign_in_upstream(client, upstream_idp, "dave")
    assert response.status_code == 403
    assert "suspended" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.get(action="portal.login.failure").after["reason"] == "inactive"


def test_match_on_employee_id_from_an_attribute(client, make_upstream, upstream_idp):
    make_upstream(match_attribute="employee_id", match_saml_attribute="employeeNumber")
    user = UserFactory(username="erin", email="erin@elsewhere.example", employee_id="E777")
    upstream_idp.add_user("erin", "pw", email="not-the-same@corp.example", employeeNumber=["E777"])
    response, _ = sign_in_upstream(client, upstream_idp, "erin")
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)


def test_a_response_is_accepted_once(client, make_upstream, upstream_idp):
    make_upstream()
    UserFactory(username="alice", email="alice@corp.example")
    upstream_idp.add_user("alice", "pw", email="alice@corp.example")
    response, fields = sign_in_upstream(client, upstream_idp, "alice")
    assert response.status_code == 302
    # The same Response again, from the same browser and from another one: refused.
    assert client.post("/saml/sp/corp/acs/", fields).status_code == 403
    assert Client().post("/saml/sp/corp/acs/", fields).status_code == 403


def test_a_tampered_response_is_refused(client, make_upstream, upstream_idp):
    import base64

    make_upstream()
    UserFactory(username="alice", email="alice@corp.example")
    UserFactory(username="mallory", email="mallory@corp.example")
    upstream_idp.add_user("alice", "pw", email="alice@corp.example")
    started = client.get("/saml/sp/corp/login/", {"next": "/"})
    query = redirect_query(started["Location"])
    acs, fields = upstream_idp.answer(query["SAMLRequest"], "/", "alice")
    xml = base64.b64decode(fields["SAMLResponse"]).decode().replace("alice@corp.example", "mallory@corp.example")
    fields["SAMLResponse"] = base64.b64encode(xml.encode()).decode()
    response = client.post(urlsplit(acs).path, fields)
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.get(action="portal.login.failure").after["reason"] == "invalid_response"


def test_next_leaving_the_portal_is_dropped(client, make_upstream, upstream_idp):
    make_upstream()
    UserFactory(username="alice", email="alice@corp.example")
    upstream_idp.add_user("alice", "pw", email="alice@corp.example")
    response, fields = sign_in_upstream(client, upstream_idp, "alice", next_url="https://evil.example/")
    assert fields["RelayState"] == "/"
    assert response["Location"] == "/"


def test_a_user_with_totp_still_gives_the_portal_second_factor(client, make_upstream, upstream_idp):
    make_upstream()
    user = UserFactory(username="alice", email="alice@corp.example")
    TOTPDevice.objects.create(user=user, name="app", confirmed=True)
    upstream_idp.add_user("alice", "pw", email="alice@corp.example")
    response, _ = sign_in_upstream(client, upstream_idp, "alice")
    assert response["Location"] == "/login/mfa/"
    assert "_auth_user_id" not in client.session


def test_enforced_upstream_replaces_the_password_form(client, make_upstream, upstream_idp):
    make_upstream(enforced=True)
    response = client.get("/login/", {"next": "/account/"})
    assert response.status_code == 302
    assert response["Location"] == "/saml/sp/corp/login/?next=%2Faccount%2F"
    # Break-glass: the password form stays reachable, for super-admins only.
    UserFactory(username="worker", password="Worker-pass-123")
    UserFactory(username="root", password="Root-pass-12345", is_superuser=True, is_staff=True)
    local = client.get("/login/", {"local": "1"})
    assert local.status_code == 200 and "emergency" in local.content.decode()
    refused = client.post("/login/?local=1", {"username": "worker", "password": "Worker-pass-123", "local": "1"})
    assert refused.status_code == 200 and "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action="portal.login.failure", after__reason="local_sign_in_disabled").exists()
    allowed = client.post("/login/?local=1", {"username": "root", "password": "Root-pass-12345", "local": "1"})
    assert allowed.status_code == 302


def test_metadata_by_url_is_fetched_and_checked(db, upstream_idp, settings):
    upstream = services.upstream_create(actor=None, name="By URL", metadata_url=upstream_idp.entity_id)
    assert upstream.entity_id == upstream_idp.entity_id
    assert "IDPSSODescriptor" in upstream.metadata_xml
    assert upstream.metadata_fetched_at is not None
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        services.upstream_create(
            actor=None,
            name="Bad",
            metadata_xml="<md:EntityDescriptor xmlns:md='urn:oasis:names:tc:SAML:2.0:metadata' entityID='x'/>",
        )
    assert UpstreamIdentityProvider.objects.count() == 1


def test_management_command_adds_and_lists(db, upstream_idp, tmp_path):
    from io import StringIO

    from django.core.management import call_command

    metadata = tmp_path / "idp.xml"
    metadata.write_text(upstream_idp.metadata())
    out = StringIO()
    call_command(
        "upstream_idp",
        "add",
        "Okta",
        "--metadata-file",
        str(metadata),
        "--jit",
        "--map",
        "first_name=givenName",
        stdout=out,
    )
    assert "SP ACS URL" in out.getvalue() and "/saml/sp/okta/acs/" in out.getvalue()
    upstream = UpstreamIdentityProvider.objects.get(slug="okta")
    assert upstream.jit_create and upstream.attribute_mapping == {"first_name": "givenName"}
    call_command("upstream_idp", "disable", "okta", stdout=StringIO())
    upstream.refresh_from_db()
    assert not upstream.enabled


def test_an_upstream_taking_http_post_gets_an_auto_post_page_without_inline_script(client, make_upstream, settings):
    make_upstream()
    settings.SAML_DEFAULT_BINDING = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
    response = client.get("/saml/sp/corp/login/", {"next": "/account/"})
    body = response.content.decode()
    assert response.status_code == 200
    assert 'name="SAMLRequest"' in body and 'name="RelayState" value="/account/"' in body
    assert "data-autosubmit" in body and 'src="/static/portal/autosubmit.js"' in body
    assert "<script>" not in body and "onload" not in body
    policy = response["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "form-action" not in policy


def test_a_sha1_signed_response_is_refused(client, make_upstream, upstream_idp):
    make_upstream()
    UserFactory(username="alice", email="alice@corp.example")
    upstream_idp.add_user("alice", "pw", email="alice@corp.example")
    started = client.get("/saml/sp/corp/login/", {"next": "/"})
    query = redirect_query(started["Location"])
    acs, fields = upstream_idp.answer(query["SAMLRequest"], "/", "alice", sha1=True)
    response = client.post(urlsplit(acs).path, fields)
    assert response.status_code == 400
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.get(action="portal.login.failure").after["reason"] == "sha1_signature"
