"""Security headers everywhere, the launchpad, the profile, sign-out (with SLO) and password reset."""

import base64
import re
import zlib
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import mail
from django.test import Client
from lxml import etree

from apps.audit.models import AuditEvent
from apps.connectors import services as connector_services
from apps.directory.models import User
from tests.factories import GroupFactory, UserFactory
from tests.portal.conftest import PASSWORD, sign_in

pytestmark = pytest.mark.django_db


def _csp(response) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}


@pytest.mark.parametrize(
    "path",
    ["/", "/login/", "/login/mfa/", "/logout/", "/password-reset/", "/account/", "/console/", "/healthz?only=database",
     "/api/v1/users", "/api/v1/schema", "/scim/v2/Users", "/saml/idp/nope/metadata", "/saml/sp/nope/metadata/",
     "/static/css/portal.css", "/no/such/page"],
)  # fmt: skip
def test_security_headers_on_every_response(client, path):
    response = client.get(path)
    csp = _csp(response)
    assert "'unsafe-inline'" not in csp["script-src"]
    assert "'unsafe-eval'" not in csp["script-src"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["object-src"] == ["'none'"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"


def test_portal_pages_have_no_inline_script(client, jane):
    sign_in(client)
    for path in ("/", "/account/", "/logout/", "/account/mfa/totp/"):
        body = client.get(path).content.decode()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", body), path
        assert not re.search(r"\son[a-z]+=", body), path


def test_swagger_ui_runs_its_one_inline_script_by_hash(client):
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    script_src = _csp(response)["script-src"]
    assert "'unsafe-inline'" not in script_src
    inline = re.findall(rb"<script>(.*?)</script>", response.content, re.DOTALL)
    assert inline
    import hashlib

    for body in inline:
        assert "'sha256-" + base64.b64encode(hashlib.sha256(body).digest()).decode() + "'" in script_src


def test_saml_auto_post_pages_allow_only_their_submit_handler(client):
    script_src = _csp(client.get("/saml/idp/nope/sso"))["script-src"]
    assert script_src[:2] == ["'self'", "'unsafe-hashes'"]
    assert len(script_src) == 3 and script_src[2].startswith("'sha256-")


@pytest.fixture
def apps_for_jane(jane, settings):
    settings.PORTAL_BASE_URL = "http://testserver"
    group = GroupFactory(name="Staff", members=[jane])
    saml = connector_services.connector_create(
        actor=None,
        template="generic-saml",
        name="Wiki",
        enabled=True,
        sso={"sp_entity_id": "https://wiki.example.com/saml", "acs_urls": [{"url": "https://wiki.example.com/acs"}]},
    )
    connector_services.assignment_create(actor=None, connector=saml, group=group)
    bookmark = connector_services.connector_create(
        actor=None, template="bookmark", name="Handbook", enabled=True, bookmark_url="https://handbook.example.com/"
    )
    connector_services.assignment_create(actor=None, connector=bookmark, user=jane)
    hidden = connector_services.connector_create(
        actor=None, template="bookmark", name="Payroll", enabled=True, bookmark_url="https://payroll.example.com/"
    )
    off = connector_services.connector_create(
        actor=None, template="bookmark", name="Old CRM", enabled=False, bookmark_url="https://crm.example.com/"
    )
    connector_services.assignment_create(actor=None, connector=off, user=jane)
    return {"saml": saml, "bookmark": bookmark, "hidden": hidden}


def test_launchpad_shows_the_users_apps_as_tiles(client, jane, apps_for_jane):
    sign_in(client)
    response = client.get("/")
    body = response.content.decode()
    names = [tile.name for tile in response.context["tiles"]]
    assert names == ["Handbook", "Wiki"]
    # A SAML tile is a form that posts with the CSRF token (sign-in with intent).
    assert f'<form method="post" action="/saml/idp/{apps_for_jane["saml"].slug}/launch">' in body
    assert 'href="https://handbook.example.com/" target="_blank" rel="noopener noreferrer"' in body
    assert "/static/connectors/logos/" in body
    assert "Payroll" not in body and "Old CRM" not in body
    assert 'src="/static/portal/launchpad.js"' in body


def test_launchpad_search(client, jane, apps_for_jane, settings):
    sign_in(client)
    assert 'type="search"' not in client.get("/").content.decode()  # two apps need no search box
    response = client.get("/", {"q": "wik"})
    assert [tile.name for tile in response.context["tiles"]] == ["Wiki"]
    assert 'type="search"' in response.content.decode()
    for n in range(9):
        extra = connector_services.connector_create(
            actor=None, template="bookmark", name=f"Tool {n}", enabled=True, bookmark_url=f"https://t{n}.example.com/"
        )
        connector_services.assignment_create(actor=None, connector=extra, user=jane)
    assert 'type="search"' in client.get("/").content.decode()


def test_a_saml_tile_starts_idp_initiated_sso(client, jane, apps_for_jane):
    sign_in(client)
    tile = next(tile for tile in client.get("/").context["tiles"] if tile.kind == "saml")
    response = client.post(tile.url)
    assert response.status_code == 200
    assert b'action="https://wiki.example.com/acs"' in response.content
    assert AuditEvent.objects.filter(action="saml.sso.success", actor=jane, after__flow="idp").exists()


def test_profile_shows_name_email_and_factors(client, jane):
    sign_in(client)
    body = client.get("/account/").content.decode()
    assert "Jane Doe" in body and "jane.doe@example.com" in body
    assert "Two-step verification is off." in body
    assert "this browser" in body


def test_sign_out_needs_a_post_and_is_audited(client, jane):
    sign_in(client)
    confirm = client.get("/logout/")
    assert confirm.status_code == 200 and "_auth_user_id" in client.session
    assert 'name="csrfmiddlewaretoken"' in confirm.content.decode()
    response = client.post("/logout/")
    assert response.status_code == 200
    assert "You are signed out" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action="portal.logout", actor=jane).exists()


def test_sign_out_sends_logout_requests_to_apps_used_in_this_session(client, jane, settings):
    from tests.saml_idp.sp import OneLoginSP

    settings.PORTAL_BASE_URL = "https://portal.example.com"
    group = GroupFactory(name="Staff", members=[jane])
    sso = {
        "sp_entity_id": "https://sp.example.com/saml/metadata",
        "acs_urls": [{"url": "https://sp.example.com/saml/acs"}],
        "slo_url": "https://sp.example.com/saml/sls",
    }
    with_slo = connector_services.connector_create(
        actor=None, template="generic-saml", name="App", enabled=True, sso=sso
    )
    unused = connector_services.connector_create(
        actor=None,
        template="generic-saml",
        name="Unused",
        enabled=True,
        sso={**sso, "sp_entity_id": "https://other.example.com/saml", "slo_url": "https://other.example.com/sls"},
    )
    for connector in (with_slo, unused):
        connector_services.assignment_create(actor=None, connector=connector, group=group)
    sign_in(client)
    assert client.post(f"/saml/idp/{with_slo.slug}/launch").status_code == 200
    session_key = client.session.session_key

    response = client.post("/logout/")
    body = response.content.decode()
    assert response.context["slo"] and len(response.context["slo"]) == 1  # only the app used this session
    message = response.context["slo"][0]
    assert message.url.startswith("https://sp.example.com/saml/sls?SAMLRequest=")
    assert f'<iframe data-src="{message.url.replace("&", "&amp;")}"' in body
    csp = _csp(response)
    assert csp["frame-src"] == ["https://sp.example.com"]
    assert csp["frame-ancestors"] == ["'none'"]

    # python3-saml, as the app, accepts the LogoutRequest: our signature, issuer, destination.
    sp = OneLoginSP(Client().get(f"/saml/idp/{with_slo.slug}/metadata").content, want_messages_signed=True)
    query = {name: values[0] for name, values in parse_qs(urlsplit(message.url).query).items()}
    from onelogin.saml2.auth import OneLogin_Saml2_Auth

    auth = OneLogin_Saml2_Auth(
        sp._request_data("https://sp.example.com/saml/sls", get=query), old_settings=sp.settings_dict
    )
    deleted = []
    redirect = auth.process_slo(delete_session_cb=lambda: deleted.append(True))
    assert auth.get_errors() == [], auth.get_last_error_reason()
    assert deleted == [True]
    assert redirect.startswith(f"https://portal.example.com/saml/idp/{with_slo.slug}/slo?SAMLResponse=")
    request_xml = etree.fromstring(zlib.decompress(base64.b64decode(query["SAMLRequest"]), -15))
    name_id = request_xml.find("{urn:oasis:names:tc:SAML:2.0:assertion}NameID")
    assert name_id.text == "jane.doe@example.com"
    from apps.saml_idp.logout import session_index

    assert request_xml.find("{urn:oasis:names:tc:SAML:2.0:protocol}SessionIndex").text == session_index(session_key)


def test_sign_out_everywhere(client, jane):
    other_browser = Client()
    sign_in(client)
    sign_in(other_browser)
    assert other_browser.get("/").status_code == 200
    response = client.post("/account/sessions/end-all/")
    assert "2 sessions ended" in response.content.decode()
    assert other_browser.get("/").status_code == 302
    assert client.get("/").status_code == 302
    assert AuditEvent.objects.get(action="portal.logout_everywhere").after == {"sessions": 2}


def test_password_reset_by_email(client, jane, settings):
    settings.PORTAL_BASE_URL = "https://portal.example.com"
    other_browser = Client()
    sign_in(other_browser)
    client.post("/login/", {"username": "jane.doe", "password": "wrong"})
    assert client.post("/password-reset/", {"email": "JANE.DOE@example.com"})["Location"] == "/password-reset/sent/"
    assert client.post("/password-reset/", {"email": "nobody@example.com"})["Location"] == "/password-reset/sent/"
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["jane.doe@example.com"]
    link = re.search(r"https://portal\.example\.com(/password-reset/\S+/)", message.body).group(1)
    form = client.get(link, follow=True)
    assert form.status_code == 200 and 'name="new_password1"' in form.content.decode()
    set_url = form.redirect_chain[-1][0]
    too_short = client.post(set_url, {"new_password1": "short", "new_password2": "short"})
    assert "too short" in too_short.content.decode()
    done = client.post(set_url, {"new_password1": "A-new-Passphrase-42", "new_password2": "A-new-Passphrase-42"})
    assert done["Location"] == "/password-reset/done/"
    assert User.objects.get(pk=jane.pk).check_password("A-new-Passphrase-42")
    # Every other session ended; the link works once.
    assert other_browser.get("/").status_code == 302
    assert "invalid or was already used" in client.get(link, follow=True).content.decode()
    assert sign_in(Client(), password="A-new-Passphrase-42").status_code == 302
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"portal.password_reset.request", "portal.password_reset", "portal.logout_everywhere"} <= actions
    assert PASSWORD not in str(list(AuditEvent.objects.values_list("after", flat=True)))


def test_password_reset_emails_are_rate_limited_per_account_and_address(client, jane, settings):
    settings.PASSWORD_RESET_MAX_PER_ACCOUNT = 2
    settings.PASSWORD_RESET_MAX_PER_IP = 4
    for _ in range(4):
        assert client.post("/password-reset/", {"email": "jane.doe@example.com"})["Location"] == "/password-reset/sent/"
    assert len(mail.outbox) == 2
    assert AuditEvent.objects.filter(action="portal.password_reset.throttled").count() == 2
    # From the same address, the next request (any email) is refused too, with the same answer.
    UserFactory(username="bob", email="bob@example.com")
    assert client.post("/password-reset/", {"email": "bob@example.com"})["Location"] == "/password-reset/sent/"
    assert len(mail.outbox) == 2
    # Another address may still ask for bob.
    other = Client(REMOTE_ADDR="198.51.100.7")
    assert other.post("/password-reset/", {"email": "bob@example.com"})["Location"] == "/password-reset/sent/"
    assert len(mail.outbox) == 3


def test_new_users_without_a_password_can_choose_one(client, db):
    UserFactory(username="new.hire", email="new.hire@example.com", password=None)
    client.post("/password-reset/", {"email": "new.hire@example.com"})
    assert len(mail.outbox) == 1


def test_post_binding_slo_sends_a_signed_logout_request_form(client, jane, settings):
    from apps.saml_idp.services import connector_key
    from apps.saml_idp.signing import verify_element

    settings.PORTAL_BASE_URL = "https://portal.example.com"
    app = connector_services.connector_create(
        actor=None,
        template="generic-saml",
        name="Posty",
        enabled=True,
        sso={
            "sp_entity_id": "https://posty.example.com/saml",
            "acs_urls": [{"url": "https://posty.example.com/acs"}],
            "slo_url": "https://posty.example.com/slo",
            "slo_binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST",
        },
    )
    connector_services.assignment_create(actor=None, connector=app, user=jane)
    sign_in(client)
    client.post(f"/saml/idp/{app.slug}/launch")
    response = client.post("/logout/")
    body = response.content.decode()
    assert '<form method="post" action="https://posty.example.com/slo" target="slo-frame-1" data-autosubmit>' in body
    csp = _csp(response)
    assert csp["form-action"] == ["'self'", "https://posty.example.com"]
    xml = base64.b64decode(response.context["slo"][0].fields["SAMLRequest"])
    root = etree.fromstring(xml)
    assert root.get("Destination") == "https://posty.example.com/slo"
    verify_element(root, connector_key(app).certificate_pem)
