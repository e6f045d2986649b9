"""XML signatures in-process with the python `xmlsec` binding (encryption: `encryption.py`).

pysaml2's default backend runs the `xmlsec1` program twice per signature (about 60 ms each);
the same work through libxmlsec1 in-process costs about the RSA operation itself. Everything here
takes lxml elements or bytes: no temporary files, no subprocesses.
"""

import base64

import xmlsec
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree

from apps.saml_idp.constants import (
    ACCEPTED_DIGEST_ALGORITHMS,
    ACCEPTED_SIGNATURE_ALGORITHMS,
    ASSERTION_NS,
    DS_NS,
    EXC_C14N,
)

_SIGN_TRANSFORMS = {
    "rsa-sha256": (xmlsec.constants.TransformRsaSha256, xmlsec.constants.TransformSha256),
    "rsa-sha384": (xmlsec.constants.TransformRsaSha384, xmlsec.constants.TransformSha384),
    "rsa-sha512": (xmlsec.constants.TransformRsaSha512, xmlsec.constants.TransformSha512),
    "rsa-sha1": (xmlsec.constants.TransformRsaSha1, xmlsec.constants.TransformSha1),
}
_DIGEST_TRANSFORMS = {
    "sha256": xmlsec.constants.TransformSha256,
    "sha384": xmlsec.constants.TransformSha384,
    "sha512": xmlsec.constants.TransformSha512,
    "sha1": xmlsec.constants.TransformSha1,
}
_REDIRECT_HASHES = {
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": hashes.SHA256,
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": hashes.SHA384,
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": hashes.SHA512,
}
_ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
_ALLOWED_REFERENCE_TRANSFORMS = {_ENVELOPED, EXC_C14N, EXC_C14N + "WithComments"}
_DS = f"{{{DS_NS}}}"


class XmlSignatureError(ValueError):
    """A signature is missing, malformed, uses a refused algorithm, or does not verify."""


def load_private_key(private_key_pem: str) -> xmlsec.Key:
    return xmlsec.Key.from_memory(private_key_pem.encode(), xmlsec.constants.KeyDataFormatPem)


def certificate_key(certificate_pem: str) -> xmlsec.Key:
    return xmlsec.Key.from_memory(certificate_pem.encode(), xmlsec.constants.KeyDataFormatCertPem)


def _key_info(certificate_b64: str) -> etree._Element:
    key_info = etree.Element(f"{_DS}KeyInfo")
    data = etree.SubElement(key_info, f"{_DS}X509Data")
    etree.SubElement(data, f"{_DS}X509Certificate").text = certificate_b64
    return key_info


def sign_element(
    node: etree._Element, key: xmlsec.Key, certificate_b64: str, algorithm: str = "rsa-sha256", digest: str = ""
) -> None:
    """Add an enveloped signature to `node` (which has an ID and a saml:Issuer), in place.

    The signature goes right after the Issuer, where the SAML schema wants it; exclusive
    canonicalization, one reference to the node's own ID. `digest` (sha256, sha512...) defaults to
    the signature's own hash.
    """
    sign_transform, digest_transform = _SIGN_TRANSFORMS[algorithm]
    if digest:
        digest_transform = _DIGEST_TRANSFORMS[digest]
    signature = xmlsec.template.create(node, xmlsec.constants.TransformExclC14N, sign_transform, ns="ds")
    issuer = node.find(f"{{{ASSERTION_NS}}}Issuer")
    if issuer is not None:
        issuer.addnext(signature)
    else:
        node.insert(0, signature)
    reference = xmlsec.template.add_reference(signature, digest_transform, uri="#" + node.get("ID"))
    xmlsec.template.add_transform(reference, xmlsec.constants.TransformEnveloped)
    xmlsec.template.add_transform(reference, xmlsec.constants.TransformExclC14N)
    context = xmlsec.SignatureContext()
    context.key = key
    context.register_id(node, "ID")
    context.sign(signature)
    # KeyInfo is outside SignedInfo: adding it after signing spares xmlsec a key-data write.
    signature.append(_key_info(certificate_b64))


def sign_bytes(data: bytes, key: xmlsec.Key, algorithm: str = "rsa-sha256") -> bytes:
    """A raw signature, as the Redirect binding carries it in the query string."""
    context = xmlsec.SignatureContext()
    context.key = key
    return context.sign_binary(data, _SIGN_TRANSFORMS[algorithm][0])


def _check_signature_shape(node: etree._Element, signature: etree._Element) -> None:
    """The XML-DSig profile of SAML core 5.4 and the portal's algorithm policy."""
    signed_info = signature.find(f"{_DS}SignedInfo")
    if signed_info is None:
        raise XmlSignatureError("The signature has no SignedInfo.")
    c14n = signed_info.find(f"{_DS}CanonicalizationMethod")
    if c14n is None or c14n.get("Algorithm") not in (EXC_C14N, EXC_C14N + "WithComments"):
        raise XmlSignatureError("The signature must use exclusive canonicalization.")
    method = signed_info.find(f"{_DS}SignatureMethod")
    if method is None or method.get("Algorithm") not in ACCEPTED_SIGNATURE_ALGORITHMS:
        raise XmlSignatureError(
            f"Signature algorithm {method.get('Algorithm') if method is not None else None} is refused: "
            "sign with RSA-SHA256 or stronger."
        )
    references = signed_info.findall(f"{_DS}Reference")
    if len(references) != 1:
        raise XmlSignatureError("The signature must have exactly one Reference.")
    reference = references[0]
    node_id = node.get("ID")
    if not node_id or reference.get("URI") != "#" + node_id:
        raise XmlSignatureError("The signature does not reference the signed element's own ID.")
    digest = reference.find(f"{_DS}DigestMethod")
    if digest is None or digest.get("Algorithm") not in ACCEPTED_DIGEST_ALGORITHMS:
        raise XmlSignatureError("Digest algorithm refused: use SHA-256 or stronger.")
    transforms = [t.get("Algorithm") for t in reference.iterfind(f"{_DS}Transforms/{_DS}Transform")]
    if not transforms or len(transforms) > 2 or _ENVELOPED not in transforms:
        raise XmlSignatureError("The signature must be enveloped.")
    if any(t not in _ALLOWED_REFERENCE_TRANSFORMS for t in transforms):
        raise XmlSignatureError("The signature uses a transform that SAML does not allow.")
    if signature.find(f"{_DS}Object") is not None:
        raise XmlSignatureError("The signature carries a ds:Object, which SAML does not allow.")


def verify_element(node: etree._Element, certificate_pem: str) -> None:
    """Verify the enveloped signature that is a direct child of `node`; raises XmlSignatureError.

    Only a signature on the element itself counts (no signature wrapping): it must reference the
    element's ID, and that ID must occur once in the document.
    """
    signatures = node.findall(f"{_DS}Signature")
    if not signatures:
        raise XmlSignatureError("The message is not signed.")
    if len(signatures) > 1:
        raise XmlSignatureError("The message carries more than one signature.")
    signature = signatures[0]
    _check_signature_shape(node, signature)
    node_id = node.get("ID")
    if len(node.getroottree().getroot().xpath("//*[@ID=$id]", id=node_id)) != 1:
        raise XmlSignatureError("The signed ID occurs more than once in the document.")
    context = xmlsec.SignatureContext()
    context.key = certificate_key(certificate_pem)
    context.register_id(node, "ID")
    # Enabling transforms makes xmlsec refuse every other one (SignedInfo c14n counts as one).
    for transform in (
        xmlsec.constants.TransformExclC14N,
        xmlsec.constants.TransformExclC14NWithComments,
        xmlsec.constants.TransformRsaSha256,
        xmlsec.constants.TransformRsaSha384,
        xmlsec.constants.TransformRsaSha512,
    ):
        context.enable_signature_transform(transform)
    for transform in (
        xmlsec.constants.TransformEnveloped,
        xmlsec.constants.TransformExclC14N,
        xmlsec.constants.TransformExclC14NWithComments,
        xmlsec.constants.TransformSha256,
        xmlsec.constants.TransformSha384,
        xmlsec.constants.TransformSha512,
    ):
        context.enable_reference_transform(transform)
    try:
        context.verify(signature)
    except xmlsec.Error as exc:
        raise XmlSignatureError("The signature does not verify with the SP's certificate.") from exc


def verify_redirect_signature(signed_octets: bytes, signature_b64: str, sig_alg: str, certificate_pem: str) -> None:
    """The HTTP-Redirect binding's detached signature over the raw query parameters."""
    hash_class = _REDIRECT_HASHES.get(sig_alg)
    if hash_class is None:
        raise XmlSignatureError(f"Signature algorithm {sig_alg!r} is refused: sign with RSA-SHA256 or stronger.")
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except ValueError as exc:
        raise XmlSignatureError("The Signature parameter is not base64.") from exc
    public_key = x509.load_pem_x509_certificate(certificate_pem.encode()).public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise XmlSignatureError("The SP's signing certificate does not hold an RSA key.")
    try:
        public_key.verify(signature, signed_octets, padding.PKCS1v15(), hash_class())
    except InvalidSignature as exc:
        raise XmlSignatureError("The signature does not verify with the SP's certificate.") from exc
