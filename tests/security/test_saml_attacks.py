"""Attacks on the SAML IdP between its features: the tracer as a source of replayable assertions,
logout CSRF, and sign-in without intent. Each test performs the attack with real peers (python3-saml
as the SP, the python xmlsec binding to check signatures, people who sign in with their password
and TOTP) and asserts both the refusal and that nothing changed."""

import base64
import html
import re
import zlib
from urllib.parse import parse_qs, urlsplit

import pytest
import xmlsec
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice
from lxml import etree
from onelogin.saml2.constants import OneLogin_Saml2_Constants
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from apps.audit.models import AuditEvent
from apps.connectors import services as connector_services
from apps.directory.models import AdminRole
from apps.portal.models import PortalSession
from apps.saml_idp import tracer
from apps.saml_idp.logout import session_index
from apps.saml_idp.models import SamlTraceRecord, TraceKind
from tests.console.conftest import make_staff
from tests.portal.conftest import sign_in, totp_code
from tests.saml_idp.conftest import auto_post
from tests.saml_idp.sp import SP_ACS_URL, sls_result, sp_keys

pytestmark = pytest.mark.django_db

DS = "{http://www.w3.org/2000/09/xmldsig#}"
SLS_URL = "https://sp.example.com/saml/sls"


def _sign_in_with_totp(username: str) -> Client:
    """A person at the login page: password, then the code of their authenticator app."""
    browser = Client()
    response = sign_in(browser, username=username)
    assert response.status_code == 302 and response["Location"] == "/login/mfa/", response.content[:300]
    device = TOTPDevice.objects.get(user__username=username)
    assert browser.post("/login/mfa/", {"code": totp_code(device)}).status_code == 302
    return browser


def _jane_signs_in(browser: Client) -> str:
    """Jane at the login page (no second factor required of her); returns her session key."""
    response = sign_in(browser, next="/")
    assert response.status_code == 302, response.content[:300]
    return browser.session.session_key


def _session_is_alive(browser: Client, session_key: str) -> None:
    assert browser.session.session_key == session_key
    assert SESSION_KEY in browser.session
    assert Session.objects.filter(session_key=session_key).exists()
    assert PortalSession.objects.filter(session_key=session_key).exists()
    assert browser.get("/").status_code == 200  # the launchpad, not the login page


def _sso_issued_count() -> int:
    return AuditEvent.objects.filter(action="saml.sso.success").count()


# --- The tracer hands out replayable signed assertions --------------------------------------------


def _signature_and_digest_values(xml: bytes) -> list[str]:
    root = etree.fromstring(xml)
    return [
        (element.text or "").strip()
        for element in root.iter(f"{DS}SignatureValue", f"{DS}DigestValue")
        if (element.text or "").strip()
    ]


def _in_signer_layout(element: etree._Element | None) -> bool:
    """libxmlsec1's signature template puts a newline between the elements of ds:Signature and
    ds:SignedInfo; the KeyInfo added after signing has none."""
    if element is None or not element.tag.startswith(DS):
        return False
    return not any(node.tag == f"{DS}KeyInfo" for node in (element, *element.iterancestors()))


def _rebuilt(shown_xml: str) -> bytes:
    """What an attacker does with a recorded message: drop the display indentation and put back
    the whitespace the signer's template had, then serialize it."""
    root = etree.fromstring(shown_xml.encode())
    for element in root.iter():
        if element.text is not None and not element.text.strip() and len(element):
            element.text = "\n" if _in_signer_layout(element) else None
        if element.tail is not None and not element.tail.strip():
            keeps = _in_signer_layout(element.getparent()) and element.tag != f"{DS}KeyInfo"
            element.tail = "\n" if keeps else None
    return etree.tostring(root)


def _signatures_verify(xml: bytes, certificate_pem: str) -> bool:
    """True when the document carries signatures and every one verifies (python xmlsec binding)."""
    root = etree.fromstring(xml)
    xmlsec.tree.add_ids(root, ["ID"])
    signatures = list(root.iter(f"{DS}Signature"))
    if not signatures:
        return False
    for signature in signatures:
        context = xmlsec.SignatureContext()
        context.key = xmlsec.Key.from_memory(certificate_pem, xmlsec.constants.KeyDataFormatCertPem)
        try:
            context.verify(signature)
        except xmlsec.Error:
            return False
    return True


def _app_accepts(sp, xml: bytes, request_id: str) -> bool:
    """Whether python3-saml's ACS signs someone in with this Response (it raises when it cannot decrypt)."""
    try:
        return sp.acs(base64.b64encode(xml).decode(), request_id=request_id).ok
    except xmlsec.Error:
        return False


def _shown_messages(page_html: str) -> list[str]:
    return [html.unescape(block) for block in re.findall(r"<pre>(.*?)</pre>", page_html, re.DOTALL)]


def test_read_only_admin_cannot_replay_a_signed_response_recorded_by_the_tracer(client, connector, sp_factory):
    connector_services.connector_update(
        actor=None,
        connector=connector,
        sso={"sp_signing_cert": sp_keys().signing_cert, "sign_response": True, "sign_assertion": True},
    )
    tracer.trace_start(actor=None, connector=connector, minutes=30)

    # Jane signs in to the app: its signed HTTP-POST AuthnRequest, the portal's login page, the Response.
    sp = sp_factory(connector, sign_requests=True)
    sso_url, form, request_id = sp.post_login(sign=True)
    continue_url = client.post(sso_url, form)["Location"]
    assert sign_in(client, next=continue_url)["Location"] == continue_url
    _, fields = auto_post(client.get(continue_url))
    assert sp.acs(fields["SAMLResponse"], request_id=request_id).ok
    sent = base64.b64decode(fields["SAMLResponse"])
    secret_values = _signature_and_digest_values(sent)
    assert len(secret_values) == 4  # the Response's and the Assertion's SignatureValue and DigestValue

    # A read-only admin, signed in with password and TOTP, opens the tracer page.
    make_staff(AdminRole.READONLY, username="reader")
    reader = _sign_in_with_totp("reader")
    page = reader.get(reverse("console:connector_tracer", args=[connector.slug]))
    assert page.status_code == 200
    body = page.content.decode()

    records = list(SamlTraceRecord.objects.filter(connector=connector))
    response_record = next(record for record in records if record.kind == TraceKind.RESPONSE)
    request_record = next(record for record in records if record.kind == TraceKind.AUTHN_REQUEST)
    shown = _shown_messages(body)

    # Rebuilt from what was stored or shown, the response verifies nowhere and the app refuses it.
    certificate = OneLogin_Saml2_Utils.format_cert(sp.idp["x509cert"])
    assert _signatures_verify(sent, certificate)  # the check works: the response as sent verifies
    for stored in [response_record.xml, *[message for message in shown if "samlp:Response" in message]]:
        rebuilt = _rebuilt(stored)
        assert not _signatures_verify(rebuilt, certificate)
        assert not _app_accepts(sp, rebuilt, request_id)

    assert {record.kind for record in records} == {TraceKind.AUTHN_REQUEST, TraceKind.RESPONSE}
    for record in records:
        assert "SignatureValue" not in record.xml and "DigestValue" not in record.xml, record.kind
        assert not any(value in record.xml or value in str(record.summary) for value in secret_values)
    assert len(shown) == 2
    assert "SignatureValue" not in body and "DigestValue" not in body
    assert not any(value in body for value in secret_values)

    # What was signed, and how, is still reported; and the page says why the values are gone.
    assert response_record.summary["response_signature"] == "RSA-SHA256"
    assert response_record.summary["assertion_signature"] == "RSA-SHA256"
    assert request_record.summary["signature"].startswith("RSA-SHA256 in the XML, digest SHA256")
    assert "signature values are removed" in body.lower() and "cannot be replayed" in body


def test_encrypted_signed_assertion_recorded_by_the_tracer_cannot_be_rewrapped_and_replayed(
    client, connector, sp_factory, user
):
    """An encrypted assertion carries its signature inside the ciphertext: put into a new Response
    without the (removed) Response signature, it would still sign Jane in to an app that asks only
    for signed assertions. So the tracer keeps no ciphertext either."""
    connector_services.connector_update(
        actor=None, connector=connector, sso={"sp_encryption_cert": sp_keys().encryption_cert}
    )
    tracer.trace_start(actor=None, connector=connector, minutes=30)
    sp = sp_factory(connector, want_assertions_encrypted=True)
    url, request_id = sp.redirect_login()
    client.force_login(user)
    _, fields = auto_post(client.get(url))
    assert sp.acs(fields["SAMLResponse"], request_id=request_id).ok
    sent = etree.fromstring(base64.b64decode(fields["SAMLResponse"]))
    cipher_values = [element.text for element in sent.iter("{http://www.w3.org/2001/04/xmlenc#}CipherValue")]
    assert cipher_values

    record = SamlTraceRecord.objects.get(kind=TraceKind.RESPONSE)
    rewrapped = etree.fromstring(_rebuilt(record.xml))
    rewrapped.remove(rewrapped.find(f"{DS}Signature"))
    assert not _app_accepts(sp, etree.tostring(rewrapped), request_id)
    assert record.summary["encrypted"] is True
    assert "CipherValue" not in record.xml
    assert not any(value in record.xml for value in cipher_values)


def test_signed_responses_recorded_before_the_upgrade_lose_their_signature_values(connector, user):
    """The data migration does to the messages already recorded what the tracer now does to new ones."""
    from importlib import import_module

    from django.apps import apps as django_apps
    from django.utils import timezone

    from apps.saml_idp.attributes import subject_for
    from apps.saml_idp.keys import loaded_key, signing_key_for
    from apps.saml_idp.models import TraceOutcome
    from apps.saml_idp.responses import Session, build_authn_response
    from apps.saml_idp.trace_xml import pretty_xml

    key = loaded_key(signing_key_for(connector))
    session = Session(index="_s1", authn_instant=timezone.now())
    subject = subject_for(connector, user)
    sent = build_authn_response(connector, subject, key, session, acs_url=SP_ACS_URL, in_response_to="_r1")
    # What the tracer used to store: the whole response, indented.
    old = SamlTraceRecord.objects.create(
        connector=connector, kind=TraceKind.RESPONSE, outcome=TraceOutcome.SENT, xml=pretty_xml(etree.fromstring(sent))
    )
    assert _signatures_verify(_rebuilt(old.xml), key.certificate_pem)

    migration = import_module("apps.saml_idp.migrations.0004_trace_records_without_credentials")
    migration.strip_stored_credentials(django_apps, None)
    old.refresh_from_db()
    assert "SignatureValue" not in old.xml and "DigestValue" not in old.xml
    assert not any(value in old.xml for value in _signature_and_digest_values(sent))
    assert not _signatures_verify(_rebuilt(old.xml), key.certificate_pem)
    assert "<saml:NameID" in old.xml and "rsa-sha256" in old.xml


# --- Logout CSRF ----------------------------------------------------------------------------------


@pytest.fixture
def slo_connector(connector):
    return connector_services.connector_update(
        actor=None,
        connector=connector,
        sso={"slo_url": SLS_URL, "slo_binding": OneLogin_Saml2_Constants.BINDING_HTTP_REDIRECT},
    )


def _slo_path(connector) -> str:
    return reverse("saml_idp:slo", args=[connector.slug])


def _send_logout_request(browser: Client, connector, url: str, binding: str):
    """Deliver an SP's (here: an attacker's) HTTP-Redirect LogoutRequest URL as that binding."""
    if binding == "GET":
        return browser.get(url[url.index("/saml/idp/") :], HTTP_SEC_FETCH_SITE="cross-site")
    xml = zlib.decompress(base64.b64decode(parse_qs(urlsplit(url).query)["SAMLRequest"][0]), -15)
    response = browser.post(_slo_path(connector), {"SAMLRequest": base64.b64encode(xml).decode()})
    assert response.status_code == 303
    return browser.get(response["Location"])


def _no_session_ended() -> None:
    assert not AuditEvent.objects.filter(action="saml.slo", after__session_ended=True).exists()


@pytest.mark.parametrize("binding", ["GET", "POST"])
def test_forged_unsigned_logout_request_for_another_name_id_leaves_the_session_alive(
    binding, client, slo_connector, sp_factory
):
    session_key = _jane_signs_in(client)
    forged = sp_factory(slo_connector).auth().logout(name_id="mallory@example.com")
    _send_logout_request(client, slo_connector, forged, binding)
    _session_is_alive(client, session_key)
    _no_session_ended()
    event = AuditEvent.objects.get(action="saml.slo")
    assert event.after["name_id_matches"] is False and event.after["session_ended"] is False


@pytest.mark.parametrize("binding", ["GET", "POST"])
def test_logout_request_with_a_mismatched_session_index_leaves_the_session_alive(
    binding, client, slo_connector, sp_factory
):
    session_key = _jane_signs_in(client)
    other_session = session_index("another-session-of-jane")
    forged = sp_factory(slo_connector).auth().logout(name_id="jane.doe@example.com", session_index=other_session)
    _send_logout_request(client, slo_connector, forged, binding)
    _session_is_alive(client, session_key)
    _no_session_ended()


def test_unsigned_logout_request_naming_the_user_without_a_session_index_leaves_the_session_alive(
    client, slo_connector, sp_factory
):
    """Her email address is no secret; the SessionIndex the portal gave her apps is."""
    session_key = _jane_signs_in(client)
    forged = sp_factory(slo_connector).auth().logout(name_id="jane.doe@example.com")
    _send_logout_request(client, slo_connector, forged, "GET")
    _session_is_alive(client, session_key)
    _no_session_ended()


def test_forged_logout_request_to_an_app_without_slo_url_leaves_the_session_alive(client, connector, sp_factory):
    session_key = _jane_signs_in(client)
    sp = sp_factory(connector)
    sp.settings_dict["idp"]["singleLogoutService"] = {
        "url": connector.sso_url.replace("/sso", "/slo"),
        "binding": OneLogin_Saml2_Constants.BINDING_HTTP_REDIRECT,
    }
    response = _send_logout_request(client, connector, sp.auth().logout(name_id="mallory@example.com"), "GET")
    assert response.status_code == 200
    assert "You are still signed in" in response.content.decode()
    _session_is_alive(client, session_key)
    _no_session_ended()


def _sp_sign_in(browser: Client, sp) -> tuple[str, str]:
    """A real SP-initiated sign-in: (NameID, SessionIndex) as the app received them."""
    url, request_id = sp.redirect_login()
    _, fields = auto_post(browser.get(url))
    result = sp.acs(fields["SAMLResponse"], request_id=request_id)
    assert result.ok, (result.errors, result.reason)
    return result.auth.get_nameid(), result.auth.get_session_index()


def test_unsigned_logout_request_refused_when_the_connector_requires_signed_requests(client, slo_connector, sp_factory):
    session_key = _jane_signs_in(client)
    name_id, index = _sp_sign_in(client, sp_factory(slo_connector))
    connector_services.connector_update(
        actor=None,
        connector=slo_connector,
        sso={"require_signed_requests": True, "sp_signing_cert": sp_keys().signing_cert},
    )
    forged = sp_factory(slo_connector).auth().logout(name_id=name_id, session_index=index)
    response = _send_logout_request(client, slo_connector, forged, "GET")
    assert response.status_code == 400
    assert "requires signed requests" in response.content.decode()
    assert "SAMLResponse" not in response.content.decode()
    _session_is_alive(client, session_key)
    assert AuditEvent.objects.get(action="saml.slo.refused").after["reason"] == "unsigned_request"
    assert not AuditEvent.objects.filter(action="saml.slo").exists()


@pytest.mark.parametrize("binding", ["GET", "POST"])
def test_genuine_logout_request_from_the_app_still_ends_the_session(binding, client, slo_connector, sp_factory):
    _jane_signs_in(client)
    sp = sp_factory(slo_connector)
    name_id, index = _sp_sign_in(client, sp)
    request = sp.auth().logout(name_id=name_id, session_index=index)
    response = _send_logout_request(client, slo_connector, request, binding)
    assert response.status_code == 302 and response["Location"].startswith(SLS_URL + "?SAMLResponse=")
    errors, reason = sls_result(sp, response["Location"], request_id=None)
    assert errors == [], reason
    assert SESSION_KEY not in client.session
    assert client.get("/").status_code == 302  # to the login page
    assert AuditEvent.objects.get(action="saml.slo").after["session_ended"] is True


# --- Sign-in without intent -----------------------------------------------------------------------


def _launch_path(connector) -> str:
    return reverse("saml_idp:launch", args=[connector.slug])


def _csrf_client(user) -> Client:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    return browser


_FORM = re.compile(r'<form method="post" action="([^"]+)"[^>]*>(.*?)</form>', re.DOTALL)
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def _forms(page_html: str) -> dict[str, dict[str, str]]:
    """The POST forms of a page: action -> hidden fields."""
    return {
        html.unescape(action): {name: html.unescape(value) for name, value in _HIDDEN.findall(inner)}
        for action, inner in _FORM.findall(page_html)
    }


CROSS_SITE_EVIDENCE = [
    pytest.param({"HTTP_SEC_FETCH_SITE": "cross-site"}, id="sec-fetch-site-cross-site"),
    pytest.param({"HTTP_SEC_FETCH_SITE": "same-site"}, id="sec-fetch-site-sibling-subdomain"),
    pytest.param({"HTTP_REFERER": "https://evil.example/lure.html"}, id="foreign-referer"),
    pytest.param({"HTTP_SEC_FETCH_SITE": "cross-site", "HTTP_REFERER": "http://testserver/"}, id="forged-referer"),
    pytest.param({}, id="no-evidence-at-all"),
]


@pytest.mark.parametrize("headers", CROSS_SITE_EVIDENCE)
def test_cross_site_get_launch_shows_a_confirmation_instead_of_signing_in(headers, connector, user):
    browser = _csrf_client(user)
    response = browser.get(_launch_path(connector), {"RelayState": "/dashboard"}, **headers)
    assert response.status_code == 200
    body = response.content.decode()
    assert "SAMLResponse" not in body
    assert f"Sign in to {connector.name}?" in body
    assert response["X-Frame-Options"] == "DENY" and "frame-ancestors 'none'" in response["Content-Security-Policy"]
    form = _forms(body)[_launch_path(connector)]
    assert form["RelayState"] == "/dashboard" and form["csrfmiddlewaretoken"]
    assert _sso_issued_count() == 0
    assert not AuditEvent.objects.filter(action__startswith="saml.sso").exists()


def test_confirmation_button_signs_in_with_its_csrf_token(connector, user, sp_factory):
    browser = _csrf_client(user)
    page = browser.get(_launch_path(connector), {"RelayState": "/dashboard"}, HTTP_SEC_FETCH_SITE="cross-site")
    fields = _forms(page.content.decode())[_launch_path(connector)]
    _, posted = auto_post(browser.post(_launch_path(connector), fields, HTTP_SEC_FETCH_SITE="same-origin"))
    result = sp_factory(connector).acs(posted["SAMLResponse"], request_id=None, relay_state=posted["RelayState"])
    assert result.ok, (result.errors, result.reason)
    assert posted["RelayState"] == "/dashboard"
    assert _sso_issued_count() == 1


def test_forged_cross_site_launch_post_without_csrf_token_is_refused(connector, user):
    browser = _csrf_client(user)
    response = browser.post(_launch_path(connector), {"RelayState": "/dashboard"}, HTTP_SEC_FETCH_SITE="cross-site")
    assert response.status_code == 403
    assert b"SAMLResponse" not in response.content
    assert _sso_issued_count() == 0


def test_launchpad_tile_posts_a_csrf_protected_form_that_signs_in(connector, user, sp_factory):
    browser = _csrf_client(user)
    launchpad = browser.get("/")
    body = launchpad.content.decode()
    # The CSP is script-src 'self': the tile works without any inline script.
    assert not re.search(r"<script(?![^>]*\bsrc=)", body) and " on" + "click=" not in body
    fields = _forms(body)[_launch_path(connector)]
    assert set(fields) == {"csrfmiddlewaretoken"}
    _, posted = auto_post(browser.post(_launch_path(connector), fields, HTTP_SEC_FETCH_SITE="same-origin"))
    result = sp_factory(connector).acs(posted["SAMLResponse"], request_id=None)
    assert result.ok, (result.errors, result.reason)
    assert AuditEvent.objects.get(action="saml.sso.success").after["flow"] == "idp"


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"HTTP_SEC_FETCH_SITE": "same-origin"}, id="same-origin"),
        pytest.param({"HTTP_SEC_FETCH_SITE": "none"}, id="typed-or-bookmarked"),
        pytest.param({"HTTP_REFERER": "http://testserver/"}, id="own-referer-without-fetch-metadata"),
    ],
)
def test_same_origin_get_launch_still_signs_in(headers, connector, user, sp_factory):
    browser = _csrf_client(user)
    _, posted = auto_post(browser.get(_launch_path(connector), **headers))
    assert sp_factory(connector).acs(posted["SAMLResponse"], request_id=None).ok
    assert _sso_issued_count() == 1
