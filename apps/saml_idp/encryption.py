"""XML Encryption of assertions and NameIDs for an SP, in-process with libxmlsec1.

The template is written here with lxml rather than through `xmlsec.template`, which cannot name
XML Encryption 1.1's RSA-OAEP nor add its DigestMethod; libxmlsec1 then fills in the ciphertexts.
Which algorithms to use is decided in `algorithms.py` (negotiated from the SP's metadata).
"""

import xmlsec
from lxml import etree

from apps.connectors.saml_algorithms import DATA_ALGORITHMS, KEY_TRANSPORTS, SHA256_DIGEST
from apps.saml_idp.constants import ASSERTION_NS, DS_NS, XENC_NS

_XENC = f"{{{XENC_NS}}}"
_DS = f"{{{DS_NS}}}"
_A = f"{{{ASSERTION_NS}}}"
_KEY_BITS = {"aes128-gcm": 128, "aes256-gcm": 256, "aes128-cbc": 128, "aes256-cbc": 256}
_ELEMENT_TYPE = XENC_NS + "Element"


class EncryptionSettingsError(ValueError):
    """An algorithm name the portal does not know (a bad row, not bad input from an SP)."""


def _certificate_key(certificate_pem: str) -> xmlsec.Key:
    return xmlsec.Key.from_memory(certificate_pem.encode(), xmlsec.constants.KeyDataFormatCertPem)


def _template(data_algorithm: str, key_transport: str) -> etree._Element:
    try:
        data_uri, transport_uri = DATA_ALGORITHMS[data_algorithm], KEY_TRANSPORTS[key_transport]
    except KeyError as exc:
        raise EncryptionSettingsError(f"Unknown encryption algorithm {exc.args[0]!r}.") from exc
    encrypted_data = etree.Element(f"{_XENC}EncryptedData", nsmap={"xenc": XENC_NS}, Type=_ELEMENT_TYPE)
    etree.SubElement(encrypted_data, f"{_XENC}EncryptionMethod", Algorithm=data_uri)
    key_info = etree.SubElement(encrypted_data, f"{_DS}KeyInfo", nsmap={"ds": DS_NS})
    encrypted_key = etree.SubElement(key_info, f"{_XENC}EncryptedKey")
    method = etree.SubElement(encrypted_key, f"{_XENC}EncryptionMethod", Algorithm=transport_uri)
    if key_transport == "rsa-oaep-sha256":
        etree.SubElement(method, f"{_DS}DigestMethod", Algorithm=SHA256_DIGEST)
    etree.SubElement(etree.SubElement(encrypted_key, f"{_XENC}CipherData"), f"{_XENC}CipherValue")
    etree.SubElement(etree.SubElement(encrypted_data, f"{_XENC}CipherData"), f"{_XENC}CipherValue")
    return encrypted_data


def encrypt_element(
    node: etree._Element, certificate_pem: str, *, data_algorithm: str, key_transport: str
) -> etree._Element:
    """Replace `node` (which sits in its document) with xenc:EncryptedData; returns the EncryptedData.

    libxmlsec1 encrypts the node's own serialization, which lacks the namespace declarations it
    inherits (lxml drops a child's copy of a prefix its parent declares). SPs that parse the
    plaintext alone (lasso, pysaml2) then fail on an unbound `saml:` prefix; so a standalone copy,
    which declares everything it uses, is what gets encrypted.
    """
    manager = xmlsec.KeysManager()
    manager.add_key(_certificate_key(certificate_pem))
    template = _template(data_algorithm, key_transport)
    context = xmlsec.EncryptionContext(manager)
    context.key = xmlsec.Key.generate(
        xmlsec.constants.KeyDataAes, _KEY_BITS[data_algorithm], xmlsec.constants.KeyDataTypeSession
    )
    holder = etree.Element("holder")
    holder.append(etree.fromstring(etree.tostring(node)))
    encrypted = context.encrypt_xml(template, holder[0])
    node.getparent().replace(node, encrypted)
    return encrypted


def wrap_and_encrypt(
    node: etree._Element, wrapper_tag: str, certificate_pem: str, *, data_algorithm: str, key_transport: str
) -> etree._Element:
    """Put `node` into a new saml:`wrapper_tag` (EncryptedAssertion, EncryptedID) and encrypt it there."""
    wrapper = etree.Element(f"{_A}{wrapper_tag}", nsmap={"saml": ASSERTION_NS})
    node.addprevious(wrapper)
    wrapper.append(node)
    encrypt_element(node, certificate_pem, data_algorithm=data_algorithm, key_transport=key_transport)
    return wrapper


def decrypt_element(encrypted_data: etree._Element, private_key_pem: str) -> etree._Element:
    """The inverse (the tests' SP side, and the preview's self-check)."""
    manager = xmlsec.KeysManager()
    manager.add_key(xmlsec.Key.from_memory(private_key_pem.encode(), xmlsec.constants.KeyDataFormatPem))
    return xmlsec.EncryptionContext(manager).decrypt(encrypted_data)
