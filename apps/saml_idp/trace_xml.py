"""The XML the SAML tracer reads, keeps and shows: the facts it names, indented for people, and
never usable as a credential.

A Response the portal signed is a bearer credential for as long as the app accepts it: whoever
holds its bytes, or can rebuild them from an indented copy, signs in as the user. Removing the
signature values and digests leaves every fact the tracer reports (what was signed, with which
algorithm, the certificate) and nothing that verifies. An encrypted assertion is signed inside its
ciphertext and would verify again once wrapped in a new Response, so ciphertext goes too.
"""

import copy
import datetime

from django.utils.dateparse import parse_datetime
from lxml import etree

from apps.saml_idp.constants import (
    ASSERTION_NS,
    DIGEST_ALGORITHMS,
    DS_NS,
    NAMEID_FORMATS,
    PROTOCOL_NS,
    SIGNATURE_ALGORITHMS,
)

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


# --- Reading ---------------------------------------------------------------------------------------

SAMLP = f"{{{PROTOCOL_NS}}}"
SAML = f"{{{ASSERTION_NS}}}"
DS = f"{{{DS_NS}}}"
ALGORITHM_NAMES = {uri: name.upper() for name, uri in SIGNATURE_ALGORITHMS.items()}
DIGEST_NAMES = {uri: name.removeprefix("rsa-").upper() for name, uri in DIGEST_ALGORITHMS.items()}
SHA1_URIS = {SIGNATURE_ALGORITHMS["rsa-sha1"], DIGEST_ALGORITHMS["rsa-sha1"]}
UNSPECIFIED_FORMATS = {NAMEID_FORMATS["unspecified"], ""}


def element_text(element: etree._Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""


def parse_instant(value: str | None) -> datetime.datetime | None:
    try:
        parsed = parse_datetime(value or "")
    except ValueError:
        return None
    return parsed if parsed is not None and parsed.tzinfo is not None else None


def signature_algorithms(signature: etree._Element | None) -> tuple[str, list[str]]:
    """(signature method URI, digest method URIs) of an enveloped ds:Signature."""
    if signature is None:
        return "", []
    method = signature.find(f"{DS}SignedInfo/{DS}SignatureMethod")
    digests = signature.findall(f"{DS}SignedInfo/{DS}Reference/{DS}DigestMethod")
    return (method.get("Algorithm") or "") if method is not None else "", [d.get("Algorithm") or "" for d in digests]


def algorithm_label(uri: str) -> str:
    return ALGORITHM_NAMES.get(uri, uri or "none")
