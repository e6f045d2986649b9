"""Single logout: python3-saml sends the LogoutRequest and checks our LogoutResponse."""

import pytest
from django.contrib.auth import SESSION_KEY
from onelogin.saml2.constants import OneLogin_Saml2_Constants
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from apps.audit.models import AuditEvent
from apps.connectors import services as connector_services
from tests.saml_idp.conftest import auto_post
from tests.saml_idp.sp import sls_result, sp_keys

pytestmark = pytest.mark.django_db
SLS_URL = "https://sp.example.com/saml/sls"


def _with_slo(connector, binding=OneLogin_Saml2_Constants.BINDING_HTTP_REDIRECT):
    return connector_services.connector_update(
        actor=None, connector=connector, sso={"slo_url": SLS_URL, "slo_binding": binding}
    )


def _session_index(client) -> str:
    """The SessionIndex of this portal session's assertions, which a real app sends back."""
    from apps.saml_idp.logout import session_index

    return session_index(client.session.session_key)


def test_redirect_slo_ends_the_session_and_answers_signed(signed_in, connector, sp_factory, user):
    _with_slo(connector)
    sp = sp_factory(connector, want_messages_signed=True)
    url = sp.auth().logout(name_id="jane.doe@example.com", session_index=_session_index(signed_in))
    response = signed_in.get(url)
    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith(SLS_URL + "?SAMLResponse=") and "Signature=" in location
    errors, reason = sls_result(sp, location, request_id=None)
    assert errors == [], reason
    assert SESSION_KEY not in signed_in.session
    event = AuditEvent.objects.get(action="saml.slo")
    assert event.actor == user and event.after["name_id_matches"] is True


def test_post_slo_continues_on_a_same_site_get(signed_in, connector, sp_factory):
    _with_slo(connector, OneLogin_Saml2_Constants.BINDING_HTTP_POST)
    sp = sp_factory(connector)
    url = sp.auth().logout(name_id="jane.doe@example.com", session_index=_session_index(signed_in))
    import base64
    import zlib
    from urllib.parse import parse_qs, urlsplit

    query = parse_qs(urlsplit(url).query)
    xml = zlib.decompress(base64.b64decode(query["SAMLRequest"][0]), -15)
    response = signed_in.post(
        connector.sso_url.replace("/sso", "/slo"), {"SAMLRequest": base64.b64encode(xml).decode()}
    )
    assert response.status_code == 303
    action, fields = auto_post(signed_in.get(response["Location"]))
    assert action == SLS_URL
    xml = base64.b64decode(fields["SAMLResponse"])
    assert b"LogoutResponse" in xml
    # Built by pysaml2, signed in-process; checked by python3-saml against our metadata's certificate.
    assert OneLogin_Saml2_Utils.validate_sign(
        xml, sp.idp["x509cert"], xpath="/samlp:LogoutResponse/ds:Signature", raise_exceptions=True
    )
    assert SESSION_KEY not in signed_in.session


def test_slo_without_sp_url_shows_signed_out_page(signed_in, connector, sp_factory):
    sp = sp_factory(connector)
    sp.settings_dict["idp"]["singleLogoutService"] = {
        "url": connector.sso_url.replace("/sso", "/slo"),
        "binding": OneLogin_Saml2_Constants.BINDING_HTTP_REDIRECT,
    }
    response = signed_in.get(sp.auth().logout(name_id="jane.doe@example.com", session_index=_session_index(signed_in)))
    assert response.status_code == 200 and b"signed out" in response.content
    assert SESSION_KEY not in signed_in.session


def test_unsigned_slo_refused_when_signing_required(signed_in, connector, sp_factory):
    _with_slo(connector)
    connector_services.connector_update(
        actor=None,
        connector=connector,
        sso={"require_signed_requests": True, "sp_signing_cert": sp_keys().signing_cert},
    )
    response = signed_in.get(sp_factory(connector).auth().logout(name_id="x"))
    assert response.status_code == 400
    assert SESSION_KEY in signed_in.session
    assert AuditEvent.objects.filter(action="saml.slo.refused", after__reason="unsigned_request").exists()
    signed = sp_factory(connector, sign_requests=True).auth().logout(name_id="jane.doe@example.com")
    assert signed_in.get(signed).status_code == 302
    assert SESSION_KEY not in signed_in.session


def _sp_answer_to_portal_logout(sp, connector, user) -> str:
    """python3-saml processes the LogoutRequest the portal sends at sign-out and answers it: the URL
    of its LogoutResponse to our SLO endpoint (HTTP-Redirect, signed by the SP)."""
    from urllib.parse import parse_qs, urlsplit

    from apps.saml_idp.logout import logout_message

    message = logout_message(connector, user, session_key="session-1")
    query = {name: values[0] for name, values in parse_qs(urlsplit(message.url).query).items()}
    auth = sp.auth(get=query)
    answer = auth.process_slo(keep_local_session=True)
    assert auth.get_errors() == [], auth.get_last_error_reason()
    return answer


def test_the_apps_logout_response_to_the_portals_sign_out_is_accepted(client, connector, sp_factory, user):
    _with_slo(connector)
    keys = sp_keys()
    connector_services.connector_update(actor=None, connector=connector, sso={"sp_signing_cert": keys.signing_cert})
    sp = sp_factory(connector, want_messages_signed=True)
    sp.settings_dict["security"]["logoutResponseSigned"] = True
    url = _sp_answer_to_portal_logout(sp, connector, user)
    assert "SAMLResponse=" in url and "Signature=" in url
    response = client.get(url[url.index("/saml/idp/") :])
    assert response.status_code == 200
    assert f"Signed out of {connector.name}" in response.content.decode()
    # It is shown in a frame of the portal's own signed-out page, and nowhere else.
    assert "frame-ancestors 'self'" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    event = AuditEvent.objects.get(action="saml.slo.response")
    assert event.after["succeeded"] is True and event.after["signed"] is True
    # The same response again is a replay.
    again = client.get(url[url.index("/saml/idp/") :])
    assert again.status_code in (400, 403)
    assert AuditEvent.objects.filter(action="saml.slo.refused").count() == 1


def test_a_tampered_logout_response_is_refused(client, connector, sp_factory, user):
    _with_slo(connector)
    keys = sp_keys()
    connector_services.connector_update(actor=None, connector=connector, sso={"sp_signing_cert": keys.signing_cert})
    sp = sp_factory(connector, want_messages_signed=True)
    sp.settings_dict["security"]["logoutResponseSigned"] = True
    url = _sp_answer_to_portal_logout(sp, connector, user)
    tampered = url.replace("Signature=", "Signature=AAAA")
    response = client.get(tampered[tampered.index("/saml/idp/") :])
    assert response.status_code in (400, 403)
    assert not AuditEvent.objects.filter(action="saml.slo.response").exists()
    assert AuditEvent.objects.get(action="saml.slo.refused").after["reason"] == "bad_signature"


# --- The SAML tracer sees logout messages both ways -------------------------------------------------


def _capture(connector) -> None:
    from apps.saml_idp import tracer

    tracer.trace_start(actor=None, connector=connector, minutes=30)


def test_tracer_records_the_logout_response_the_portal_sends(signed_in, connector, sp_factory):
    from apps.saml_idp.models import SamlTraceRecord, TraceKind, TraceOutcome

    _with_slo(connector)
    _capture(connector)
    sp = sp_factory(connector)
    auth = sp.auth()
    url = auth.logout(name_id="jane.doe@example.com", session_index="_s")
    assert signed_in.get(url).status_code == 302

    received = SamlTraceRecord.objects.get(kind=TraceKind.LOGOUT_REQUEST)
    sent = SamlTraceRecord.objects.get(kind=TraceKind.LOGOUT_RESPONSE_SENT)
    assert sent.outcome == TraceOutcome.SENT and sent.binding == OneLogin_Saml2_Constants.BINDING_HTTP_REDIRECT
    assert sent.summary["in_response_to"] == auth.get_last_request_id() == received.message_id
    assert sent.summary["status"] == "Success" and sent.summary["destination"] == SLS_URL
    assert sent.summary["response_signature"] == "RSA-SHA256 in the query string (HTTP-Redirect)"
    assert "LogoutResponse" in sent.xml and sent.user_label == "jane.doe"
    assert sent.problems == []


def test_tracer_records_a_post_logout_response_with_its_xml_signature(signed_in, connector, sp_factory):
    import base64
    import zlib
    from urllib.parse import parse_qs, urlsplit

    from apps.saml_idp.models import SamlTraceRecord, TraceKind

    _with_slo(connector, OneLogin_Saml2_Constants.BINDING_HTTP_POST)
    _capture(connector)
    url = sp_factory(connector).auth().logout(name_id="jane.doe@example.com")
    xml = zlib.decompress(base64.b64decode(parse_qs(urlsplit(url).query)["SAMLRequest"][0]), -15)
    response = signed_in.post(
        connector.sso_url.replace("/sso", "/slo"), {"SAMLRequest": base64.b64encode(xml).decode()}
    )
    auto_post(signed_in.get(response["Location"]))

    sent = SamlTraceRecord.objects.get(kind=TraceKind.LOGOUT_RESPONSE_SENT)
    assert sent.binding == OneLogin_Saml2_Constants.BINDING_HTTP_POST
    assert sent.summary["response_signature"] == "RSA-SHA256"


def test_tracer_records_the_apps_logout_responses_accepted_and_refused(client, connector, sp_factory, user):
    from apps.saml_idp.models import SamlTraceRecord, TraceKind, TraceOutcome

    _with_slo(connector)
    connector_services.connector_update(
        actor=None, connector=connector, sso={"sp_signing_cert": sp_keys().signing_cert}
    )
    _capture(connector)
    sp = sp_factory(connector, want_messages_signed=True)
    sp.settings_dict["security"]["logoutResponseSigned"] = True
    url = _sp_answer_to_portal_logout(sp, connector, user)
    assert client.get(url[url.index("/saml/idp/") :]).status_code == 200
    tampered = _sp_answer_to_portal_logout(sp, connector, user).replace("Signature=", "Signature=AAAA")
    assert client.get(tampered[tampered.index("/saml/idp/") :]).status_code in (400, 403)

    accepted, refused = SamlTraceRecord.objects.filter(kind=TraceKind.LOGOUT_RESPONSE_RECEIVED).order_by("id")
    assert accepted.outcome == TraceOutcome.ACCEPTED and accepted.summary["status"] == "Success"
    assert accepted.summary["signature"].startswith("RSA-SHA256 in the query string")
    assert accepted.summary["issuer"] == sp.settings_dict["sp"]["entityId"]
    assert not [problem for problem in accepted.problems if problem["level"] == "bad"]
    assert refused.outcome == TraceOutcome.REFUSED and refused.error_reason == "bad_signature"
    assert any(problem["level"] == "bad" for problem in refused.problems)


def test_tracer_records_a_sign_in_refused_because_the_app_is_switched_off(signed_in, connector, sp_factory):
    from apps.saml_idp.models import SamlTraceRecord, TraceKind, TraceOutcome

    _capture(connector)
    connector_services.connector_update(actor=None, connector=connector, enabled=False)
    url, _ = sp_factory(connector).redirect_login()
    assert signed_in.get(url).status_code == 403

    refused = SamlTraceRecord.objects.get(kind=TraceKind.RESPONSE)
    assert refused.outcome == TraceOutcome.REFUSED and refused.error_reason == "connector_disabled"
    assert [problem["title"] for problem in refused.problems] == [
        "No response sent: the app is switched off in the portal"
    ]
