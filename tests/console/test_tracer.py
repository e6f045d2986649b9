"""The SAML tracer: capture on and off, real SP-initiated requests from python3-saml recorded with
their problems named, responses, the assertion preview, and who may do what."""

import base64
import datetime

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from onelogin.saml2.constants import OneLogin_Saml2_Constants
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from apps.audit.models import AuditEvent
from apps.connectors import services as connector_services
from apps.connectors.models import Connector
from apps.directory import services as directory_services
from apps.saml_idp import selectors as saml_selectors
from apps.saml_idp import tracer
from apps.saml_idp.models import SamlTraceRecord, TraceKind, TraceOutcome
from tests.factories import GroupFactory, UserFactory
from tests.saml_idp.conftest import _fast_keys, auto_post, idp_metadata, make_connector  # noqa: F401
from tests.saml_idp.sp import SP_ACS_URL, SP_ENTITY_ID, OneLoginSP, saml_instant, sp_keys

pytestmark = pytest.mark.django_db

TRACE_TABLE = SamlTraceRecord._meta.db_table


@pytest.fixture
def jane(db):
    return UserFactory(
        username="jane.doe", email="jane.doe@example.com", first_name="Jane", last_name="Doe", password="s3cret-Pass-99"
    )


@pytest.fixture
def connector(jane) -> Connector:
    connector = make_connector(name="Twingate", slug="twingate")
    group = GroupFactory(name="Engineering")
    directory_services.group_add_members(actor=None, group=group, users=[jane])
    connector_services.mappings_replace(
        actor=None,
        connector=connector,
        kind="saml",
        rows=[
            {"source": "email", "target": "email", "name_format": "basic"},
            {"source": "first_name", "target": "firstName", "name_format": "basic"},
            {"source": "groups", "target": "groups", "name_format": "basic"},
        ],
    )
    connector_services.assignment_create(actor=None, connector=connector, group=group)
    return connector


@pytest.fixture
def end_user(jane) -> Client:
    client = Client()
    client.force_login(jane)
    return client


def _sp(connector: Connector, **kwargs) -> OneLoginSP:
    return OneLoginSP(idp_metadata(Client(), connector), **kwargs)


def _tracer_url(connector: Connector, name: str = "connector_tracer") -> str:
    return reverse(f"console:{name}", args=[connector.slug])


def _capture(connector: Connector, minutes: int = 30) -> None:
    tracer.trace_start(actor=None, connector=connector, minutes=minutes)


def _titles(record: SamlTraceRecord) -> list[str]:
    return [problem["title"] for problem in record.problems]


def _requests() -> list[SamlTraceRecord]:
    return list(SamlTraceRecord.objects.filter(kind=TraceKind.AUTHN_REQUEST).order_by("created", "id"))


# --- Capture on and off -------------------------------------------------------------------------


def test_start_and_stop_capture_are_audited(admin_client, admin, connector):
    response = admin_client.post(_tracer_url(connector, "connector_tracer_start"), {"minutes": "15"})
    assert response.status_code == 302
    connector.sso.refresh_from_db()
    remaining = (connector.sso.trace_until - timezone.now()).total_seconds()
    assert 14 * 60 < remaining <= 15 * 60
    start = AuditEvent.objects.get(action="saml.trace.start")
    assert start.actor == admin and start.target_id == str(connector.pk) and start.after["minutes"] == 15

    page = admin_client.get(_tracer_url(connector))
    assert b"Capturing" in page.content and b"Stop capturing" in page.content
    assert b'hx-trigger="every 5s"' in page.content

    assert admin_client.post(_tracer_url(connector, "connector_tracer_stop")).status_code == 302
    connector.sso.refresh_from_db()
    assert connector.sso.trace_until is None
    assert AuditEvent.objects.get(action="saml.trace.stop").actor == admin
    assert b"Start capturing" in admin_client.get(_tracer_url(connector)).content


def test_capture_longer_than_the_limit_is_a_field_error(admin_client, connector):
    response = admin_client.post(_tracer_url(connector, "connector_tracer_start"), {"minutes": "600"})
    assert response.status_code == 400
    assert b"Select a valid choice" in response.content
    connector.sso.refresh_from_db()
    assert connector.sso.trace_until is None
    assert not AuditEvent.objects.filter(action="saml.trace.start").exists()


def test_capture_ends_by_itself(connector):
    _capture(connector, minutes=1)
    assert tracer.capturing(connector)
    assert not tracer.capturing(connector, now=timezone.now() + datetime.timedelta(minutes=2))


def test_capture_off_records_nothing_and_costs_no_query(end_user, connector):
    sp = _sp(connector)
    loaded = saml_selectors.sso_connector(connector.slug)
    with CaptureQueriesContext(connection) as queries:
        assert tracer.capturing(loaded) is False
    assert len(queries) == 0

    url, _ = sp.redirect_login()
    auto_post(end_user.get(url))  # the first sign-in of the process loads the signing key
    url, _ = sp.redirect_login()
    with CaptureQueriesContext(connection) as queries:
        auto_post(end_user.get(url))
    assert not SamlTraceRecord.objects.exists()
    assert not [query for query in queries.captured_queries if TRACE_TABLE in query["sql"]]
    off_count = len(queries)

    # An expired capture is off too, and costs the same.
    connector.sso.trace_until = timezone.now() - datetime.timedelta(seconds=1)
    connector.sso.save(update_fields=["trace_until"])
    url, _ = sp.redirect_login()
    auto_post(end_user.get(url))  # the change emptied the settings cache: this sign-in fills it again
    url, _ = sp.redirect_login()
    with CaptureQueriesContext(connection) as queries:
        auto_post(end_user.get(url))
    assert len(queries) == off_count
    assert not SamlTraceRecord.objects.exists()


# --- Real requests from python3-saml ------------------------------------------------------------


def test_sp_initiated_sign_in_is_recorded_with_its_response(end_user, connector, jane, admin_client):
    _capture(connector)
    sp = _sp(connector)
    url, request_id = sp.redirect_login(relay_state="/dashboard")
    _, fields = auto_post(end_user.get(url))
    assert sp.acs(fields["SAMLResponse"], request_id=request_id, relay_state=fields["RelayState"]).ok

    request = SamlTraceRecord.objects.get(kind=TraceKind.AUTHN_REQUEST)
    assert request.outcome == TraceOutcome.ACCEPTED
    assert request.message_id == request_id
    assert request.binding == OneLogin_Saml2_Constants.BINDING_HTTP_REDIRECT
    assert request.relay_state == "/dashboard"
    assert request.user == jane and request.client_ip == "127.0.0.1"
    assert request.summary["issuer"] == SP_ENTITY_ID and request.summary["acs_url"] == SP_ACS_URL
    assert "<samlp:AuthnRequest" in request.xml and "\n  " in request.xml  # decoded and indented
    assert [p for p in request.problems if p["level"] != "info"] == []
    assert "Not signed (this connector does not require signed requests)" in _titles(request)

    response = SamlTraceRecord.objects.get(kind=TraceKind.RESPONSE)
    assert response.outcome == TraceOutcome.SENT
    assert response.summary["in_response_to"] == request_id
    assert response.summary["name_id"] == "jane.doe@example.com"
    assert response.summary["audience"] == SP_ENTITY_ID
    assert response.summary["recipient"] == SP_ACS_URL
    assert response.summary["response_signature"] == "RSA-SHA256"
    assert response.summary["assertion_signature"] == "RSA-SHA256"
    assert {"name": "groups", "values": ["Engineering"]} in response.summary["attributes"]

    page = admin_client.get(_tracer_url(connector))
    assert page.status_code == 200
    assert b"AuthnRequest received" in page.content and b"Response sent" in page.content
    assert b"jane.doe@example.com" in page.content
    assert b"personal data" in page.content


def test_sha1_signed_request_is_flagged(end_user, connector):
    connector_services.connector_update(
        actor=None,
        connector=connector,
        sso={"require_signed_requests": True, "sp_signing_cert": sp_keys().signing_cert},
    )
    _capture(connector)
    sp = _sp(connector, sign_requests=True)
    sp.settings_dict["security"]["signatureAlgorithm"] = OneLogin_Saml2_Constants.RSA_SHA1
    sp.settings_dict["security"]["digestAlgorithm"] = OneLogin_Saml2_Constants.SHA1
    url, _ = sp.redirect_login()
    assert end_user.get(url).status_code == 400

    xml, _ = sp.authn_request_xml()
    signed = OneLogin_Saml2_Utils.add_sign(
        xml,
        sp_keys().signing_key,
        sp_keys().signing_cert,
        sign_algorithm=OneLogin_Saml2_Constants.RSA_SHA1,
        digest_algorithm=OneLogin_Saml2_Constants.SHA1,
    )
    sso_url, form, _ = sp.post_login(xml=signed)
    assert end_user.post(sso_url, form).status_code == 400

    redirect, post = _requests()
    for record in (redirect, post):
        assert record.outcome == TraceOutcome.REFUSED and record.error_reason == "weak_signature"
        assert "Request signed with SHA-1" in _titles(record)
    assert redirect.summary["signature"].startswith("RSA-SHA1 in the query string")
    assert post.summary["signature"] == "RSA-SHA1 in the XML, digest SHA1"
    assert not SamlTraceRecord.objects.filter(kind=TraceKind.RESPONSE).exists()


def test_unregistered_acs_url_is_flagged(end_user, connector, admin_client):
    _capture(connector)
    sp = _sp(connector, acs_url="https://sp.example.com/saml/other-acs")
    url, _ = sp.redirect_login()
    assert end_user.get(url).status_code == 400
    (record,) = _requests()
    assert record.outcome == TraceOutcome.REFUSED and record.error_reason == "acs_not_registered"
    (problem,) = [p for p in record.problems if p["title"] == "ACS URL not registered"]
    assert problem["level"] == "bad"
    assert "https://sp.example.com/saml/other-acs" in problem["detail"] and SP_ACS_URL in problem["detail"]
    assert b"ACS URL not registered" in admin_client.get(_tracer_url(connector)).content


def _post_request(client: Client, connector: Connector, xml: str, relay_state: str = "") -> int:
    form = {"SAMLRequest": base64.b64encode(xml.encode()).decode()}
    if relay_state:
        form["RelayState"] = relay_state
    return client.post(reverse("saml_idp:sso", args=[connector.slug]), form).status_code


def _authn_request(**attributes: str) -> str:
    values = {
        "ID": "_req1",
        "IssueInstant": saml_instant(timezone.now()),
        "Destination": "",
        "AssertionConsumerServiceURL": SP_ACS_URL,
        "ForceAuthn": "true",
        "issuer": SP_ENTITY_ID,
        "format": OneLogin_Saml2_Constants.NAMEID_EMAIL_ADDRESS,
        **attributes,
    }
    return (
        '<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
        'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" Version="2.0" '
        f'ID="{values["ID"]}" IssueInstant="{values["IssueInstant"]}" Destination="{values["Destination"]}" '
        f'AssertionConsumerServiceURL="{values["AssertionConsumerServiceURL"]}" ForceAuthn="{values["ForceAuthn"]}">'
        f"<saml:Issuer>{values['issuer']}</saml:Issuer>"
        f'<samlp:NameIDPolicy Format="{values["format"]}" AllowCreate="true"/>'
        "</samlp:AuthnRequest>"
    )


def test_every_problem_of_a_request_is_named(end_user, connector):
    _capture(connector)
    xml = _authn_request(
        issuer="https://wrong.example.com/sp",
        Destination="https://elsewhere.example.com/sso",
        IssueInstant=saml_instant(timezone.now() - datetime.timedelta(hours=1)),
        format=OneLogin_Saml2_Constants.NAMEID_PERSISTENT,
    )
    assert _post_request(end_user, connector, xml) == 400
    (record,) = _requests()
    # The parser stopped at the issuer; the tracer names everything.
    assert record.error_reason == "unknown_sp"
    titles = _titles(record)
    for expected in (
        "Issuer is not the SP entity ID",
        "Destination is not this connector's URL",
        "IssueInstant too old",
        "NameIDPolicy format differs from the connector's",
        "ForceAuthn",
    ):
        assert expected in titles, titles


def test_request_dated_in_the_future_is_flagged(end_user, connector):
    _capture(connector)
    xml = _authn_request(
        Destination=connector.sso_url, IssueInstant=saml_instant(timezone.now() + datetime.timedelta(minutes=10))
    )
    assert _post_request(end_user, connector, xml) == 400
    (record,) = _requests()
    assert record.error_reason == "future_request"
    assert "IssueInstant in the future" in _titles(record)
    assert "Issuer is not the SP entity ID" not in _titles(record)


def test_unsigned_request_for_a_connector_that_requires_signatures(end_user, connector):
    connector_services.connector_update(
        actor=None,
        connector=connector,
        sso={"require_signed_requests": True, "sp_signing_cert": sp_keys().signing_cert},
    )
    _capture(connector)
    url, _ = _sp(connector).redirect_login()
    assert end_user.get(url).status_code == 400
    (record,) = _requests()
    assert record.error_reason == "unsigned_request"
    assert "Unsigned, though the connector requires signed requests" in _titles(record)


def test_tampered_signed_request_shows_signature_invalid(end_user, connector):
    connector_services.connector_update(
        actor=None,
        connector=connector,
        sso={"require_signed_requests": True, "sp_signing_cert": sp_keys().signing_cert},
    )
    _capture(connector)
    sp = _sp(connector)
    sso_url, form, _ = sp.post_login(sign=True)
    tampered = base64.b64decode(form["SAMLRequest"]).replace(b'ForceAuthn="false"', b'ForceAuthn="true"')
    if b"ForceAuthn" not in tampered:
        tampered = tampered.replace(b"<samlp:AuthnRequest ", b'<samlp:AuthnRequest ForceAuthn="true" ', 1)
    form["SAMLRequest"] = base64.b64encode(tampered).decode()
    assert end_user.post(sso_url, form).status_code == 400
    (record,) = _requests()
    assert record.error_reason == "bad_signature"
    assert "Signature invalid" in _titles(record)


def test_valid_signed_post_request_is_verified(end_user, connector):
    connector_services.connector_update(
        actor=None,
        connector=connector,
        sso={"require_signed_requests": True, "sp_signing_cert": sp_keys().signing_cert},
    )
    _capture(connector)
    sso_url, form, _ = _sp(connector).post_login(sign=True)
    continued = end_user.post(sso_url, form)
    assert continued.status_code == 303
    auto_post(end_user.get(continued["Location"]))
    (record,) = _requests()
    assert record.outcome == TraceOutcome.ACCEPTED
    assert record.summary["signature"] == "RSA-SHA256 in the XML, digest SHA256, verified"
    assert [p for p in record.problems if p["level"] == "bad"] == []
    assert SamlTraceRecord.objects.filter(kind=TraceKind.RESPONSE, outcome=TraceOutcome.SENT).count() == 1


def test_undecodable_request_is_recorded(end_user, connector):
    _capture(connector)
    response = end_user.post(reverse("saml_idp:sso", args=[connector.slug]), {"SAMLRequest": "not base64 !!"})
    assert response.status_code == 400
    (record,) = _requests()
    assert record.outcome == TraceOutcome.REFUSED and record.xml == ""
    assert "The message could not be decoded" in _titles(record)


def test_refused_user_is_recorded(connector):
    _capture(connector)
    outsider = Client()
    outsider.force_login(UserFactory(username="outsider"))
    url, request_id = _sp(connector).redirect_login()
    assert outsider.get(url).status_code == 403
    refused = SamlTraceRecord.objects.get(kind=TraceKind.RESPONSE)
    assert refused.outcome == TraceOutcome.REFUSED and refused.error_reason == "not_assigned"
    assert refused.summary["in_response_to"] == request_id and refused.user_label == "outsider"


def test_encrypted_assertions_are_not_stored_in_plain(end_user, connector):
    connector_services.connector_update(
        actor=None, connector=connector, sso={"sp_encryption_cert": sp_keys().encryption_cert}
    )
    _capture(connector)
    url, _ = _sp(connector, want_assertions_encrypted=True).redirect_login()
    auto_post(end_user.get(url))
    response = SamlTraceRecord.objects.get(kind=TraceKind.RESPONSE)
    assert response.summary["encrypted"] is True
    assert "EncryptedAssertion" in response.xml
    assert "jane.doe@example.com" not in response.xml and "name_id" not in response.summary


def test_logout_request_is_recorded(end_user, connector):
    _capture(connector)
    xml = (
        '<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
        'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_logout1" Version="2.0" '
        f'IssueInstant="{saml_instant(timezone.now())}">'
        f"<saml:Issuer>{SP_ENTITY_ID}</saml:Issuer><saml:NameID>jane.doe@example.com</saml:NameID>"
        "</samlp:LogoutRequest>"
    )
    form = {"SAMLRequest": base64.b64encode(xml.encode()).decode()}
    assert end_user.post(reverse("saml_idp:slo", args=[connector.slug]), form).status_code == 303
    record = SamlTraceRecord.objects.get(kind=TraceKind.LOGOUT_REQUEST)
    assert record.outcome == TraceOutcome.ACCEPTED
    assert record.summary["name_id"] == "jane.doe@example.com"


def test_only_the_last_messages_are_kept_and_old_ones_expire(end_user, connector, settings):
    settings.SAML_IDP_TRACE_KEEP = 3
    _capture(connector)
    sp = _sp(connector)
    for _ in range(3):
        url, _ = sp.redirect_login()
        auto_post(end_user.get(url))
    records = list(SamlTraceRecord.objects.order_by("created", "id"))
    assert len(records) == 3
    assert [record.kind for record in records] == [TraceKind.RESPONSE, TraceKind.AUTHN_REQUEST, TraceKind.RESPONSE]

    SamlTraceRecord.objects.update(created=timezone.now() - datetime.timedelta(hours=25))
    connector.sso.trace_until = timezone.now() - datetime.timedelta(minutes=1)
    connector.sso.save(update_fields=["trace_until"])
    assert tracer.trace_expire() == 3
    connector.sso.refresh_from_db()
    assert connector.sso.trace_until is None


def test_clear_deletes_the_messages_and_is_audited(end_user, connector, admin_client, admin):
    _capture(connector)
    url, _ = _sp(connector).redirect_login()
    auto_post(end_user.get(url))
    assert admin_client.post(_tracer_url(connector, "connector_tracer_clear")).status_code == 302
    assert not SamlTraceRecord.objects.exists()
    event = AuditEvent.objects.get(action="saml.trace.clear")
    assert event.actor == admin and event.after == {"deleted": 2}


def test_records_partial_for_polling(admin_client, connector):
    _capture(connector)
    response = admin_client.get(f"{_tracer_url(connector)}?part=records", headers={"HX-Request": "true"})
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<section class="c-card" aria-labelledby="records-heading"')
    assert "Waiting for the first message" in body and "<html" not in body


# --- Assertion preview --------------------------------------------------------------------------


def test_preview_shows_the_assertion_without_signing_in(admin_client, connector, jane):
    response = admin_client.get(_tracer_url(connector), {"q": "jane.doe"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "This user may sign in to Twingate." in body
    assert "jane.doe@example.com" in body and "Engineering" in body
    assert SP_ACS_URL in body and SP_ENTITY_ID in body
    assert "Assertion XML (unsigned)" in body and "ds:Signature" not in body
    assert not AuditEvent.objects.filter(action="saml.sso.success").exists()
    assert "_auth_user_id" not in admin_client.session or admin_client.session["_auth_user_id"] != str(jane.pk)


def test_preview_of_an_unassigned_user_says_they_would_be_refused(admin_client, connector):
    UserFactory(username="outsider", email="outsider@example.com")
    preview_url = _tracer_url(connector, "connector_tracer_preview")
    response = admin_client.get(preview_url, {"q": "outsider@example.com"}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "would be refused" in body and "not assigned" in body
    assert "<html" not in body


def test_preview_search_with_several_matches_lists_them(admin_client, connector):
    UserFactory(username="sam.one", first_name="Sam", last_name="One")
    UserFactory(username="sam.two", first_name="Sam", last_name="Two")
    response = admin_client.get(_tracer_url(connector), {"q": "sam"})
    assert b"Several users match" in response.content
    assert b"sam.one" in response.content and b"sam.two" in response.content
    nobody = admin_client.get(_tracer_url(connector), {"q": "zzz-nobody"})
    assert b"No user matches" in nobody.content


def test_preview_without_javascript_redirects_to_the_page(admin_client, connector):
    response = admin_client.get(_tracer_url(connector, "connector_tracer_preview"), {"q": "jane.doe"})
    assert response.status_code == 302
    assert response["Location"].startswith(_tracer_url(connector) + "?q=jane.doe")


# --- Who may do what ----------------------------------------------------------------------------


def test_help_desk_gets_403_everywhere(helpdesk_client, connector):
    assert helpdesk_client.get(_tracer_url(connector)).status_code == 403
    assert helpdesk_client.get(_tracer_url(connector, "connector_tracer_preview"), {"q": "x"}).status_code == 403
    for name in ("connector_tracer_start", "connector_tracer_stop", "connector_tracer_clear"):
        assert helpdesk_client.post(_tracer_url(connector, name), {"minutes": "5"}).status_code == 403


def test_read_only_sees_but_cannot_change(readonly_client, connector):
    page = readonly_client.get(_tracer_url(connector))
    assert page.status_code == 200
    assert b">Start capturing</button>" not in page.content
    for name in ("connector_tracer_start", "connector_tracer_stop", "connector_tracer_clear"):
        assert readonly_client.post(_tracer_url(connector, name), {"minutes": "5"}).status_code == 403
    connector.sso.refresh_from_db()
    assert connector.sso.trace_until is None


def test_start_without_csrf_token_is_refused(admin, connector):
    from tests.console.conftest import console_client

    client = console_client(admin)
    client.handler.enforce_csrf_checks = True
    assert client.post(_tracer_url(connector, "connector_tracer_start"), {"minutes": "5"}).status_code == 403
    connector.sso.refresh_from_db()
    assert connector.sso.trace_until is None


def test_unknown_or_non_saml_connector_is_404(admin_client, connector):
    assert admin_client.get(reverse("console:connector_tracer", args=["nope"])).status_code == 404
    scim_only = connector_services.connector_create(
        actor=None, template="generic-scim", name="Directory sync", slug="directory-sync"
    )
    assert admin_client.get(_tracer_url(scim_only)).status_code == 404


def test_signed_out_cannot_reach_the_tracer(client, connector):
    response = client.get(_tracer_url(connector))
    assert response.status_code == 302 and "/console/" not in response["Location"].split("?")[0]
