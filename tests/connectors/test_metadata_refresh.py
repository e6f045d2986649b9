"""SP metadata by URL, kept fresh: served for real on loopback, fetched through the SSRF guard,
certificate and endpoint changes applied and audited one by one, failures kept on the connector."""

import datetime
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.common.pki import certificate_base64
from apps.connectors import metadata_refresh
from apps.connectors import services as connector_services
from apps.connectors.models import SsoSettings
from apps.saml_idp.keys import generate_key_pair
from tests.saml_idp.conftest import make_connector
from tests.saml_idp.sp import sp_keys

pytestmark = pytest.mark.django_db
ENTITY = "https://sp.example.com/saml/metadata"


def metadata_xml(*, certificate: str, acs: str = "https://sp.example.com/saml/acs", entity: str = ENTITY) -> bytes:
    return f"""<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"
        xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{entity}">
      <md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
        <md:KeyDescriptor use="encryption"><ds:KeyInfo><ds:X509Data>
        <ds:X509Certificate>{certificate_base64(certificate)}</ds:X509Certificate>
        </ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
        <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
          Location="https://sp.example.com/saml/slo"/>
        <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{acs}"
          index="0"/>
      </md:SPSSODescriptor>
    </md:EntityDescriptor>""".encode()


class MetadataServer:
    """Serves whatever `body` and `status` say at /metadata."""

    def __init__(self) -> None:
        self.body = b""
        self.status = 200
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                outer.fetches += 1
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/samlmetadata+xml")
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/metadata"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def served():
    server = MetadataServer()
    server.body = metadata_xml(certificate=sp_keys().encryption_cert)
    yield server
    server.close()


@pytest.fixture
def imported(served):
    connector = make_connector(sso={"sp_entity_id": ""})
    return metadata_refresh.connector_import_sp_metadata(actor=None, connector=connector, url=served.url)


def _fresh(connector) -> SsoSettings:
    return SsoSettings.objects.get(pk=connector.pk)


def test_import_by_url_keeps_the_url_and_the_fetch_time(imported, served):
    sso = _fresh(imported)
    assert sso.sp_metadata_url == served.url and sso.sp_metadata_fetched_at is not None
    assert sso.encrypt_assertions and sso.sp_metadata_fetch_error == ""


def test_refresh_applies_certificate_and_endpoint_changes_and_audits_each(imported, served):
    connector_services.connector_update(actor=None, connector=imported, sso={"encryption_algorithm": "aes256-gcm"})
    new_certificate = generate_key_pair(key_size=2048, validity_days=30, common_name="rotated").certificate_pem
    served.body = metadata_xml(certificate=new_certificate, acs="https://sp.example.com/saml/acs2")
    connector = type(imported).objects.select_related("sso").get(pk=imported.pk)

    changed = metadata_refresh.sp_metadata_refresh(connector=connector)

    assert changed == ["acs_urls", "sp_encryption_cert"]
    sso = _fresh(imported)
    assert sso.acs_urls[0]["url"] == "https://sp.example.com/saml/acs2"
    assert certificate_base64(sso.sp_encryption_cert) == certificate_base64(new_certificate)
    assert sso.encryption_algorithm == "aes256-gcm", "a refresh never overrides the admin's algorithm choice"
    events = AuditEvent.objects.filter(action="connector.sp_metadata_change", target_id=str(imported.pk))
    assert sorted(event.after["setting"] for event in events) == ["acs_urls", "sp_encryption_cert"]
    assert all(event.after["source"] == served.url for event in events)
    # Nothing changed since: nothing applied, nothing audited.
    connector = type(imported).objects.select_related("sso").get(pk=imported.pk)
    assert metadata_refresh.sp_metadata_refresh(connector=connector) == []
    assert events.count() == 2


def test_a_failed_fetch_changes_nothing_and_is_shown_until_a_fetch_succeeds(imported, served):
    before = _fresh(imported).sp_encryption_cert
    served.status = 500
    for _ in range(2):
        connector = type(imported).objects.select_related("sso").get(pk=imported.pk)
        assert metadata_refresh.sp_metadata_refresh(connector=connector) == []
    sso = _fresh(imported)
    assert "HTTP 500" in sso.sp_metadata_fetch_error and sso.sp_encryption_cert == before
    assert AuditEvent.objects.filter(action="connector.sp_metadata_refresh_failed").count() == 1
    served.status = 200
    connector = type(imported).objects.select_related("sso").get(pk=imported.pk)
    metadata_refresh.sp_metadata_refresh(connector=connector)
    assert _fresh(imported).sp_metadata_fetch_error == ""


def test_a_refresh_does_not_follow_the_metadata_to_another_entity(imported, served):
    served.body = metadata_xml(certificate=sp_keys().encryption_cert, entity="https://evil.example.com/sp")
    connector = type(imported).objects.select_related("sso").get(pk=imported.pk)
    assert metadata_refresh.sp_metadata_refresh(connector=connector) == []
    assert "not https://sp.example.com/saml/metadata" in _fresh(imported).sp_metadata_fetch_error
    assert _fresh(imported).sp_entity_id == ENTITY


def test_the_ssrf_guard_refuses_loopback_urls_when_they_are_not_allowed(imported, served, settings):
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    connector = type(imported).objects.select_related("sso").get(pk=imported.pk)
    metadata_refresh.sp_metadata_refresh(connector=connector)
    assert "loopback" in _fresh(imported).sp_metadata_fetch_error
    with pytest.raises(ValidationError) as refused:
        connector_services.connector_update(actor=None, connector=connector, sso={"sp_metadata_url": served.url})
    assert "sso.sp_metadata_url" in refused.value.message_dict


def test_only_connectors_due_are_refreshed_by_the_beat_task(imported, served, settings):
    from apps.connectors.tasks import refresh_sp_metadata

    fetches = served.fetches
    refresh_sp_metadata()  # fetched at import: not due yet
    assert served.fetches == fetches
    SsoSettings.objects.filter(pk=imported.pk).update(
        sp_metadata_fetched_at=timezone.now() - datetime.timedelta(seconds=settings.SP_METADATA_REFRESH_SECONDS + 1)
    )
    refresh_sp_metadata()
    assert served.fetches == fetches + 1
    assert "connectors.refresh_sp_metadata" in {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
