"""A second opinion on our signatures: Debian's `xmlsec1 --verify`, and the algorithms really used."""

import base64
import shutil
import subprocess

import pytest
from django.utils import timezone
from lxml import etree

from apps.connectors import services as connector_services
from apps.saml_idp.attributes import subject_for
from apps.saml_idp.keys import loaded_key, signing_key_for
from apps.saml_idp.responses import Session, build_authn_response
from tests.saml_idp.conftest import auto_post
from tests.saml_idp.sp import SP_ACS_URL

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        shutil.which("xmlsec1") is None, reason="Debian's xmlsec1 is not installed (.ci/run installs it)"
    ),
]
DS = "{http://www.w3.org/2000/09/xmldsig#}"


def _xmlsec1_verify(tmp_path, xml: bytes, certificate_pem: str, node: str) -> subprocess.CompletedProcess:
    document = tmp_path / "response.xml"
    document.write_bytes(xml)
    certificate = tmp_path / "idp.crt"
    certificate.write_text(certificate_pem)
    return subprocess.run(
        [
            "xmlsec1", "--verify",
            "--pubkey-cert-pem", str(certificate),
            "--enabled-key-data", "raw-x509-cert",
            "--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:protocol:Response",
            "--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
            "--node-xpath", node,
            str(document),
        ],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


def _response(connector, user) -> tuple[bytes, str]:
    key = loaded_key(signing_key_for(connector))
    xml = build_authn_response(
        connector,
        subject_for(connector, user),
        key,
        Session(index="_s1", authn_instant=timezone.now()),
        acs_url=SP_ACS_URL,
        in_response_to="_req1",
    )
    return xml, key.certificate_pem


RESPONSE_SIGNATURE = "/*[local-name()='Response']/*[local-name()='Signature']"
ASSERTION_SIGNATURE = "/*[local-name()='Response']/*[local-name()='Assertion']/*[local-name()='Signature']"


def test_xmlsec1_verifies_response_and_assertion_signatures(tmp_path, connector, user):
    xml, certificate = _response(connector, user)
    for node in (RESPONSE_SIGNATURE, ASSERTION_SIGNATURE):
        result = _xmlsec1_verify(tmp_path, xml, certificate, node)
        assert result.returncode == 0, result.stderr
        assert "OK" in result.stdout + result.stderr


def test_xmlsec1_rejects_a_tampered_assertion(tmp_path, connector, user):
    xml, certificate = _response(connector, user)
    tampered = xml.replace(b"jane.doe@example.com", b"mallory@example.com")
    assert _xmlsec1_verify(tmp_path, tampered, certificate, ASSERTION_SIGNATURE).returncode != 0
    assert _xmlsec1_verify(tmp_path, tampered, certificate, RESPONSE_SIGNATURE).returncode != 0


def test_signatures_use_rsa_sha256_sha256_and_exclusive_c14n(signed_in, connector, user, sp_factory):
    url, _ = sp_factory(connector).redirect_login()
    _, fields = auto_post(signed_in.get(url))
    root = etree.fromstring(base64.b64decode(fields["SAMLResponse"]))
    signatures = root.iter(f"{DS}Signature")
    seen = 0
    for signature in signatures:
        seen += 1
        info = signature.find(f"{DS}SignedInfo")
        assert info.find(f"{DS}SignatureMethod").get("Algorithm") == "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
        assert info.find(f"{DS}CanonicalizationMethod").get("Algorithm") == "http://www.w3.org/2001/10/xml-exc-c14n#"
        reference = info.find(f"{DS}Reference")
        assert reference.find(f"{DS}DigestMethod").get("Algorithm") == "http://www.w3.org/2001/04/xmlenc#sha256"
        assert reference.get("URI") == "#" + signature.getparent().get("ID")
        # Schema order: the signature follows the Issuer.
        assert signature.getprevious().tag.endswith("Issuer")
    assert seen == 2
    assert b"sha1" not in base64.b64decode(fields["SAMLResponse"])


def test_rsa_sha512_when_configured(tmp_path, connector, user):
    connector_services.connector_update(actor=None, connector=connector, sso={"signature_algorithm": "rsa-sha512"})
    connector.refresh_from_db()
    xml, certificate = _response(connector, user)
    assert b"xmldsig-more#rsa-sha512" in xml and b"xmlenc#sha512" in xml
    assert _xmlsec1_verify(tmp_path, xml, certificate, ASSERTION_SIGNATURE).returncode == 0
