"""HTTP <-> SAML at the edge: the Redirect and POST bindings, both ways.

Decoding is bounded before anything parses: base64 of a known size, and inflating stops as soon
as the output passes the limit (a deflate bomb costs us at most the limit, never its full size).
"""

import base64
import binascii
import html
import zlib
from urllib.parse import quote_plus, unquote_plus

from django.conf import settings

from apps.saml_idp.constants import SIGNATURE_ALGORITHMS
from apps.saml_idp.errors import SamlRequestError
from apps.saml_idp.keys import LoadedKey
from apps.saml_idp.signing import sign_bytes

# A deflated message cannot be much larger than the limit of the inflated one.
_ENCODED_FACTOR = 2


def _max_bytes() -> int:
    return settings.SAML_IDP_MAX_MESSAGE_BYTES


def _b64decode(value: str) -> bytes:
    if len(value) > _max_bytes() * _ENCODED_FACTOR:
        raise SamlRequestError("too_large", f"The SAML message is larger than {_max_bytes() // 1024} KB.")
    try:
        # Some SPs wrap base64 at 76 columns; whitespace is not part of the data.
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SamlRequestError("malformed", "The SAML message is not valid base64.") from exc


def inflate_limited(data: bytes, limit: int) -> bytes:
    """Raw DEFLATE (RFC 1951) decompression that stops past `limit` bytes of output."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        output = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise SamlRequestError(
            "malformed", "The SAML message is not DEFLATE-compressed as the binding requires."
        ) from exc
    if len(output) > limit or inflater.unconsumed_tail:
        raise SamlRequestError(
            "too_large", f"The SAML message inflates past {limit // 1024} KB; refused without inflating the rest."
        )
    return output


def decode_redirect_message(value: str) -> bytes:
    """SAMLRequest/SAMLResponse of the HTTP-Redirect binding: base64 of raw DEFLATE."""
    return inflate_limited(_b64decode(value), _max_bytes())


def decode_post_message(value: str) -> bytes:
    """SAMLRequest/SAMLResponse of the HTTP-POST binding: plain base64, never inflated."""
    data = _b64decode(value)
    if len(data) > _max_bytes():
        raise SamlRequestError("too_large", f"The SAML message is larger than {_max_bytes() // 1024} KB.")
    return data


def raw_query_parameters(query_string: str) -> dict[str, str]:
    """Query parameters exactly as encoded on the wire (a Redirect signature covers those bytes).

    A parameter given twice is refused: which copy was signed and which is used could differ.
    """
    parameters: dict[str, str] = {}
    for part in query_string.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        name = unquote_plus(name)
        if name in parameters:
            raise SamlRequestError("malformed", f"The query parameter {name} is given more than once.")
        parameters[name] = value
    return parameters


def redirect_signed_octets(raw: dict[str, str], message_parameter: str) -> bytes:
    """SAML bindings 3.4.4.1: `SAMLRequest=...&RelayState=...&SigAlg=...`, values as received."""
    parts = [f"{message_parameter}={raw[message_parameter]}"]
    if "RelayState" in raw:
        parts.append(f"RelayState={raw['RelayState']}")
    parts.append(f"SigAlg={raw['SigAlg']}")
    return "&".join(parts).encode("ascii", errors="replace")


def redirect_url(
    url: str,
    *,
    parameter: str,
    xml: bytes,
    relay_state: str = "",
    key: LoadedKey | None = None,
    algorithm: str = "rsa-sha256",
) -> str:
    """A Redirect-binding URL carrying `xml`, signed over the query string when `key` is given."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    encoded = base64.b64encode(deflater.compress(xml) + deflater.flush()).decode()
    query = f"{parameter}={quote_plus(encoded)}"
    if relay_state:
        query += f"&RelayState={quote_plus(relay_state)}"
    if key is not None:
        query += f"&SigAlg={quote_plus(SIGNATURE_ALGORITHMS[algorithm])}"
        signature = base64.b64encode(sign_bytes(query.encode(), key.key, algorithm)).decode()
        query += f"&Signature={quote_plus(signature)}"
    return f"{url}{'&' if '?' in url else '?'}{query}"


_POST_FORM = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="referrer" content="no-referrer">
<title>Signing you in…</title></head>
<body onload="document.forms[0].submit()">
<noscript><p>JavaScript is off: press Continue to go on to the app.</p></noscript>
<form method="post" action="{action}">
{fields}
<noscript><button type="submit">Continue</button></noscript>
</form>
</body></html>
"""


def auto_post_form(action: str, fields: dict[str, str]) -> str:
    """The HTTP-POST binding: a page whose form posts itself to the SP. Every value is escaped."""
    hidden = "\n".join(
        f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">'
        for name, value in fields.items()
        if value
    )
    return _POST_FORM.format(action=html.escape(action), fields=hidden)


def encode_post_message(xml: bytes) -> str:
    return base64.b64encode(xml).decode()
