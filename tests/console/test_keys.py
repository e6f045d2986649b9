"""The Signing keys page: keys and their expiry, who fetched the next key, generate and rotate
(re-authentication, audit), certificate download, and no private key anywhere."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.saml_idp import keys
from apps.saml_idp.models import KeyScope, KeyStatus, MetadataFetch, SigningKey
from tests.console.conftest import console_client
from tests.saml_idp.conftest import _fast_keys, make_connector  # noqa: F401

pytestmark = pytest.mark.django_db

LIST = reverse("console:key_list")
GENERATE = reverse("console:key_generate_next")
ROTATE = reverse("console:key_rotate")


def _certificate_url(key: SigningKey) -> str:
    return reverse("console:key_certificate", args=[key.pk])


def _private_markers(*signing_keys: SigningKey) -> list[bytes]:
    """Bits of each private key as it could leak: its PEM body lines and its ciphertext."""
    markers = [b"PRIVATE KEY"]
    for key in signing_keys:
        pem_lines = keys.private_key_pem(key).strip().splitlines()[1:-1]
        markers += [line.encode() for line in pem_lines[:3]]
        markers.append(key.private_key_ciphertext[:40].encode())
    return markers


@pytest.fixture
def active_key() -> SigningKey:
    return keys.ensure_active_key()


@pytest.fixture
def next_key(active_key) -> SigningKey:
    return keys.signing_key_create_next(actor=None)


def test_list_shows_active_next_and_overrides_without_private_keys(admin_client, active_key, next_key):
    connector = make_connector(name="Zoom", slug="zoom")
    override = keys.connector_signing_key_set(actor=None, connector=connector)
    response = admin_client.get(LIST)
    assert response.status_code == 200
    body = response.content
    for key in (active_key, next_key, override):
        assert key.fingerprint_sha256.encode() in body
        assert _certificate_url(key).encode() in body
    assert b"RSA 2048 bits" in body
    assert b"Zoom" in body
    for marker in _private_markers(active_key, next_key, override):
        assert marker not in body


def test_expiry_within_60_days_is_warned(admin_client, active_key):
    page = admin_client.get(LIST)
    assert b"Expires soon" not in page.content
    SigningKey.objects.filter(pk=active_key.pk).update(not_after=timezone.now() + datetime.timedelta(days=59))
    page = admin_client.get(LIST)
    assert b"Expires soon" in page.content
    assert b"ends within 60 days" in page.content


def test_who_fetched_metadata_since_the_next_key(admin_client, active_key, client):
    fresh = make_connector(name="Fresh App", slug="fresh")
    stale = make_connector(name="Stale App", slug="stale")
    # Bypass the per-minute dedup: an old fetch from before the next key exists.
    MetadataFetch.objects.create(connector=stale, ip="192.0.2.1", key_ids=[str(active_key.pk)])
    MetadataFetch.objects.filter(connector=stale).update(created=timezone.now() - datetime.timedelta(days=3))
    next_key = keys.signing_key_create_next(actor=None)
    assert client.get(f"/saml/idp/{fresh.slug}/metadata").status_code == 200
    assert str(next_key.pk) in MetadataFetch.objects.get(connector=fresh).key_ids

    body = admin_client.get(LIST).content.decode()
    fresh_row = body[body.index("Fresh App") :].split("</tr>")[0]
    stale_row = body[body.index("Stale App") :].split("</tr>")[0]
    assert "Has it" in fresh_row and "Not fetched yet" in stale_row

    confirm = admin_client.get(ROTATE)
    assert confirm.status_code == 200
    text = confirm.content.decode()
    assert "1 connector has not fetched metadata since the next key was published" in text
    assert "Stale App" in text and "Fresh App" not in text


def test_generate_next_key_is_audited(admin_client, admin, active_key):
    response = admin_client.post(GENERATE, {"key_size": "2048", "validity_days": "3650"})
    assert response.status_code == 302 and response["Location"] == LIST
    next_key = SigningKey.objects.get(scope=KeyScope.PORTAL, status=KeyStatus.NEXT)
    event = AuditEvent.objects.get(action="saml.key.create", target_id=str(next_key.pk))
    assert event.actor == admin
    assert b"generated and published" in admin_client.get(LIST).content


def test_generate_with_invalid_input_writes_nothing(admin_client, active_key):
    response = admin_client.post(GENERATE, {"key_size": "1024", "validity_days": "5"})
    assert response.status_code == 400
    assert b"Select a valid choice" in response.content
    assert b"greater than or equal to 30" in response.content
    assert not SigningKey.objects.filter(status=KeyStatus.NEXT).exists()
    assert not AuditEvent.objects.filter(action="saml.key.create", actor__isnull=False).exists()


def test_generate_when_a_next_key_exists_is_a_form_error(admin_client, next_key):
    response = admin_client.post(GENERATE, {"key_size": "2048", "validity_days": "3650"})
    assert response.status_code == 400
    assert b"A next key already exists" in response.content
    assert SigningKey.objects.filter(status=KeyStatus.NEXT).count() == 1


def test_rotate_promotes_the_next_key_and_is_audited(admin_client, admin, active_key, next_key):
    confirm = admin_client.get(ROTATE)
    assert confirm.status_code == 200 and b"Rotate now" in confirm.content
    response = admin_client.post(ROTATE)
    assert response.status_code == 302 and response["Location"] == LIST
    active_key.refresh_from_db()
    next_key.refresh_from_db()
    assert active_key.status == KeyStatus.RETIRED and next_key.status == KeyStatus.ACTIVE
    event = AuditEvent.objects.get(action="saml.key.rotate")
    assert event.actor == admin and event.target_id == str(next_key.pk)


def test_rotate_without_a_next_key_warns_first(admin_client, active_key):
    confirm = admin_client.get(ROTATE)
    assert b"There is no next key" in confirm.content
    assert b"Generate a next key instead" in confirm.content


def test_rotate_and_generate_need_a_recent_sign_in(admin, active_key, next_key):
    stale = console_client(admin, signed_in_seconds_ago=1000)
    for url in (ROTATE, GENERATE):
        for response in (stale.get(url), stale.post(url, {"key_size": "2048", "validity_days": "3650"})):
            assert response.status_code == 302
            assert response["Location"].startswith(reverse("console:reauth"))
    active_key.refresh_from_db()
    assert active_key.status == KeyStatus.ACTIVE
    assert SigningKey.objects.filter(status=KeyStatus.NEXT).count() == 1
    assert not AuditEvent.objects.filter(action="saml.key.rotate").exists()
    # The list itself is not sensitive.
    assert stale.get(LIST).status_code == 200


def test_certificate_download_is_the_public_pem(readonly_client, active_key):
    response = readonly_client.get(_certificate_url(active_key))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-pem-file"
    assert "attachment" in response["Content-Disposition"]
    assert response.content.decode() == active_key.certificate_pem
    for marker in _private_markers(active_key):
        assert marker not in response.content


def test_help_desk_gets_403_on_everything(helpdesk_client, active_key, next_key):
    assert helpdesk_client.get(LIST).status_code == 403
    assert helpdesk_client.get(_certificate_url(active_key)).status_code == 403
    for url in (GENERATE, ROTATE):
        assert helpdesk_client.get(url).status_code == 403
        assert helpdesk_client.post(url).status_code == 403
    next_key.refresh_from_db()
    assert next_key.status == KeyStatus.NEXT


def test_read_only_sees_but_cannot_act(readonly_client, active_key, next_key):
    page = readonly_client.get(LIST)
    assert page.status_code == 200
    assert b"Rotate" not in page.content and b">Generate next key<" not in page.content
    for url in (GENERATE, ROTATE):
        assert readonly_client.get(url).status_code == 403
        assert readonly_client.post(url, {"key_size": "2048", "validity_days": "3650"}).status_code == 403
    next_key.refresh_from_db()
    assert next_key.status == KeyStatus.NEXT


def test_rotate_without_csrf_token_is_refused(admin, active_key, next_key):
    client = console_client(admin)
    client.handler.enforce_csrf_checks = True
    assert client.post(ROTATE).status_code == 403
    next_key.refresh_from_db()
    assert next_key.status == KeyStatus.NEXT


def test_unknown_certificate_is_404(admin_client):
    assert (
        admin_client.get(reverse("console:key_certificate", args=["00000000-0000-0000-0000-000000000000"])).status_code
        == 404
    )


def test_list_queries_do_not_grow_with_connectors(admin_client, active_key, next_key, django_assert_max_num_queries):
    for number in range(3):
        make_connector(name=f"App {number}", slug=f"app-{number}")
    with django_assert_max_num_queries(12) as few:
        admin_client.get(LIST)
    for number in range(3, 12):
        connector = make_connector(name=f"App {number}", slug=f"app-{number}")
        MetadataFetch.objects.create(connector=connector, ip="192.0.2.7", key_ids=[str(next_key.pk)])
        if number % 3 == 0:
            keys.connector_signing_key_set(actor=None, connector=connector)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = admin_client.get(LIST)
    assert b"App 11" in response.content
