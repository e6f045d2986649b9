"""Single logout over SOAP (the back-channel): python3-saml builds the LogoutRequest, signed with
the SP's key; the portal ends the sessions it names and answers a LogoutResponse."""

import pytest
from django.contrib.sessions.backends.db import SessionStore
from lxml import etree
from onelogin.saml2.constants import OneLogin_Saml2_Constants
from onelogin.saml2.logout_request import OneLogin_Saml2_Logout_Request
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from apps.audit.models import AuditEvent
from apps.connectors import services as connector_services
from apps.connectors.idp_urls import backchannel_slo_url as soap_url
from apps.portal.models import PortalSession
from apps.saml_idp.backchannel import SOAP_ENV_NS
from apps.saml_idp.keys import generate_key_pair
from apps.saml_idp.logout import session_index
from tests.saml_idp.sp import sp_keys

pytestmark = pytest.mark.django_db
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"


def _portal_session(user) -> str:
    store = SessionStore()
    store["marker"] = True
    store.create()
    PortalSession.objects.create(user=user, session_key=store.session_key, method="password")
    return store.session_key


def _logout_envelope(sp, connector, *, session_indexes, sign_with=None, name_id="jane.doe@example.com") -> bytes:
    settings = OneLogin_Saml2_Settings(sp.settings_dict)
    settings.get_idp_data()["singleLogoutService"]["url"] = soap_url(connector)
    xml = OneLogin_Saml2_Logout_Request(
        settings,
        name_id=name_id,
        session_index=session_indexes,
        name_id_format=OneLogin_Saml2_Constants.NAMEID_EMAIL_ADDRESS,
    ).get_xml()
    if sign_with is not None:
        key, cert = sign_with
        xml = OneLogin_Saml2_Utils.add_sign(
            xml,
            key,
            cert,
            sign_algorithm=OneLogin_Saml2_Constants.RSA_SHA256,
            digest_algorithm=OneLogin_Saml2_Constants.SHA256,
        )
    body = xml if isinstance(xml, str) else xml.decode()
    return (
        f'<SOAP-ENV:Envelope xmlns:SOAP-ENV="{SOAP_ENV_NS}"><SOAP-ENV:Body>{body}</SOAP-ENV:Body></SOAP-ENV:Envelope>'
    ).encode()


@pytest.fixture
def soap_connector(connector):
    return connector_services.connector_update(
        actor=None, connector=connector, sso={"sp_signing_cert": sp_keys().signing_cert}
    )


def _post(client, connector, body: bytes):
    return client.post(f"/saml/idp/{connector.slug}/slo/soap", body, content_type="text/xml")


def test_a_signed_soap_logout_ends_the_named_session_only(client, soap_connector, sp_factory, user):
    ended, kept = _portal_session(user), _portal_session(user)
    sp = sp_factory(soap_connector)
    keys = sp_keys()
    body = _logout_envelope(
        sp, soap_connector, session_indexes=session_index(ended), sign_with=(keys.signing_key, keys.signing_cert)
    )
    response = _post(client, soap_connector, body)
    assert response.status_code == 200, response.content[:500]
    answer = etree.fromstring(response.content).find(f"{{{SOAP_ENV_NS}}}Body/{{{SAMLP}}}LogoutResponse")
    assert answer.find(f"{{{SAMLP}}}Status/{{{SAMLP}}}StatusCode").get("Value").endswith(":Success")
    # Unsigned: the answer rides the connection the SP opened (backchannel.py says why).
    assert answer.find("{http://www.w3.org/2000/09/xmldsig#}Signature") is None
    assert not SessionStore().exists(ended) and SessionStore().exists(kept)
    assert list(PortalSession.objects.values_list("session_key", flat=True)) == [kept]
    event = AuditEvent.objects.get(action="saml.slo")
    assert event.after["binding"].endswith(":SOAP") and event.after["sessions_ended"] == 1


def test_without_a_session_index_every_session_of_the_person_ends(client, soap_connector, sp_factory, user):
    sessions = [_portal_session(user), _portal_session(user)]
    keys = sp_keys()
    body = _logout_envelope(
        sp_factory(soap_connector),
        soap_connector,
        session_indexes=None,
        sign_with=(keys.signing_key, keys.signing_cert),
    )
    assert _post(client, soap_connector, body).status_code == 200
    assert not any(SessionStore().exists(key) for key in sessions)


@pytest.mark.parametrize("signed_by", ["nobody", "another key"])
def test_an_unsigned_or_forged_soap_logout_is_refused_and_ends_nothing(
    client, soap_connector, sp_factory, user, signed_by
):
    session = _portal_session(user)
    other = generate_key_pair(key_size=2048, validity_days=30, common_name="attacker")
    sign_with = None if signed_by == "nobody" else (other.private_key_pem, other.certificate_pem)
    body = _logout_envelope(sp_factory(soap_connector), soap_connector, session_indexes=None, sign_with=sign_with)
    response = _post(client, soap_connector, body)
    assert response.status_code == 403
    assert b"Fault" in response.content
    assert SessionStore().exists(session)
    assert AuditEvent.objects.filter(action="saml.slo.refused").exists()


def test_a_replayed_soap_logout_is_refused(client, soap_connector, sp_factory, user):
    keys = sp_keys()
    body = _logout_envelope(
        sp_factory(soap_connector),
        soap_connector,
        session_indexes=None,
        sign_with=(keys.signing_key, keys.signing_cert),
    )
    assert _post(client, soap_connector, body).status_code == 200
    assert _post(client, soap_connector, body).status_code == 400


def test_junk_gets_a_soap_fault_not_a_500(client, soap_connector):
    assert _post(client, soap_connector, b"<not-soap/>").status_code == 400
    assert _post(client, soap_connector, b"\x00\x01").status_code == 400
    assert client.get(f"/saml/idp/{soap_connector.slug}/slo/soap").status_code == 405
