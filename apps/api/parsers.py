from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer


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


class CSVParser(BaseParser):
    """Hands a CSV body (a users import) to the view as bytes, unparsed."""

    media_type = "text/csv"

    def parse(self, stream, media_type=None, parser_context=None) -> bytes:
        return stream.read()


class CSVRenderer(BaseRenderer):
    """Lets a client ask for text/csv; the view answers with the CSV it streams itself."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data if isinstance(data, bytes | str) else str(data)
