from rest_framework.parsers import BaseParser


class RawXMLParser(BaseParser):
    """Hands XML bodies (SAML metadata uploads) to the view as bytes, unparsed."""

    media_type = "application/xml"
    media_types = ("application/xml", "text/xml", "application/samlmetadata+xml")

    def parse(self, stream, media_type=None, parser_context=None) -> bytes:
        return stream.read()


class TextXMLParser(RawXMLParser):
    media_type = "text/xml"


class SamlMetadataParser(RawXMLParser):
    media_type = "application/samlmetadata+xml"
