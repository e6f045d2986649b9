"""Parsing XML that arrives from outside: no DTDs, no entities, no network, bounded size."""

from lxml import etree

MAX_XML_BYTES = 1024 * 1024


class UnsafeXMLError(ValueError):
    """The document is malformed, too large, or carries a DTD or entity declarations."""


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=False,
        remove_pis=True,
    )


def parse_untrusted_xml(data: bytes | str, *, max_bytes: int = MAX_XML_BYTES) -> etree._Element:
    """Parse `data` refusing any DOCTYPE (internal or external) before anything else looks at it."""
    if isinstance(data, str):
        data = data.encode()
    if len(data) > max_bytes:
        raise UnsafeXMLError(f"The document is larger than {max_bytes // 1024} KB.")
    if b"<!DOCTYPE" in data.upper() or b"<!ENTITY" in data.upper():
        raise UnsafeXMLError("Documents with a DTD or entity declarations are not accepted.")
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise UnsafeXMLError(f"The document is not well-formed XML: {exc.msg}") from exc
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise UnsafeXMLError("Documents with a DTD or entity declarations are not accepted.")
    return root
