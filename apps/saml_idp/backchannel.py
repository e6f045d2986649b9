"""Single logout over the SOAP binding: an SP's server asks the portal to end a person's session.

No browser is involved, so no session cookie says whose session it is: the LogoutRequest names
the person (NameID) and, usually, the sessions (SessionIndex, which our assertions derive from the
portal session key). Because anyone can send a SOAP request, it must carry a valid XML signature
from the SP's signing certificate, whatever `require_signed_requests` says; the replay cache, the
Destination, the issuer and the IssueInstant are checked as for the front-channel bindings
(`requests.parse_logout_request`). The answer is a LogoutResponse in a SOAP envelope, unsigned:
it goes back on the connection the SP's server opened to the portal's HTTPS URL, which is what
the SOAP binding relies on (SAML bindings 3.2.2.2), and an XML signature there does not survive
SPs that re-serialize the SOAP body before checking it (pysaml2 does, with whatever namespace
prefixes its process has registered, so a signed answer verified only some of the time).

The portal does not relay this logout to the other apps the person signed in to: that needs
the browser (front-channel), which a back-channel request does not have.
"""

import base64
import dataclasses

from django.db import transaction
from lxml import etree

from apps.audit.services import audit_record
from apps.common.xml import UnsafeXMLError, parse_untrusted_xml
from apps.connectors import idp_urls
from apps.connectors.models import Connector
from apps.directory.models import User
from apps.saml_idp.constants import BINDING_POST, PROTOCOL_NS, STATUS_SUCCESS
from apps.saml_idp.errors import SamlRequestError
from apps.saml_idp.keys import LoadedKey
from apps.saml_idp.logout import end_sessions, session_index
from apps.saml_idp.requests import IncomingMessage, LogoutRequestInfo, parse_logout_request

BINDING_SOAP = "urn:oasis:names:tc:SAML:2.0:bindings:SOAP"
SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
STATUS_UNKNOWN_PRINCIPAL = "urn:oasis:names:tc:SAML:2.0:status:UnknownPrincipal"
_ENV = f"{{{SOAP_ENV_NS}}}"


def logout_request_from_envelope(body: bytes, max_bytes: int) -> bytes:
    """The samlp:LogoutRequest inside a SOAP 1.1 envelope, serialized on its own."""
    try:
        root = parse_untrusted_xml(body, max_bytes=max_bytes)
    except UnsafeXMLError as exc:
        raise SamlRequestError("malformed", f"The SOAP message is not acceptable XML: {exc}") from exc
    if root.tag != f"{_ENV}Envelope":
        raise SamlRequestError("malformed", "Not a SOAP 1.1 envelope.")
    children = list(root.find(f"{_ENV}Body") if root.find(f"{_ENV}Body") is not None else [])
    if len(children) != 1 or children[0].tag != f"{{{PROTOCOL_NS}}}LogoutRequest":
        raise SamlRequestError("malformed", "The SOAP body must hold exactly one samlp:LogoutRequest.")
    # Serializing the element alone keeps every namespace it uses; exclusive c14n keeps the
    # signature valid outside the envelope.
    return etree.tostring(children[0])


def soap_envelope(xml: bytes) -> bytes:
    envelope = etree.Element(f"{_ENV}Envelope", nsmap={"SOAP-ENV": SOAP_ENV_NS})
    body = etree.SubElement(envelope, f"{_ENV}Body")
    body.append(etree.fromstring(xml))
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


def parse_soap_logout_request(connector: Connector, key: LoadedKey, body: bytes, max_bytes: int) -> LogoutRequestInfo:
    """Decode and verify; a back-channel request that is not signed is refused."""
    xml = logout_request_from_envelope(body, max_bytes)
    incoming = IncomingMessage(binding=BINDING_POST, message=base64.b64encode(xml).decode())
    info = parse_logout_request(connector, key, incoming, expected_destination=idp_urls.backchannel_slo_url(connector))
    if not info.signed:
        raise SamlRequestError(
            "unsigned_request",
            "A SOAP LogoutRequest must be signed with the app's signing certificate (set it on the connector).",
        )
    return dataclasses.replace(info, binding=BINDING_SOAP)


def user_for_name_id(connector: Connector, name_id: str) -> User | None:
    """The person a NameID of this connector stands for (none for transient NameIDs)."""
    sso = connector.sso
    if sso.nameid_format == "transient" or not name_id:
        return None
    users = User.objects.all()
    prop = "id" if sso.nameid_format == "persistent" else sso.nameid_property
    if prop == "id":
        try:
            return users.filter(pk=name_id).first()
        except (ValueError, TypeError):
            return None
    if prop == "email":
        return users.filter(email__iexact=name_id).first()
    if prop == "username":
        return users.filter(username__iexact=name_id).first()
    return users.filter(employee_id=name_id).first() if name_id else None


def slo_backchannel(*, connector: Connector, key: LoadedKey, info: LogoutRequestInfo) -> bytes:
    """End the portal sessions the request names; the LogoutResponse in its SOAP envelope."""
    # Imported here: pysaml2 sits behind server.py.
    from apps.saml_idp.server import logout_response_xml

    user = user_for_name_id(connector, info.name_id)
    ended = 0
    if user is not None:
        wanted = set(info.session_indexes)
        ended = end_sessions(
            user=user,
            actor_label=f"saml_sp:{connector.slug}",
            matching=lambda session_key: not wanted or session_index(session_key) in wanted,
        )
    with transaction.atomic():
        audit_record(
            actor=user,
            action="saml.slo",
            target=connector,
            after={
                "request_id": info.id,
                "sp_entity_id": info.issuer,
                "binding": BINDING_SOAP,
                "signed": info.signed,
                "name_id_matches": user is not None,
                "sessions_ended": ended,
            },
        )
    xml = logout_response_xml(
        connector,
        key,
        in_response_to=info.id,
        destination="",
        sign=False,
        status=STATUS_SUCCESS if user is not None else STATUS_UNKNOWN_PRINCIPAL,
    )
    return soap_envelope(xml)
