"""Reading an SP's SAML metadata into connector SSO settings (pure: bytes in, dataclass out)."""

from dataclasses import dataclass, field

from apps.common.pki import CertificateError, normalize_certificate_pem
from apps.common.xml import UnsafeXMLError, parse_untrusted_xml

MD_NS = "urn:oasis:names:tc:SAML:2.0:metadata"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
BINDING_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
BINDING_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
NAMEID_FORMATS = {
    "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress": "email",
    "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent": "persistent",
    "urn:oasis:names:tc:SAML:2.0:nameid-format:transient": "transient",
    "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified": "unspecified",
}
MAX_METADATA_BYTES = 512 * 1024


class MetadataError(ValueError):
    pass


def _xml_true(value: str | None) -> bool:
    """xs:boolean: "true" or "1"."""
    return (value or "").strip().lower() in {"true", "1"}


@dataclass
class SpMetadata:
    entity_id: str
    acs_urls: list[dict] = field(default_factory=list)
    slo_url: str = ""
    slo_binding: str = ""
    signing_cert: str = ""
    encryption_cert: str = ""
    nameid_format: str = ""
    authn_requests_signed: bool = False
    want_assertions_signed: bool = False


def _q(tag: str) -> str:
    return f"{{{MD_NS}}}{tag}"


def parse_sp_metadata(data: bytes | str) -> SpMetadata:
    try:
        root = parse_untrusted_xml(data, max_bytes=MAX_METADATA_BYTES)
    except UnsafeXMLError as exc:
        raise MetadataError(str(exc)) from exc
    if root.tag == _q("EntitiesDescriptor"):
        descriptors = root.findall(_q("EntityDescriptor"))
        if len(descriptors) != 1:
            raise MetadataError("The metadata describes several entities; import the one for this app.")
        root = descriptors[0]
    if root.tag != _q("EntityDescriptor"):
        raise MetadataError("This is not SAML 2.0 metadata (no EntityDescriptor).")
    entity_id = (root.get("entityID") or "").strip()
    if not entity_id:
        raise MetadataError("The EntityDescriptor has no entityID.")
    sp = root.find(_q("SPSSODescriptor"))
    if sp is None:
        raise MetadataError("The metadata has no SPSSODescriptor: is this an IdP's metadata?")

    result = SpMetadata(
        entity_id=entity_id,
        authn_requests_signed=_xml_true(sp.get("AuthnRequestsSigned")),
        want_assertions_signed=_xml_true(sp.get("WantAssertionsSigned")),
    )
    acs = []
    for position, element in enumerate(sp.findall(_q("AssertionConsumerService"))):
        binding = element.get("Binding", "")
        location = (element.get("Location") or "").strip()
        if binding != BINDING_POST or not location:
            continue  # only HTTP-POST delivers a Response from this IdP
        try:
            index = int(element.get("index", position))
        except ValueError as exc:
            raise MetadataError(f"AssertionConsumerService index {element.get('index')!r} is not a number.") from exc
        acs.append(
            {"url": location, "binding": binding, "index": index, "default": _xml_true(element.get("isDefault"))}
        )
    if not acs:
        raise MetadataError("The metadata has no HTTP-POST AssertionConsumerService.")
    # The default ACS (isDefault="true", else the lowest index) goes first.
    acs.sort(key=lambda item: (not item["default"], item["index"]))
    result.acs_urls = [{"url": item["url"], "binding": item["binding"], "index": item["index"]} for item in acs]

    for element in sp.findall(_q("SingleLogoutService")):
        if element.get("Binding") in (BINDING_REDIRECT, BINDING_POST) and element.get("Location"):
            result.slo_url = element.get("Location").strip()
            result.slo_binding = element.get("Binding")
            break

    for key in sp.findall(_q("KeyDescriptor")):
        certificate = key.find(f".//{{{DS_NS}}}X509Certificate")
        if certificate is None or not (certificate.text or "").strip():
            continue
        try:
            pem = normalize_certificate_pem(certificate.text)
        except CertificateError as exc:
            raise MetadataError(f"A KeyDescriptor holds an invalid certificate: {exc}") from exc
        use = key.get("use", "")
        if use in ("", "signing") and not result.signing_cert:
            result.signing_cert = pem
        # Encryption is switched on by an encryption certificate, so only an explicit one counts.
        if use == "encryption" and not result.encryption_cert:
            result.encryption_cert = pem

    for element in sp.findall(_q("NameIDFormat")):
        fmt = NAMEID_FORMATS.get((element.text or "").strip())
        if fmt:
            result.nameid_format = fmt
            break
    return result
