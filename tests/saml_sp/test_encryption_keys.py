"""Delegated login's key pair: published in the SP metadata, decrypting assertions an upstream
(pysaml2's IdP, through the xmlsec1 program) encrypted to it, stored encrypted, rotated in two steps."""

import datetime
import os
import stat
from io import StringIO
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.utils import timezone
from lxml import etree
from saml2 import BINDING_HTTP_REDIRECT

from apps.audit.models import AuditEvent
from apps.common.crypto import decrypt_secret
from apps.common.pki import certificate_base64
from apps.connectors.saml_algorithms import DATA_ALGORITHMS, KEY_TRANSPORTS
from apps.saml_sp import keys
from apps.saml_sp.models import SpKey, SpKeyStatus
from tests.factories import UserFactory
from tests.saml_sp.conftest import sign_in_upstream
from tests.saml_sp.upstream import redirect_query

pytestmark = pytest.mark.django_db

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"


def _metadata(client) -> etree._Element:
    response = client.get("/saml/sp/corp/metadata/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/samlmetadata+xml")
    return etree.fromstring(response.content)


def _certificates(root: etree._Element, use: str) -> list[str]:
    return [
        "".join(element.text.split())
        for descriptor in root.iter(f"{{{MD}}}KeyDescriptor")
        if descriptor.get("use") == use
        for element in descriptor.iter(f"{{{DS}}}X509Certificate")
    ]


def test_sp_metadata_publishes_the_key_the_logout_endpoints_and_the_algorithms_it_reads(client, make_upstream):
    make_upstream()
    root = _metadata(client)
    active = SpKey.objects.get(status=SpKeyStatus.ACTIVE)
    assert _certificates(root, "encryption") == [certificate_base64(active.certificate_pem)]
    assert _certificates(root, "signing") == [certificate_base64(active.certificate_pem)]
    methods = [
        method.get("Algorithm")
        for descriptor in root.iter(f"{{{MD}}}KeyDescriptor")
        if descriptor.get("use") == "encryption"
        for method in descriptor.findall(f"{{{MD}}}EncryptionMethod")
    ]
    assert methods[:2] == [DATA_ALGORITHMS["aes256-gcm"], DATA_ALGORITHMS["aes128-gcm"]]
    assert KEY_TRANSPORTS["rsa-oaep-mgf1p"] in methods and KEY_TRANSPORTS["rsa-oaep-sha256"] not in methods
    logout = {(s.get("Binding"), s.get("Location")) for s in root.iter(f"{{{MD}}}SingleLogoutService")}
    assert logout == {
        ("urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect", "http://testserver/saml/sp/corp/slo/"),
        ("urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST", "http://testserver/saml/sp/corp/slo/"),
    }


def test_an_encrypted_assertion_is_decrypted_and_signs_in(client, make_upstream, upstream_idp):
    make_upstream()
    user = UserFactory(username="alice", email="alice@corp.example")
    upstream_idp.add_user("alice", "pw", email="alice@corp.example")
    started = client.get("/saml/sp/corp/login/", {"next": "/account/"})
    query = redirect_query(started["Location"])
    _acs, fields = upstream_idp.answer(query["SAMLRequest"], "/account/", "alice", encrypt=True)
    response = client.post("/saml/sp/corp/acs/", fields)
    assert response.status_code == 302, response.content[:500]
    assert client.session["_auth_user_id"] == str(user.pk)
    wire = AuditEvent.objects.get(action="saml_sp.response").after["wire"]
    assert wire["encrypted"] is True and wire["data"].startswith("http://www.w3.org/2001/04/xmlenc#")


def test_the_private_key_is_encrypted_at_rest_and_written_for_pysaml2_only_for_this_user(make_upstream):
    make_upstream()
    key = SpKey.objects.get(status=SpKeyStatus.ACTIVE)
    assert "PRIVATE KEY" not in key.private_key_ciphertext
    assert decrypt_secret(key.private_key_ciphertext).startswith("-----BEGIN PRIVATE KEY-----")
    files = keys.key_files(key)
    assert stat.S_IMODE(os.stat(files.key_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(files.key_file)).st_mode) == 0o700
    assert AuditEvent.objects.filter(action="saml_sp.key.create", target_id=str(key.pk)).exists()


def test_rotation_publishes_the_next_key_first_and_the_retired_one_still_decrypts(
    client, make_upstream, upstream_idp, settings
):
    make_upstream()
    UserFactory(username="alice", email="alice@corp.example")
    upstream_idp.add_user("alice", "pw", email="alice@corp.example")
    old = keys.ensure_active_sp_key()
    upcoming = keys.sp_key_create_next(actor=None)
    published = _certificates(_metadata(client), "encryption")
    assert published == [certificate_base64(old.certificate_pem), certificate_base64(upcoming.certificate_pem)]
    with pytest.raises(Exception, match="next key already exists"):
        keys.sp_key_create_next(actor=None)

    keys.sp_key_rotate(actor=None)
    assert _certificates(_metadata(client), "encryption") == [certificate_base64(upcoming.certificate_pem)]
    rotation = AuditEvent.objects.get(action="saml_sp.key.rotate")
    assert rotation.after["retired"] == str(old.pk)

    # An IdP that still encrypts to the old certificate is understood within the grace period...
    response, _ = _encrypted_sign_in(client, upstream_idp, old.certificate_pem)
    assert response.status_code == 302
    client.logout()
    # ...and not after it.
    SpKey.objects.filter(pk=old.pk).update(retired=timezone.now() - datetime.timedelta(days=30))
    settings.SAML_SP_RETIRED_KEY_GRACE_SECONDS = 3600
    response, _ = _encrypted_sign_in(client, upstream_idp, old.certificate_pem)
    assert response.status_code in (400, 403)


def _encrypted_sign_in(client, upstream_idp, certificate_pem: str):
    started = client.get("/saml/sp/corp/login/", {"next": "/"})
    query = redirect_query(started["Location"])
    parsed = upstream_idp._idp.parse_authn_request(query["SAMLRequest"], BINDING_HTTP_REDIRECT)
    request = parsed.message
    acs, fields = upstream_idp.respond(
        "alice",
        acs=request.assertion_consumer_service_url,
        sp_entity_id=request.issuer.text,
        in_response_to=request.id,
        relay_state="/",
        encrypt=True,
        encrypt_to=certificate_base64(certificate_pem),
    )
    return client.post(urlsplit(acs).path, fields), fields


def test_key_commands_list_create_next_and_rotate(db):
    out = StringIO()
    call_command("upstream_idp", "key", "create-next", stdout=out)
    call_command("upstream_idp", "key", "rotate", stdout=out)
    call_command("upstream_idp", "key", "list", stdout=out)
    text = out.getvalue()
    assert "Next key" in text and "Active key" in text
    assert SpKey.objects.filter(status=SpKeyStatus.RETIRED).count() == 1
    assert text.count("active ") >= 1 and "retired" in text


def test_sign_in_still_works_after_a_rotation_with_a_fresh_metadata(client, make_upstream, upstream_idp):
    make_upstream()
    UserFactory(username="alice", email="alice@corp.example")
    upstream_idp.add_user("alice", "pw", email="alice@corp.example")
    keys.sp_key_rotate(actor=None)
    upstream_idp.trust_sp(client.get("/saml/sp/corp/metadata/").content.decode())
    response, _ = sign_in_upstream(client, upstream_idp, "alice")
    assert response.status_code == 302
