"""XML signatures in-process with the python `xmlsec` binding (encryption: `encryption.py`).

pysaml2's default backend runs the `xmlsec1` program twice per signature (about 60 ms each);
the same work through libxmlsec1 in-process costs about the RSA operation itself. Everything here
takes lxml elements or bytes: no temporary files, no subprocesses.

Signing an element (`sign_element`, every SSO response twice) is done here without libxmlsec1:
lxml's exclusive canonicalization, hashlib and one RSA signature from `cryptography`. libxmlsec1
spends about 0.13 ms per signature on top of the RSA operation (templates, ID registration, its
transform chain, and an older OpenSSL than cryptography's), a quarter of the response's signing cost.
The signature is byte for byte the one libxmlsec1 makes from the same template (tests compare
both); verifying stays with libxmlsec1.
"""

import base64
import hashlib

import xmlsec
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree

from apps.saml_idp.constants import (
    ACCEPTED_DIGEST_ALGORITHMS,
    ACCEPTED_SIGNATURE_ALGORITHMS,
    ASSERTION_NS,
    DIGEST_ALGORITHMS,
    DS_NS,
    EXC_C14N,
    SIGNATURE_ALGORITHMS,
)

# Raw signatures of the Redirect binding (`sign_bytes`).
_SIGN_TRANSFORMS = {
    "rsa-sha256": xmlsec.constants.TransformRsaSha256,
    "rsa-sha384": xmlsec.constants.TransformRsaSha384,
    "rsa-sha512": xmlsec.constants.TransformRsaSha512,
    "rsa-sha1": xmlsec.constants.TransformRsaSha1,
}
_REDIRECT_HASHES = {
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": hashes.SHA256,
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": hashes.SHA384,
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": hashes.SHA512,
}
# Signature algorithm name -> its hash (of SignedInfo, and the default digest of the reference).
_SIGN_HASHES = {
    "rsa-sha256": hashes.SHA256,
    "rsa-sha384": hashes.SHA384,
    "rsa-sha512": hashes.SHA512,
    "rsa-sha1": hashes.SHA1,
}
# Digest name -> (hashlib name, DigestMethod URI).
_DIGESTS = {
    "sha256": ("sha256", DIGEST_ALGORITHMS["rsa-sha256"]),
    "sha384": ("sha384", DIGEST_ALGORITHMS["rsa-sha384"]),
    "sha512": ("sha512", DIGEST_ALGORITHMS["rsa-sha512"]),
    "sha1": ("sha1", DIGEST_ALGORITHMS["rsa-sha1"]),
}
_ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
_ALLOWED_REFERENCE_TRANSFORMS = {_ENVELOPED, EXC_C14N, EXC_C14N + "WithComments"}
_DS = f"{{{DS_NS}}}"


class XmlSignatureError(ValueError):
    """A signature is missing, malformed, uses a refused algorithm, or does not verify."""


def load_private_key(private_key_pem: str) -> xmlsec.Key:
    return xmlsec.Key.from_memory(private_key_pem.encode(), xmlsec.constants.KeyDataFormatPem)


def load_rsa_private_key(private_key_pem: str) -> rsa.RSAPrivateKey:
    """The key `sign_element` signs with (the portal's keys are RSA; anything else is refused here)."""
    private_key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise ValueError("SAML signing keys must be RSA keys.")
    return private_key


def certificate_key(certificate_pem: str) -> xmlsec.Key:
    return xmlsec.Key.from_memory(certificate_pem.encode(), xmlsec.constants.KeyDataFormatCertPem)


def _key_info(certificate_b64: str) -> etree._Element:
    key_info = etree.Element(f"{_DS}KeyInfo")
    data = etree.SubElement(key_info, f"{_DS}X509Data")
    etree.SubElement(data, f"{_DS}X509Certificate").text = certificate_b64
    return key_info


def _exclusive_c14n(node: etree._Element) -> bytes:
    return etree.tostring(node, method="c14n", exclusive=True, with_comments=False)


def _wrapped_base64(data: bytes) -> str:
    # As libxmlsec1 writes a DigestValue or SignatureValue: lines of 64 characters.
    encoded = base64.b64encode(data).decode()
    return "\n".join(encoded[start : start + 64] for start in range(0, len(encoded), 64))


def _child(parent: etree._Element, name: str, tail: str | None = "\n", **attributes: str) -> etree._Element:
    element = etree.SubElement(parent, f"{_DS}{name}", attributes)
    element.tail = tail
    return element


def sign_element(
    node: etree._Element,
    private_key: rsa.RSAPrivateKey,
    certificate_b64: str,
    algorithm: str = "rsa-sha256",
    digest: str = "",
) -> None:
    """Add an enveloped signature to `node` (which has an ID and a saml:Issuer), in place.

    The signature goes right after the Issuer, where the SAML schema wants it; exclusive
    canonicalization, one reference to the node's own ID. `digest` (sha256, sha512...) defaults to
    the signature's own hash.

    The reference's digest is taken before the Signature is inserted, which is what the enveloped
    transform sees (it removes this Signature and nothing else). The layout, line breaks included,
    is libxmlsec1's template, so that SPs get the same bytes as before.
    """
    sign_hash = _SIGN_HASHES[algorithm]
    digest_name, digest_uri = _DIGESTS[digest or sign_hash.name]
    digest_value = _wrapped_base64(hashlib.new(digest_name, _exclusive_c14n(node)).digest())

    signature = etree.Element(f"{_DS}Signature", nsmap={"ds": DS_NS})
    signature.text = "\n"
    signed_info = _child(signature, "SignedInfo")
    signed_info.text = "\n"
    _child(signed_info, "CanonicalizationMethod", Algorithm=EXC_C14N)
    _child(signed_info, "SignatureMethod", Algorithm=SIGNATURE_ALGORITHMS[algorithm])
    reference = _child(signed_info, "Reference", URI="#" + node.get("ID"))
    reference.text = "\n"
    transforms = _child(reference, "Transforms")
    transforms.text = "\n"
    _child(transforms, "Transform", Algorithm=_ENVELOPED)
    _child(transforms, "Transform", Algorithm=EXC_C14N)
    _child(reference, "DigestMethod", Algorithm=digest_uri)
    _child(reference, "DigestValue").text = digest_value

    issuer = node.find(f"{{{ASSERTION_NS}}}Issuer")
    if issuer is not None:
        issuer.addnext(signature)
    else:
        node.insert(0, signature)
    # SignedInfo is canonicalized in place: its namespace context is the document's.
    value = private_key.sign(_exclusive_c14n(signed_info), padding.PKCS1v15(), sign_hash())
    _child(signature, "SignatureValue").text = _wrapped_base64(value)
    signature.append(_key_info(certificate_b64))


def sign_bytes(data: bytes, key: xmlsec.Key, algorithm: str = "rsa-sha256") -> bytes:
    """A raw signature, as the Redirect binding carries it in the query string."""
    context = xmlsec.SignatureContext()
    context.key = key
    return context.sign_binary(data, _SIGN_TRANSFORMS[algorithm])


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
