"""Reading an SP's SAML metadata into connector SSO settings (pure: bytes in, dataclass out)."""

from dataclasses import dataclass, field

from lxml import etree

from apps.common.pki import CertificateError, normalize_certificate_pem
from apps.common.xml import UnsafeXMLError, parse_untrusted_xml

MD_NS = "urn:oasis:names:tc:SAML:2.0:metadata"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
BINDING_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
BINDING_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
BINDING_SOAP = "urn:oasis:names:tc:SAML:2.0:bindings:SOAP"
# SAML v2.0 Metadata Profile for Algorithm Support (alg:SigningMethod, alg:DigestMethod).
ALG_NS = "urn:oasis:names:tc:SAML:metadata:algsupport"
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
    # Only SOAP listed for single logout: the portal cannot send its LogoutRequests there.
    slo_soap_url: str = ""
    # (Algorithm, ds:DigestMethod Algorithm or "") of each md:EncryptionMethod of the encryption key.
    encryption_methods: list[tuple[str, str]] = field(default_factory=list)
    signing_methods: list[str] = field(default_factory=list)
    digest_methods: list[str] = field(default_factory=list)

    def advertised_algorithms(self) -> dict[str, list]:
        return {
            "encryption": [list(method) for method in self.encryption_methods],
            "signing": self.signing_methods,
            "digest": self.digest_methods,
        }


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

    slo_endpoints = [
        (element.get("Binding"), (element.get("Location") or "").strip())
        for element in sp.findall(_q("SingleLogoutService"))
    ]
    # The browser carries the portal's LogoutRequests: Redirect first (no script needed), then POST.
    for wanted in (BINDING_REDIRECT, BINDING_POST):
        match = next((location for binding, location in slo_endpoints if binding == wanted and location), None)
        if match:
            result.slo_url, result.slo_binding = match, wanted
            break
    result.slo_soap_url = next(
        (location for binding, location in slo_endpoints if binding == BINDING_SOAP and location), ""
    )

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
        if use in ("", "encryption") and not result.encryption_methods:
            result.encryption_methods = _encryption_methods(key)
    _read_algorithm_support(root, sp, result)

    for element in sp.findall(_q("NameIDFormat")):
        fmt = NAMEID_FORMATS.get((element.text or "").strip())
        if fmt:
            result.nameid_format = fmt
            break
    return result


def _encryption_methods(key_descriptor: etree._Element) -> list[tuple[str, str]]:
    methods = []
    for method in key_descriptor.findall(_q("EncryptionMethod")):
        algorithm = (method.get("Algorithm") or "").strip()
        digest = method.find(f"{{{DS_NS}}}DigestMethod")
        if algorithm:
            methods.append((algorithm, (digest.get("Algorithm") or "").strip() if digest is not None else ""))
    return methods[:50]


def _read_algorithm_support(root: etree._Element, sp: etree._Element, result: SpMetadata) -> None:
    """alg:SigningMethod / alg:DigestMethod in the entity's or the SP role's md:Extensions."""
    for scope in (sp, root):
        extensions = scope.find(_q("Extensions"))
        if extensions is None:
            continue
        for tag, target in (("SigningMethod", result.signing_methods), ("DigestMethod", result.digest_methods)):
            for element in extensions.findall(f"{{{ALG_NS}}}{tag}"):
                algorithm = (element.get("Algorithm") or "").strip()
                if algorithm and algorithm not in target and len(target) < 50:
                    target.append(algorithm)
