"""`signing.sign_element` (lxml + hashlib + cryptography) makes exactly the signature libxmlsec1
makes from its own template, byte for byte, for every algorithm and digest a connector can choose."""

import pytest
import xmlsec
from lxml import etree

from apps.saml_idp.constants import ASSERTION_NS, DS_NS, PROTOCOL_NS
from apps.saml_idp.keys import LoadedKey, generate_key_pair
from apps.saml_idp.signing import XmlSignatureError, sign_element, verify_element

_P, _A, _DS = f"{{{PROTOCOL_NS}}}", f"{{{ASSERTION_NS}}}", f"{{{DS_NS}}}"
_LIBXMLSEC_TRANSFORMS = {
    "rsa-sha256": (xmlsec.constants.TransformRsaSha256, xmlsec.constants.TransformSha256),
    "rsa-sha384": (xmlsec.constants.TransformRsaSha384, xmlsec.constants.TransformSha384),
    "rsa-sha512": (xmlsec.constants.TransformRsaSha512, xmlsec.constants.TransformSha512),
    "rsa-sha1": (xmlsec.constants.TransformRsaSha1, xmlsec.constants.TransformSha1),
}
_LIBXMLSEC_DIGESTS = {name.removeprefix("rsa-"): pair[1] for name, pair in _LIBXMLSEC_TRANSFORMS.items()}


def _libxmlsec_sign(node: etree._Element, key: LoadedKey, algorithm: str, digest: str) -> None:
    """How sign_element signed before: libxmlsec1's template and SignatureContext.sign."""
    sign_transform, digest_transform = _LIBXMLSEC_TRANSFORMS[algorithm]
    if digest:
        digest_transform = _LIBXMLSEC_DIGESTS[digest]
    signature = xmlsec.template.create(node, xmlsec.constants.TransformExclC14N, sign_transform, ns="ds")
    issuer = node.find(f"{_A}Issuer")
    if issuer is not None:
        issuer.addnext(signature)
    else:
        node.insert(0, signature)
    reference = xmlsec.template.add_reference(signature, digest_transform, uri="#" + node.get("ID"))
    xmlsec.template.add_transform(reference, xmlsec.constants.TransformEnveloped)
    xmlsec.template.add_transform(reference, xmlsec.constants.TransformExclC14N)
    context = xmlsec.SignatureContext()
    context.key = key.key
    context.register_id(node, "ID")
    context.sign(signature)
    key_info = etree.SubElement(signature, f"{_DS}KeyInfo")
    etree.SubElement(etree.SubElement(key_info, f"{_DS}X509Data"), f"{_DS}X509Certificate").text = key.certificate_b64


def _response() -> tuple[etree._Element, etree._Element]:
    response = etree.Element(f"{_P}Response", nsmap={"samlp": PROTOCOL_NS}, ID="_r1", Version="2.0")
    etree.SubElement(response, f"{_A}Issuer", nsmap={"saml": ASSERTION_NS}).text = "https://idp.example/x"
    etree.SubElement(etree.SubElement(response, f"{_P}Status"), f"{_P}StatusCode", Value="urn:x")
    assertion = etree.SubElement(response, f"{_A}Assertion", nsmap={"saml": ASSERTION_NS}, ID="_a1", Version="2.0")
    etree.SubElement(assertion, f"{_A}Issuer").text = "https://idp.example/x"
    statement = etree.SubElement(assertion, f"{_A}AttributeStatement")
    for index in range(3):
        attribute = etree.SubElement(statement, f"{_A}Attribute", Name=f"name{index}")
        # Characters that canonicalization escapes or normalizes.
        etree.SubElement(attribute, f"{_A}AttributeValue").text = "a<b>&c\"d'\r\n\té]]>-->"
    return response, assertion


def _logout_response() -> etree._Element:
    root = etree.Element(f"{_P}LogoutResponse", nsmap={"samlp": PROTOCOL_NS}, ID="_l1", Version="2.0")
    etree.SubElement(root, f"{_P}Status")
    return root


def _signed(sign, key: LoadedKey, algorithm: str, digest: str) -> tuple[bytes, bytes]:
    response, assertion = _response()
    sign(assertion, key, algorithm, digest)
    sign(response, key, algorithm, digest)
    logout = _logout_response()
    sign(logout, key, algorithm, digest)
    return etree.tostring(response, xml_declaration=True, encoding="UTF-8"), etree.tostring(logout)


@pytest.fixture(scope="module", params=[2048, 3072])
def key(request) -> LoadedKey:
    pair = generate_key_pair(key_size=request.param, validity_days=30, common_name="sign-element test")
    return LoadedKey.from_pem(None, pair.private_key_pem, pair.certificate_pem)


@pytest.mark.parametrize("algorithm", list(_LIBXMLSEC_TRANSFORMS))
@pytest.mark.parametrize("digest", ["", "sha256", "sha384", "sha512", "sha1"])
def test_the_same_bytes_as_libxmlsec1(key, algorithm, digest):
    ours = _signed(
        lambda node, k, a, d: sign_element(node, k.private_key, k.certificate_b64, a, d), key, algorithm, digest
    )
    assert ours == _signed(_libxmlsec_sign, key, algorithm, digest)


def test_libxmlsec1_verifies_both_signatures(key):
    xml, _ = _signed(
        lambda node, k, a, d: sign_element(node, k.private_key, k.certificate_b64, a, d), key, "rsa-sha256", ""
    )
    response = etree.fromstring(xml)
    verify_element(response, key.certificate_pem)
    verify_element(response.find(f"{_A}Assertion"), key.certificate_pem)
    response.find(f"{_A}Assertion/{_A}AttributeStatement/{_A}Attribute").set("Name", "changed")
    with pytest.raises(XmlSignatureError):
        verify_element(response, key.certificate_pem)
