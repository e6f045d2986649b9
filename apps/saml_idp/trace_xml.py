"""The XML the SAML tracer keeps and shows: indented for people, and never usable as a credential.

A Response the portal signed is a bearer credential for as long as the app accepts it: whoever
holds its bytes, or can rebuild them from an indented copy, signs in as the user. Removing the
signature values and digests leaves every fact the tracer reports (what was signed, with which
algorithm, the certificate) and nothing that verifies. An encrypted assertion is signed inside its
ciphertext and would verify again once wrapped in a new Response, so ciphertext goes too.
"""

import copy

from lxml import etree

from apps.saml_idp.constants import DS_NS

XENC_NS = "http://www.w3.org/2001/04/xmlenc#"

# Each removed element leaves a comment in its place, so that the XML shows where it was.
_REMOVED = {
    f"{{{DS_NS}}}SignatureValue": " signature value removed before storage ",
    f"{{{DS_NS}}}DigestValue": " digest value removed before storage ",
    f"{{{XENC_NS}}}CipherValue": " ciphertext removed before storage ",
}


def pretty_xml(root: etree._Element) -> str:
    """Indented XML for people. Display only: re-indenting a signed document breaks its signature."""
    shown = copy.deepcopy(root)
    etree.indent(shown, space="  ")
    return etree.tostring(shown, encoding="unicode")


def without_credentials(root: etree._Element) -> etree._Element:
    """A copy of `root` whose signature values, digests and ciphertexts are replaced by comments."""
    kept = copy.deepcopy(root)
    for element in list(kept.iter(*_REMOVED)):
        placeholder = etree.Comment(_REMOVED[element.tag])
        placeholder.tail = element.tail
        element.getparent().replace(element, placeholder)
    return kept


def stored_xml(root: etree._Element) -> str:
    """What the tracer stores of a message: indented, without signature values, digests or ciphertext."""
    return pretty_xml(without_credentials(root))
