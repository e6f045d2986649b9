"""Signing keys (generation, encryption at rest, rotation, overrides), metadata and its fetch log,
the admin API and the rotate_idp_key command."""

import base64
import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.management import call_command
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from saml2.mdstore import MetadataStore

from apps.audit.models import AuditEvent
from apps.common.crypto import decrypt_secret
from apps.saml_idp import keys
from apps.saml_idp.models import KeyStatus, MetadataFetch, SigningKey
from tests.saml_idp.conftest import auto_post, idp_metadata, make_connector

pytestmark = pytest.mark.django_db


def test_generated_key_is_rsa_2048_self_signed_for_ten_years():
    key = keys.ensure_active_key()
    certificate = x509.load_pem_x509_certificate(key.certificate_pem.encode())
    assert isinstance(certificate.public_key(), rsa.RSAPublicKey)
    assert certificate.public_key().key_size >= 2048
    assert certificate.issuer == certificate.subject
    validity = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert datetime.timedelta(days=3649) < validity < datetime.timedelta(days=3651)
    assert key.status == KeyStatus.ACTIVE
    # Encrypted at rest: the stored text is a Fernet token, not a PEM.
    assert "PRIVATE KEY" not in key.private_key_ciphertext
    assert decrypt_secret(key.private_key_ciphertext).startswith("-----BEGIN PRIVATE KEY-----")
    assert keys.ensure_active_key() == key


def test_generate_key_pair_sizes():
    assert keys.generate_key_pair(key_size=3072, validity_days=1, common_name="x").private_key_pem
    with pytest.raises(keys.ApplicationError):
        keys.generate_key_pair(key_size=1024, validity_days=1, common_name="x")


def test_rotation_publishes_next_then_switches(signed_in, connector, sp_factory, client):
    active = keys.ensure_active_key()
    next_key = keys.signing_key_create_next(actor=None)
    with pytest.raises(keys.ApplicationError):
        keys.signing_key_create_next(actor=None)
    metadata = idp_metadata(client, connector)
    assert metadata.count(b"<ds:X509Certificate>") == 2
    assert str(next_key.pk).encode() in metadata
    # An SP that read the metadata with both keys keeps working across the rotation.
    sp = sp_factory(connector)
    assert len(sp.idp.get("x509certMulti", {}).get("signing", [])) == 2
    new_active = keys.signing_key_rotate(actor=None)
    assert new_active == next_key
    active.refresh_from_db()
    assert active.status == KeyStatus.RETIRED and active.retired is not None
    url, request_id = sp.redirect_login()
    _, fields = auto_post(signed_in.get(url))
    assert sp.acs(fields["SAMLResponse"], request_id=request_id).ok
    assert keys.certificate_base64(next_key.certificate_pem).encode() in base64.b64decode(fields["SAMLResponse"])
    assert AuditEvent.objects.filter(action="saml.key.rotate").count() == 1


def test_rotation_without_next_key_generates_one():
    old = keys.ensure_active_key()
    new = keys.signing_key_rotate(actor=None)
    assert new != old and new.status == KeyStatus.ACTIVE
    assert SigningKey.objects.filter(scope="portal", status="active").count() == 1


def test_connector_key_override(signed_in, connector, sp_factory, client):
    portal_key = keys.ensure_active_key()
    own = keys.connector_signing_key_set(actor=None, connector=connector)
    metadata = idp_metadata(client, connector)
    assert keys.certificate_base64(own.certificate_pem).encode() in metadata
    assert keys.certificate_base64(portal_key.certificate_pem).encode() not in metadata
    sp = sp_factory(connector)
    url, request_id = sp.redirect_login()
    _, fields = auto_post(signed_in.get(url))
    assert sp.acs(fields["SAMLResponse"], request_id=request_id).ok
    keys.connector_signing_key_clear(actor=None, connector=connector)
    own.refresh_from_db()
    assert own.status == KeyStatus.RETIRED
    assert keys.signing_key_for(connector) == portal_key


def test_connector_metadata_document(client, connector):
    response = client.get(f"/saml/idp/{connector.slug}/metadata", HTTP_USER_AGENT="Slack metadata fetcher")
    assert response["Content-Type"] == "application/samlmetadata+xml"
    parsed = OneLogin_Saml2_IdPMetadataParser.parse(response.content.decode())["idp"]
    assert parsed["entityId"] == connector.idp_entity_id
    assert parsed["singleSignOnService"]["url"] == connector.sso_url
    assert parsed["singleLogoutService"]["url"] == connector.sso_url.replace("/sso", "/slo")
    assert parsed["x509cert"] == keys.certificate_base64(keys.ensure_active_key().certificate_pem)
    # pysaml2 loads it too, with both bindings.
    store = MetadataStore(attrc=None, config=None)
    store.load("inline", response.content.decode())
    assert store.single_sign_on_service(connector.idp_entity_id)
    fetch = MetadataFetch.objects.get()
    assert fetch.ip == "127.0.0.1"
    assert fetch.user_agent == "Slack metadata fetcher"
    assert fetch.key_ids == [str(keys.ensure_active_key().pk)]
    download = client.get(f"/saml/idp/{connector.slug}/metadata?download")
    assert download["Content-Disposition"] == f'attachment; filename="{connector.slug}-idp-metadata.xml"'


def test_portal_metadata_lists_every_sso_connector(client, connector):
    other = make_connector(name="Other", sso={"sp_entity_id": "https://other.example.com/md"})
    response = client.get("/saml/idp/metadata")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/samlmetadata+xml"
    assert b"EntitiesDescriptor" in response.content
    assert connector.idp_entity_id.encode() in response.content and other.idp_entity_id.encode() in response.content
    assert client.get("/saml/idp/unknown-app/metadata").status_code == 404


def test_api_keys_list_create_rotate(api_client):
    response = api_client.get("/api/v1/idp-keys")
    assert response.status_code == 200
    assert [key["status"] for key in response.json()] == ["active"]
    assert "private" not in str(response.json()).lower()
    created = api_client.post("/api/v1/idp-keys", {}, format="json")
    assert created.status_code == 201 and created.json()["status"] == "next"
    assert api_client.post("/api/v1/idp-keys", {}, format="json").status_code == 400
    rotated = api_client.post("/api/v1/idp-keys/rotate")
    assert rotated.status_code == 200
    assert rotated.json()["active"]["id"] == created.json()["id"]
    assert rotated.json()["retired"]["status"] == "retired"
    event = AuditEvent.objects.get(action="saml.key.rotate")
    assert event.actor == api_client.user


def test_api_requires_staff(client, db):
    assert client.get("/api/v1/idp-keys").status_code in (401, 403)
    assert client.post("/api/v1/idp-keys/rotate").status_code in (401, 403)


def test_api_metadata_fetches_show_next_key_pickup(api_client, client, connector):
    client.get(f"/saml/idp/{connector.slug}/metadata", REMOTE_ADDR="10.0.0.1")
    next_key = keys.signing_key_create_next(actor=None)
    client.get(f"/saml/idp/{connector.slug}/metadata", REMOTE_ADDR="10.0.0.2")
    response = api_client.get(f"/api/v1/connectors/{connector.pk}/metadata-fetches")
    assert response.status_code == 200
    body = response.json()
    assert body["pickup"]["next_key"] == str(next_key.pk)
    by_ip = {client_["ip"]: client_["has_next_key"] for client_ in body["pickup"]["clients"]}
    assert by_ip == {"10.0.0.1": False, "10.0.0.2": True}
    assert body["pickup"]["all_clients_have_next_key"] is False
    assert [row["ip"] for row in body["results"]] == ["10.0.0.2", "10.0.0.1"]
    client.get(f"/saml/idp/{connector.slug}/metadata", REMOTE_ADDR="10.0.0.1")
    assert api_client.get(f"/api/v1/connectors/{connector.pk}/metadata-fetches").json()["pickup"][
        "all_clients_have_next_key"
    ]


def test_api_connector_signing_key_override(api_client, connector):
    assert api_client.get(f"/api/v1/connectors/{connector.pk}/signing-key").json()["override"] is False
    created = api_client.post(f"/api/v1/connectors/{connector.pk}/signing-key", {}, format="json")
    assert created.status_code == 201 and created.json()["scope"] == "connector"
    assert api_client.get(f"/api/v1/connectors/{connector.pk}/signing-key").json()["override"] is True
    assert api_client.delete(f"/api/v1/connectors/{connector.pk}/signing-key").status_code == 204
    assert api_client.get(f"/api/v1/connectors/{connector.pk}/signing-key").json()["override"] is False


def test_rotate_command(capsys, connector):
    call_command("rotate_idp_key", "--create-next")
    next_key = keys.portal_next_key()
    assert next_key is not None
    call_command("rotate_idp_key")
    out, err = capsys.readouterr()
    assert f"Active key is now {next_key.pk}" in out
    assert f"{connector.slug} has not fetched metadata with the next key" in err
    call_command("rotate_idp_key", "--list")
    assert "retired" in capsys.readouterr().out


def test_portal_metadata_without_sso_connectors(client, db):
    assert client.get("/saml/idp/metadata").status_code == 404


def test_metadata_fetches_from_one_client_are_recorded_once_a_minute(client, connector):
    for _ in range(3):
        client.get(f"/saml/idp/{connector.slug}/metadata", REMOTE_ADDR="10.0.0.9")
    assert MetadataFetch.objects.count() == 1
    keys.signing_key_create_next(actor=None)
    client.get(f"/saml/idp/{connector.slug}/metadata", REMOTE_ADDR="10.0.0.9")
    assert MetadataFetch.objects.count() == 2  # the key set changed: that fetch counts
    MetadataFetch.objects.update(created=MetadataFetch.objects.first().created - datetime.timedelta(minutes=2))
    client.get(f"/saml/idp/{connector.slug}/metadata", REMOTE_ADDR="10.0.0.9")
    assert MetadataFetch.objects.count() == 3
