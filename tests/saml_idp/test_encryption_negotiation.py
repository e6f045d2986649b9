"""Encryption and signature algorithms negotiated from SP metadata (fixtures in ./metadata), and
what the portal then sends: checked with python3-saml and with the `xmlsec1` program."""

import base64
import copy
import shutil
import subprocess
from pathlib import Path

import pytest
from lxml import etree

from apps.common.pki import certificate_base64
from apps.connectors import metadata_refresh
from apps.connectors import services as connector_services
from apps.connectors.metadata import BINDING_REDIRECT, parse_sp_metadata
from apps.connectors.saml_algorithms import (
    DATA_ALGORITHMS,
    DIGEST_ALGORITHMS,
    KEY_TRANSPORTS,
    SIGNATURE_ALGORITHMS,
    AdvertisedEncryption,
    negotiate_encryption,
    negotiate_signature,
)
from apps.saml_idp.encryption import decrypt_element, wrap_and_encrypt
from tests.saml_idp.conftest import auto_post, make_connector
from tests.saml_idp.sp import sp_keys

FIXTURES = Path(__file__).resolve().parent / "metadata"
XENC = "http://www.w3.org/2001/04/xmlenc#"
DS = "http://www.w3.org/2000/09/xmldsig#"
ASSERTION = "urn:oasis:names:tc:SAML:2.0:assertion"


def fixture(name: str) -> bytes:
    text = (FIXTURES / name).read_text().replace("{certificate}", certificate_base64(sp_keys().encryption_cert))
    return text.encode()


# --- Negotiation (pure) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "transport"),
    [
        ("gcm-only.xml", "aes128-gcm", "rsa-oaep-mgf1p"),
        ("cbc-only.xml", "aes128-cbc", "rsa-oaep-mgf1p"),
        ("strongest-and-algsupport.xml", "aes256-gcm", "rsa-oaep-sha256"),
        ("none-listed.xml", "aes256-cbc", "rsa-oaep-mgf1p"),
    ],
)
def test_the_strongest_listed_algorithm_we_support_is_chosen(name, data, transport):
    metadata = parse_sp_metadata(fixture(name))
    chosen_data, chosen_transport, _ = negotiate_encryption(
        [AdvertisedEncryption(*m) for m in metadata.encryption_methods]
    )
    assert (chosen_data, chosen_transport) == (data, transport)


def test_no_listed_method_gets_the_default_with_a_note_saying_so():
    data, transport, notes = negotiate_encryption([])
    assert (data, transport) == ("aes256-cbc", "rsa-oaep-mgf1p")
    assert "lists no encryption methods" in notes[0]


def test_only_unsupported_methods_fall_back_to_the_default_and_say_so():
    data, transport, notes = negotiate_encryption(
        [AdvertisedEncryption(XENC + "tripledes-cbc"), AdvertisedEncryption(XENC + "rsa-1_5")]
    )
    assert (data, transport) == ("aes256-cbc", "rsa-oaep-mgf1p")
    assert len(notes) == 2


def test_xmlenc11_rsa_oaep_without_a_sha256_digest_is_not_taken_for_sha256():
    # XML Encryption 1.1's RSA-OAEP with no DigestMethod means SHA-1: not what "rsa-oaep-sha256" sends.
    _, transport, _ = negotiate_encryption([AdvertisedEncryption(KEY_TRANSPORTS["rsa-oaep-sha256"])])
    assert transport == "rsa-oaep-mgf1p"


def test_signature_negotiation_takes_the_strongest_and_never_sha1_without_the_opt_in():
    metadata = parse_sp_metadata(fixture("strongest-and-algsupport.xml"))
    assert negotiate_signature(metadata.signing_methods, metadata.digest_methods)[:2] == ("rsa-sha512", "sha512")
    sha1_only = parse_sp_metadata(fixture("soap-logout-only.xml"))
    signature, digest, notes = negotiate_signature(sha1_only.signing_methods, [])
    assert (signature, digest) == ("rsa-sha256", "sha256") and "SHA-1" in notes[0]
    assert negotiate_signature(sha1_only.signing_methods, [], allow_sha1=True)[0] == "rsa-sha1"


def test_metadata_parser_reads_slo_bindings_and_algorithm_support():
    metadata = parse_sp_metadata(fixture("strongest-and-algsupport.xml"))
    assert (metadata.slo_url, metadata.slo_binding) == ("https://sp.example.com/saml/slo", BINDING_REDIRECT)
    assert metadata.slo_soap_url == "https://sp.example.com/saml/slo/soap"
    assert SIGNATURE_ALGORITHMS["rsa-sha512"] in metadata.signing_methods
    assert (KEY_TRANSPORTS["rsa-oaep-sha256"], XENC + "sha256") in metadata.encryption_methods
    soap_only = parse_sp_metadata(fixture("soap-logout-only.xml"))
    assert (soap_only.slo_url, soap_only.slo_soap_url) == ("", "https://sp.example.com/saml/slo/soap")


# --- Import through the connector service -------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "data"),
    [("gcm-only.xml", "aes128-gcm"), ("cbc-only.xml", "aes128-cbc"), ("none-listed.xml", "aes256-cbc")],
)
def test_import_switches_encryption_on_with_the_negotiated_algorithm(name, data):
    connector = make_connector(sso={"sp_entity_id": ""})
    connector = metadata_refresh.connector_import_sp_metadata(actor=None, connector=connector, xml=fixture(name))
    sso = connector.sso
    assert sso.encrypt_assertions is True and sso.sp_encryption_cert
    assert sso.encryption_algorithm == data
    assert bool(sso.sp_algorithms["encryption"]) == (name != "none-listed.xml")


@pytest.mark.django_db
def test_import_negotiates_signatures_and_keeps_the_admins_choice_afterwards():
    connector = make_connector(sso={"sp_entity_id": ""})
    connector = metadata_refresh.connector_import_sp_metadata(
        actor=None, connector=connector, xml=fixture("strongest-and-algsupport.xml")
    )
    assert (connector.sso.signature_algorithm, connector.sso.digest_algorithm) == ("rsa-sha512", "sha512")
    assert connector.sso.key_transport == "rsa-oaep-sha256"
    # The admin sees the choice and may change it.
    connector = connector_services.connector_update(
        actor=None, connector=connector, sso={"encryption_algorithm": "aes256-cbc", "encrypt_assertions": False}
    )
    assert (connector.sso.encryption_algorithm, connector.sso.encrypt_assertions) == ("aes256-cbc", False)


@pytest.mark.django_db
def test_encryption_needs_a_certificate_and_a_sha1_digest_needs_the_opt_in():
    from django.core.exceptions import ValidationError

    connector = make_connector()
    with pytest.raises(ValidationError) as refused:
        connector_services.connector_update(actor=None, connector=connector, sso={"encrypt_assertions": True})
    assert "sso.sp_encryption_cert" in refused.value.message_dict
    with pytest.raises(ValidationError) as refused:
        connector_services.connector_update(actor=None, connector=connector, sso={"digest_algorithm": "sha1"})
    assert "sso.digest_algorithm" in refused.value.message_dict


# --- What is sent -------------------------------------------------------------------------------


def _assertion_document() -> etree._Element:
    root = etree.fromstring(
        f'<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"><saml:Assertion xmlns:saml="{ASSERTION}" '
        'ID="_a"><saml:Issuer>https://idp</saml:Issuer><saml:Subject><saml:NameID>jane</saml:NameID></saml:Subject>'
        "</saml:Assertion></samlp:Response>".encode()
    )
    return root


@pytest.mark.parametrize("data", list(DATA_ALGORITHMS))
@pytest.mark.parametrize("transport", list(KEY_TRANSPORTS))
def test_every_combination_round_trips_and_names_its_algorithms(data, transport):
    root = _assertion_document()
    wrapper = wrap_and_encrypt(
        root[0], "EncryptedAssertion", sp_keys().encryption_cert, data_algorithm=data, key_transport=transport
    )
    methods = [m.get("Algorithm") for m in wrapper.iter(f"{{{XENC}}}EncryptionMethod")]
    assert methods == [DATA_ALGORITHMS[data], KEY_TRANSPORTS[transport]]
    decrypted = decrypt_element(wrapper[0], sp_keys().encryption_key)
    assert decrypted.find(f"{{{ASSERTION}}}Issuer").text == "https://idp"


@pytest.mark.skipif(shutil.which("xmlsec1") is None, reason="xmlsec1 is not installed (.ci/run installs it)")
@pytest.mark.parametrize("data", list(DATA_ALGORITHMS))
def test_xmlsec1_decrypts_the_plaintext_into_xml_that_stands_alone(tmp_path, data):
    """lasso and pysaml2 parse the decrypted assertion on its own: it must declare its namespaces.

    (Moving the assertion under EncryptedAssertion made lxml drop its xmlns:saml, so mellon
    refused every encrypted assertion with lasso's [-427], whatever the algorithm.)
    """
    root = _assertion_document()
    wrapper = wrap_and_encrypt(
        root[0], "EncryptedAssertion", sp_keys().encryption_cert, data_algorithm=data, key_transport="rsa-oaep-mgf1p"
    )
    (tmp_path / "key.pem").write_text(sp_keys().encryption_key)
    (tmp_path / "encrypted.xml").write_bytes(etree.tostring(copy.deepcopy(wrapper[0])))
    result = subprocess.run(
        ["xmlsec1", "--decrypt", "--privkey-pem", str(tmp_path / "key.pem"), str(tmp_path / "encrypted.xml")],
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr[-500:]
    plaintext = etree.fromstring(result.stdout)
    assert plaintext.tag == f"{{{ASSERTION}}}Assertion"


@pytest.mark.django_db
def test_the_response_uses_the_connectors_algorithms_and_encrypts_the_name_id(signed_in, connector, sp_factory):
    connector_services.connector_update(
        actor=None,
        connector=connector,
        sso={
            "sp_encryption_cert": sp_keys().encryption_cert,
            "encryption_algorithm": "aes128-gcm",
            "key_transport": "rsa-oaep-sha256",
            "encrypt_name_id": True,
            "signature_algorithm": "rsa-sha256",
            "digest_algorithm": "sha512",
        },
    )
    sp = sp_factory(connector, want_assertions_encrypted=True)
    sp.settings_dict["security"]["wantNameIdEncrypted"] = True
    url, request_id = sp.redirect_login()
    _, fields = auto_post(signed_in.get(url))
    root = etree.fromstring(base64.b64decode(fields["SAMLResponse"]))
    methods = [m.get("Algorithm") for m in root.iter(f"{{{XENC}}}EncryptionMethod")]
    assert methods == [DATA_ALGORITHMS["aes128-gcm"], KEY_TRANSPORTS["rsa-oaep-sha256"]]
    assert (
        root.find(f"{{{DS}}}Signature/{{{DS}}}SignedInfo/{{{DS}}}Reference/{{{DS}}}DigestMethod").get("Algorithm")
        == DIGEST_ALGORITHMS["sha512"]
    )
    result = sp.acs(fields["SAMLResponse"], request_id=request_id)
    assert result.ok, (result.errors, result.reason)
    assert result.auth.get_nameid() == "jane.doe@example.com"
    # The NameID travelled as an EncryptedID inside the (encrypted) assertion.
    assertion = decrypt_element(root.find(f".//{{{XENC}}}EncryptedData"), sp_keys().encryption_key)
    assert assertion.find(f"{{{ASSERTION}}}Subject/{{{ASSERTION}}}EncryptedID") is not None
    assert assertion.find(f"{{{ASSERTION}}}Subject/{{{ASSERTION}}}NameID") is None


@pytest.mark.django_db
def test_switching_encryption_off_sends_the_assertion_in_clear(signed_in, connector, sp_factory):
    updated = connector_services.connector_update(
        actor=None, connector=connector, sso={"sp_encryption_cert": sp_keys().encryption_cert}
    )
    assert updated.sso.encrypt_assertions is True  # a new certificate switches encryption on
    connector_services.connector_update(actor=None, connector=connector, sso={"encrypt_assertions": False})
    sp = sp_factory(connector)
    url, request_id = sp.redirect_login()
    _, fields = auto_post(signed_in.get(url))
    assert b"EncryptedAssertion" not in base64.b64decode(fields["SAMLResponse"])
    assert sp.acs(fields["SAMLResponse"], request_id=request_id).ok
