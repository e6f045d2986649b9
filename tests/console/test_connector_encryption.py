"""The SSO tab's encryption and metadata-refresh settings, and the tracer's diagnosis of an app's
error message, in the console; the same settings through the admin API."""

import pytest
from django.urls import reverse

from apps.connectors import services as connector_services
from tests.saml_idp.conftest import _fast_keys, make_connector  # noqa: F401
from tests.saml_idp.sp import sp_keys

pytestmark = pytest.mark.django_db
MELLON_ERROR = "Error processing authn response. Lasso error: [-427] When looking for an assertion we did not found it."


@pytest.fixture
def connector(db):
    connector = make_connector()
    return connector_services.connector_update(
        actor=None,
        connector=connector,
        sso={"sp_encryption_cert": sp_keys().encryption_cert, "key_transport": "rsa-oaep-sha256"},
    )


def test_sso_tab_shows_the_algorithms_and_saves_the_admins_choice(admin_client, connector):
    url = reverse("console:connector_sso", args=[connector.slug])
    page = admin_client.get(url).content.decode()
    assert "Encryption" in page and "AES-256-CBC, key RSA-OAEP, SHA-256" in page
    assert 'name="encryption_algorithm"' in page and 'name="sp_metadata_url"' in page
    from tests.console.test_connectors import _sso_post

    response = admin_client.post(
        url,
        _sso_post(
            sp_entity_id=connector.sso.sp_entity_id,
            sp_encryption_cert=sp_keys().encryption_cert,
            encrypt_assertions="on",
            encryption_algorithm="aes128-gcm",
            key_transport="rsa-oaep-mgf1p",
        ),
    )
    assert response.status_code == 302, response.content[:500]
    connector.sso.refresh_from_db()
    assert (connector.sso.encryption_algorithm, connector.sso.key_transport) == ("aes128-gcm", "rsa-oaep-mgf1p")


def test_tracer_points_an_unreadable_assertion_at_the_encryption_settings(admin_client, connector):
    url = reverse("console:connector_tracer", args=[connector.slug])
    page = admin_client.get(url, {"report": MELLON_ERROR}).content.decode()
    assert "could not read the encrypted assertion: check the encryption settings" in page
    assert "Try the key transport RSA-OAEP, MGF1-SHA1" in page
    assert reverse("console:connector_sso", args=[connector.slug]) + "#encryption-heading" in page


def test_tracer_preview_names_the_algorithms(admin_client, connector):
    from tests.factories import UserFactory

    user = UserFactory(username="preview.me")
    url = reverse("console:connector_tracer", args=[connector.slug])
    page = admin_client.get(url, {"q": "preview.me", "user": str(user.pk)}).content.decode()
    assert "The assertion is encrypted for the app: AES-256-CBC, key RSA-OAEP, SHA-256" in page
    assert "RSA-SHA256, digest SHA256" in page


def test_the_api_shows_and_changes_the_encryption_settings(api_client, connector):
    detail = f"/api/v1/connectors/{connector.pk}"
    sso = api_client.get(detail).json()["sso"]
    assert sso["encrypt_assertions"] is True and sso["key_transport"] == "rsa-oaep-sha256"
    assert sso["sp_metadata_fetched_at"] is None and sso["sp_metadata_fetch_error"] == ""
    response = api_client.patch(
        detail, {"sso": {"encrypt_assertions": False, "encryption_algorithm": "aes256-gcm"}}, format="json"
    )
    assert response.status_code == 200, response.content
    assert (response.json()["sso"]["encrypt_assertions"], response.json()["sso"]["encryption_algorithm"]) == (
        False,
        "aes256-gcm",
    )
    refused = api_client.patch(detail, {"sso": {"encryption_algorithm": "des"}}, format="json")
    assert refused.status_code == 400
    read_only = api_client.patch(detail, {"sso": {"sp_metadata_fetch_error": "x"}}, format="json")
    assert read_only.status_code == 400
