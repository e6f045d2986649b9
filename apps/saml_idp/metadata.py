"""The portal's IdP metadata: per connector, and all connectors together.

A connector's metadata lists the key that signs its responses and, during a rotation, the next
key too, so that apps that refresh metadata trust the new certificate before it is used.
"""

from lxml import etree

from apps.common.pki import certificate_base64
from apps.connectors import idp_urls
from apps.connectors.models import Connector, ConnectorKind
from apps.saml_idp.backchannel import BINDING_SOAP
from apps.saml_idp.constants import BINDING_POST, BINDING_REDIRECT, DS_NS, METADATA_NS, NAMEID_FORMATS
from apps.saml_idp.keys import published_keys
from apps.saml_idp.models import SigningKey

CONTENT_TYPE = "application/samlmetadata+xml"
_MD = f"{{{METADATA_NS}}}"
_DS = f"{{{DS_NS}}}"
_NSMAP = {"md": METADATA_NS, "ds": DS_NS}


def _entity_descriptor(connector: Connector, keys: list[SigningKey]) -> etree._Element:
    sso = connector.sso
    entity = etree.Element(f"{_MD}EntityDescriptor", nsmap=_NSMAP, entityID=connector.idp_entity_id)
    descriptor = etree.SubElement(
        entity,
        f"{_MD}IDPSSODescriptor",
        protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol",
        WantAuthnRequestsSigned="true" if sso.require_signed_requests else "false",
    )
    for key in keys:
        key_descriptor = etree.SubElement(descriptor, f"{_MD}KeyDescriptor", use="signing")
        key_info = etree.SubElement(key_descriptor, f"{_DS}KeyInfo")
        # The key id lets an admin tell the active key from the next one in the XML.
        etree.SubElement(key_info, f"{_DS}KeyName").text = str(key.pk)
        data = etree.SubElement(key_info, f"{_DS}X509Data")
        etree.SubElement(data, f"{_DS}X509Certificate").text = certificate_base64(key.certificate_pem)
    for binding in (BINDING_REDIRECT, BINDING_POST):
        etree.SubElement(descriptor, f"{_MD}SingleLogoutService", Binding=binding, Location=idp_urls.slo_url(connector))
    # The back-channel (apps/saml_idp/backchannel.py): signed LogoutRequests from the app's server.
    etree.SubElement(
        descriptor, f"{_MD}SingleLogoutService", Binding=BINDING_SOAP, Location=idp_urls.backchannel_slo_url(connector)
    )
    etree.SubElement(descriptor, f"{_MD}NameIDFormat").text = NAMEID_FORMATS[sso.nameid_format]
    for binding in (BINDING_REDIRECT, BINDING_POST):
        etree.SubElement(descriptor, f"{_MD}SingleSignOnService", Binding=binding, Location=connector.sso_url)
    return entity


def connector_metadata(connector: Connector) -> tuple[bytes, list[SigningKey]]:
    """The connector's metadata document and the keys it publishes."""
    keys = published_keys(connector)
    xml = etree.tostring(_entity_descriptor(connector, keys), xml_declaration=True, encoding="UTF-8")
    return xml, keys


def sso_connectors() -> list[Connector]:
    return list(
        Connector.objects.select_related("sso")
        .filter(kind__in=[ConnectorKind.SAML, ConnectorKind.SAML_SCIM], sso__isnull=False)
        .order_by("slug")
    )


def portal_metadata(name: str) -> bytes | None:
    """Every SSO connector's EntityDescriptor in one EntitiesDescriptor; None when there are none."""
    connectors = sso_connectors()
    if not connectors:
        return None
    root = etree.Element(f"{_MD}EntitiesDescriptor", nsmap=_NSMAP, Name=name)
    for connector in connectors:
        root.append(_entity_descriptor(connector, published_keys(connector)))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
