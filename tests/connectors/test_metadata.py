"""Reading an SP's SAML metadata (pure: bytes in, SpMetadata out), and refusing what is unsafe or not SP metadata."""

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from apps.common.pki import certificate_base64
from apps.connectors.metadata import (
    BINDING_POST,
    BINDING_REDIRECT,
    MAX_METADATA_BYTES,
    MetadataError,
    SpMetadata,
    parse_sp_metadata,
)

BINDING_SOAP = "urn:oasis:names:tc:SAML:2.0:bindings:SOAP"
BINDING_ARTIFACT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact"
EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
UNSPECIFIED = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
ENTITY_ID = "https://sp.example.com/saml/metadata"


def _self_signed(common_name: str) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def signing_pem() -> str:
    return _self_signed("sp-signing.example.com")


@pytest.fixture(scope="module")
def encryption_pem() -> str:
    return _self_signed("sp-encryption.example.com")


def _key(pem: str, use: str | None) -> str:
    use_attr = f' use="{use}"' if use is not None else ""
    return (
        f"<md:KeyDescriptor{use_attr}><ds:KeyInfo><ds:X509Data><ds:X509Certificate>\n"
        f"{certificate_base64(pem)}\n"
        "</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
    )


def _acs(url: str, *, index: int | str | None = None, binding: str = BINDING_POST, default: str | None = None) -> str:
    attrs = f'Binding="{binding}" Location="{url}"'
    if index is not None:
        attrs += f' index="{index}"'
    if default is not None:
        attrs += f' isDefault="{default}"'
    return f"<md:AssertionConsumerService {attrs}/>"


def sp_metadata(
    *,
    entity_id: str = ENTITY_ID,
    body: str | None = None,
    sp_attrs: str = 'protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"',
) -> str:
    if body is None:
        body = _acs("https://sp.example.com/saml/acs", index=0)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
        f'xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{entity_id}">'
        f"<md:SPSSODescriptor {sp_attrs}>{body}</md:SPSSODescriptor>"
        "</md:EntityDescriptor>"
    )


# --- What is read ---------------------------------------------------------------------------------


def test_minimal_metadata_gives_entity_id_and_acs():
    result = parse_sp_metadata(sp_metadata())

    assert isinstance(result, SpMetadata)
    assert result.entity_id == ENTITY_ID
    assert result.acs_urls == [{"url": "https://sp.example.com/saml/acs", "binding": BINDING_POST, "index": 0}]
    assert result.slo_url == ""
    assert result.signing_cert == ""
    assert result.encryption_cert == ""
    assert result.nameid_format == ""
    assert result.authn_requests_signed is False


def test_bytes_and_text_give_the_same_result():
    text = sp_metadata()

    assert parse_sp_metadata(text) == parse_sp_metadata(text.encode())


def test_entity_id_is_trimmed():
    result = parse_sp_metadata(sp_metadata(entity_id="  https://sp.example.com/e  "))

    assert result.entity_id == "https://sp.example.com/e"


def test_acs_lowest_index_comes_first_without_is_default():
    body = "".join(_acs(f"https://sp.example.com/acs/{index}", index=index) for index in (3, 1, 2))

    result = parse_sp_metadata(sp_metadata(body=body))

    assert [item["index"] for item in result.acs_urls] == [1, 2, 3]
    assert result.acs_urls[0]["url"] == "https://sp.example.com/acs/1"


def test_acs_marked_is_default_comes_first_then_by_index():
    body = (
        _acs("https://sp.example.com/acs/3", index=3)
        + _acs("https://sp.example.com/acs/1", index=1, default="false")
        + _acs("https://sp.example.com/acs/2", index=2, default="true")
    )

    result = parse_sp_metadata(sp_metadata(body=body))

    assert [item["url"] for item in result.acs_urls] == [
        "https://sp.example.com/acs/2",
        "https://sp.example.com/acs/1",
        "https://sp.example.com/acs/3",
    ]
    assert all(set(item) == {"url", "binding", "index"} for item in result.acs_urls)


def test_acs_is_default_accepts_the_xs_boolean_one():
    body = _acs("https://sp.example.com/acs/0", index=0) + _acs("https://sp.example.com/acs/5", index=5, default="1")

    result = parse_sp_metadata(sp_metadata(body=body))

    assert result.acs_urls[0]["url"] == "https://sp.example.com/acs/5"


def test_acs_without_index_takes_its_position():
    body = _acs("https://sp.example.com/acs/a") + _acs("https://sp.example.com/acs/b")

    result = parse_sp_metadata(sp_metadata(body=body))

    assert [(item["url"], item["index"]) for item in result.acs_urls] == [
        ("https://sp.example.com/acs/a", 0),
        ("https://sp.example.com/acs/b", 1),
    ]


def test_only_http_post_acs_are_kept():
    body = (
        _acs("https://sp.example.com/acs/redirect", index=0, binding=BINDING_REDIRECT, default="true")
        + _acs("https://sp.example.com/acs/artifact", index=1, binding=BINDING_ARTIFACT)
        + _acs("https://sp.example.com/acs/post", index=2)
    )

    result = parse_sp_metadata(sp_metadata(body=body))

    assert result.acs_urls == [{"url": "https://sp.example.com/acs/post", "binding": BINDING_POST, "index": 2}]


def test_metadata_with_only_a_redirect_acs_is_refused():
    body = _acs("https://sp.example.com/acs", index=0, binding=BINDING_REDIRECT)

    with pytest.raises(MetadataError, match="no HTTP-POST AssertionConsumerService"):
        parse_sp_metadata(sp_metadata(body=body))


def test_metadata_without_acs_is_refused():
    with pytest.raises(MetadataError, match="no HTTP-POST AssertionConsumerService"):
        parse_sp_metadata(sp_metadata(body=""))


def test_acs_with_a_non_numeric_index_is_refused():
    with pytest.raises(MetadataError, match="index 'first' is not a number"):
        parse_sp_metadata(sp_metadata(body=_acs("https://sp.example.com/acs", index="first")))


def test_single_logout_service_is_read_skipping_soap():
    body = (
        f'<md:SingleLogoutService Binding="{BINDING_SOAP}" Location="https://sp.example.com/slo/soap"/>'
        f'<md:SingleLogoutService Binding="{BINDING_REDIRECT}" Location=" https://sp.example.com/slo "/>'
        f'<md:SingleLogoutService Binding="{BINDING_POST}" Location="https://sp.example.com/slo/post"/>'
        + _acs("https://sp.example.com/acs", index=0)
    )

    result = parse_sp_metadata(sp_metadata(body=body))

    assert result.slo_url == "https://sp.example.com/slo"
    assert result.slo_binding == BINDING_REDIRECT


def test_signing_certificate_comes_from_the_key_descriptor(signing_pem):
    body = _key(signing_pem, "signing") + _acs("https://sp.example.com/acs", index=0)

    result = parse_sp_metadata(sp_metadata(body=body))

    assert result.signing_cert == signing_pem
    assert result.signing_cert.startswith("-----BEGIN CERTIFICATE-----")
    assert result.encryption_cert == ""


def test_key_descriptor_without_use_is_a_signing_certificate_only(signing_pem):
    body = _key(signing_pem, None) + _acs("https://sp.example.com/acs", index=0)

    result = parse_sp_metadata(sp_metadata(body=body))

    assert result.signing_cert == signing_pem
    # Encryption is switched on by an encryption certificate, so only an explicit one counts.
    assert result.encryption_cert == ""


def test_encryption_certificate_only_from_use_encryption(signing_pem, encryption_pem):
    body = _key(encryption_pem, "encryption") + _key(signing_pem, "signing") + _acs("https://sp.example.com/a", index=0)

    result = parse_sp_metadata(sp_metadata(body=body))

    assert result.encryption_cert == encryption_pem
    assert result.signing_cert == signing_pem


def test_the_first_signing_certificate_wins(signing_pem, encryption_pem):
    body = _key(signing_pem, "signing") + _key(encryption_pem, "signing") + _acs("https://sp.example.com/a", index=0)

    result = parse_sp_metadata(sp_metadata(body=body))

    assert result.signing_cert == signing_pem


def test_key_descriptor_with_an_invalid_certificate_is_refused():
    body = (
        '<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data>'
        "<ds:X509Certificate>bm90IGEgY2VydGlmaWNhdGU=</ds:X509Certificate>"
        "</ds:X509Data></ds:KeyInfo></md:KeyDescriptor>" + _acs("https://sp.example.com/acs", index=0)
    )

    with pytest.raises(MetadataError, match="invalid certificate"):
        parse_sp_metadata(sp_metadata(body=body))


def test_empty_key_descriptor_is_skipped():
    body = (
        '<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>  </ds:X509Certificate>'
        "</ds:X509Data></ds:KeyInfo></md:KeyDescriptor>" + _acs("https://sp.example.com/acs", index=0)
    )

    assert parse_sp_metadata(sp_metadata(body=body)).signing_cert == ""


@pytest.mark.parametrize(
    ("formats", "expected"),
    [
        ([EMAIL], "email"),
        ([PERSISTENT], "persistent"),
        ([TRANSIENT], "transient"),
        ([UNSPECIFIED], "unspecified"),
        (["urn:example:custom-format", PERSISTENT, EMAIL], "persistent"),
        (["urn:example:custom-format"], ""),
    ],
)
def test_nameid_format_is_the_first_known_one(formats, expected):
    body = "".join(f"<md:NameIDFormat> {value} </md:NameIDFormat>" for value in formats)
    body += _acs("https://sp.example.com/acs", index=0)

    assert parse_sp_metadata(sp_metadata(body=body)).nameid_format == expected


def test_authn_requests_signed_and_want_assertions_signed_are_read():
    sp_attrs = (
        'AuthnRequestsSigned="true" WantAssertionsSigned="true" '
        'protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"'
    )

    result = parse_sp_metadata(sp_metadata(sp_attrs=sp_attrs))

    assert result.authn_requests_signed is True
    assert result.want_assertions_signed is True


def test_authn_requests_signed_accepts_the_xs_boolean_one():
    sp_attrs = 'AuthnRequestsSigned="1" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"'

    assert parse_sp_metadata(sp_metadata(sp_attrs=sp_attrs)).authn_requests_signed is True


def test_entities_descriptor_with_one_entity_is_accepted():
    inner = sp_metadata().split("?>", 1)[1]
    xml = f'<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata">{inner}</md:EntitiesDescriptor>'

    assert parse_sp_metadata(xml).entity_id == ENTITY_ID


# --- What is refused ------------------------------------------------------------------------------


def test_entities_descriptor_with_two_entities_is_refused():
    first = sp_metadata(entity_id="https://a.example.com").split("?>", 1)[1]
    second = sp_metadata(entity_id="https://b.example.com").split("?>", 1)[1]
    xml = (
        f'<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata">{first}{second}'
        "</md:EntitiesDescriptor>"
    )

    with pytest.raises(MetadataError, match="several entities"):
        parse_sp_metadata(xml)


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="&lol9;">
<md:SPSSODescriptor><md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
 Location="https://sp.example.com/acs" index="0"/></md:SPSSODescriptor></md:EntityDescriptor>"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE md [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="&xxe;">
<md:SPSSODescriptor><md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
 Location="https://sp.example.com/acs" index="0"/></md:SPSSODescriptor></md:EntityDescriptor>"""


@pytest.mark.parametrize(
    "xml",
    [
        BILLION_LAUGHS,
        EXTERNAL_ENTITY,
        BILLION_LAUGHS.replace("DOCTYPE", "doctype"),
        '<?xml version="1.0"?><!DOCTYPE md SYSTEM "http://127.0.0.1:9/x.dtd">' + sp_metadata().split("?>", 1)[1],
    ],
    ids=["billion-laughs", "external-entity", "lowercase-doctype", "external-dtd"],
)
def test_dtd_and_entity_declarations_are_refused(xml):
    with pytest.raises(MetadataError, match="DTD or entity declarations are not accepted"):
        parse_sp_metadata(xml)


def _utf16(xml: str) -> bytes:
    return xml.replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>').encode("utf-16")


def test_billion_laughs_in_utf16_is_refused_too():
    # The byte-level DOCTYPE check cannot see UTF-16: the parser must still refuse to expand it.
    with pytest.raises(MetadataError):
        parse_sp_metadata(_utf16(BILLION_LAUGHS))


def test_internal_entity_in_utf16_is_refused_by_the_parsed_doctype_check():
    xml = (
        '<?xml version="1.0"?><!DOCTYPE md [<!ENTITY e "https://sp.example.com/e">]>'
        + sp_metadata(entity_id="&e;").split("?>", 1)[1]
    )

    with pytest.raises(MetadataError, match="DTD or entity declarations are not accepted"):
        parse_sp_metadata(_utf16(xml))


def test_idp_metadata_is_refused():
    xml = (
        '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.example.com">'
        '<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        f'<md:SingleSignOnService Binding="{BINDING_REDIRECT}" Location="https://idp.example.com/sso"/>'
        "</md:IDPSSODescriptor></md:EntityDescriptor>"
    )

    with pytest.raises(MetadataError, match="no SPSSODescriptor: is this an IdP's metadata"):
        parse_sp_metadata(xml)


@pytest.mark.parametrize("data", [b"", b"not xml at all", b"<md:EntityDescriptor", b'{"entityID": "x"}'])
def test_not_xml_is_refused(data):
    with pytest.raises(MetadataError, match="not well-formed XML"):
        parse_sp_metadata(data)


def test_other_xml_is_refused():
    with pytest.raises(MetadataError, match=r"not SAML 2\.0 metadata"):
        parse_sp_metadata("<html><body>Sign in</body></html>")


def test_entity_descriptor_in_another_namespace_is_refused():
    xml = sp_metadata().replace("urn:oasis:names:tc:SAML:2.0:metadata", "urn:example:not-saml")

    with pytest.raises(MetadataError, match=r"not SAML 2\.0 metadata"):
        parse_sp_metadata(xml)


def test_missing_entity_id_is_refused():
    with pytest.raises(MetadataError, match="no entityID"):
        parse_sp_metadata(sp_metadata(entity_id="  "))


def test_oversize_metadata_is_refused():
    padding = "<!--" + "x" * MAX_METADATA_BYTES + "-->"
    xml = sp_metadata().replace("</md:EntityDescriptor>", padding + "</md:EntityDescriptor>")

    with pytest.raises(MetadataError, match="larger than 512 KB"):
        parse_sp_metadata(xml)


def test_metadata_just_under_the_limit_is_read():
    xml = sp_metadata()
    padding = MAX_METADATA_BYTES - len(xml.encode()) - len("<!---->")
    xml = xml.replace("</md:EntityDescriptor>", "<!--" + "x" * padding + "--></md:EntityDescriptor>")
    assert len(xml.encode()) == MAX_METADATA_BYTES

    assert parse_sp_metadata(xml).entity_id == ENTITY_ID
