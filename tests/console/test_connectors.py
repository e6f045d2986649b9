"""Connector pages: the catalog, the creation wizard (the seed's Twingate flow), tabs, checks, roles."""

import datetime
import re
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.connectors import services as connector_services
from apps.connectors.catalog import load_catalog
from apps.connectors.checks import connector_checks
from apps.connectors.models import Connector
from apps.directory import services as directory
from apps.provisioning import batch
from apps.provisioning.models import OutboxEvent, RemoteObject, SyncStatus
from apps.saml_idp import keys as key_services
from apps.saml_idp.models import KeyScope, KeyStatus, MetadataFetch, SigningKey
from tests.connectors.test_metadata import _acs, _key, _self_signed, sp_metadata
from tests.console.conftest import console_client
from tests.factories import GroupFactory, UserFactory
from tests.provisioning.conftest import ScimServerProcess

SP_ENTITY = "https://acme.twingate.com/auth/saml/metadata"
SP_ACS = "https://acme.twingate.com/auth/saml/callback"


@pytest.fixture(scope="module")
def scim_app() -> Iterator[ScimServerProcess]:
    """scim2-server (a SCIM implementation nobody here wrote) as the Twingate-like downstream."""
    server = ScimServerProcess(token=f"downstream-{uuid.uuid4().hex}")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def scim(scim_app) -> ScimServerProcess:
    scim_app.reset()
    return scim_app


def _twingate_metadata() -> bytes:
    body = _key(_self_signed("acme.twingate.com"), "signing") + _acs(SP_ACS, index=0)
    return sp_metadata(entity_id=SP_ENTITY, body=body).encode()


def _create(name: str = "Twingate", template: str = "twingate", **kwargs) -> Connector:
    return connector_services.connector_create(actor=None, template=template, name=name, **kwargs)


def _sso_post(**overrides) -> dict:
    data = {
        "action": "save",
        "sp_entity_id": SP_ENTITY,
        "sp_login_url": "",
        "slo_url": "",
        "nameid_format": "email",
        "nameid_property": "email",
        "sign": "both",
        "signature_algorithm": "rsa-sha256",
        "assertion_lifetime_seconds": "300",
        "session_lifetime_seconds": "28800",
        "sp_signing_cert": "",
        "sp_encryption_cert": "",
        "acs-TOTAL_FORMS": "1",
        "acs-INITIAL_FORMS": "1",
        "acs-MIN_NUM_FORMS": "0",
        "acs-MAX_NUM_FORMS": "20",
        "acs-0-url": SP_ACS,
        "acs-0-binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST",
        "acs-0-index": "0",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def _identity_post(**overrides) -> dict:
    data = {
        "enabled": "on",
        "base_url": "",
        "token": "",
        "operations": ["create_users", "update_users", "deactivate_users", "push_groups"],
        "deprovision": "deactivate",
        "update_method": "patch",
        "rate_limit_per_second": "0",
        "group_members_per_request": "1000",
        "deprovision_threshold_count": "10",
        "deprovision_threshold_percent": "5",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def _errors(response) -> str:
    return response.content.decode()


# --- The whole Twingate flow ------------------------------------------------------------------------


def test_twingate_wizard_from_the_catalog_to_users_downstream(admin, admin_client, scim):
    engineering = GroupFactory(name="Engineering")
    alice = UserFactory(username="alice", email="alice@example.com")
    bob = UserFactory(username="bob", email="bob@example.com")
    directory.group_add_members(actor=None, group=engineering, users=[alice, bob])
    pages: list[str] = []

    def get(url: str, **headers) -> str:
        response = admin_client.get(url, **headers)
        assert response.status_code == 200, (url, response.status_code)
        pages.append(response.content.decode())
        return pages[-1]

    # The catalog: a card per template, searchable with htmx.
    catalog = get("/console/connectors/catalog/")
    assert "Add Twingate" in catalog and "connectors/logos/twingate.svg" in catalog
    cards = get("/console/connectors/catalog/?q=twin", HTTP_HX_REQUEST="true")
    assert "Add Twingate" in cards and "Add Slack" not in cards and "<html" not in cards

    # Step 1, general info: the connector exists from here on.
    assert "General info" in get("/console/connectors/new/twingate/")
    response = admin_client.post(
        "/console/connectors/new/twingate/", {"name": "Twingate", "logo": "connectors/logos/twingate.svg"}
    )
    connector = Connector.objects.get(template="twingate")
    assert response.status_code == 302
    assert response["Location"] == f"/console/connectors/{connector.slug}/sso/?wizard=1"

    # Step 2, SSO: the IdP's fixed URLs, certificate and metadata link to copy; the SP metadata uploaded.
    sso_page = get(response["Location"])
    sso_text = re.sub(r"<[^>]+>", "", sso_page)  # a URL is shown in pieces that wrap after a slash
    assert connector.idp_entity_id in sso_text and connector.sso_url in sso_text
    assert f"/saml/idp/{connector.slug}/metadata" in sso_page
    assert 'data-copy-target="idp-entity-id"' in sso_page and "BEGIN CERTIFICATE" in sso_page
    assert 'aria-current="step"' in sso_page
    assert 'name="idp_entity_id"' not in sso_page  # fixed after creation: shown, never an input
    upload = SimpleUploadedFile("twingate-sp.xml", _twingate_metadata(), content_type="application/xml")
    response = admin_client.post(f"/console/connectors/{connector.slug}/sso/metadata/?wizard=1", {"file": upload})
    assert response.status_code == 302, _errors(response)
    connector.refresh_from_db()
    connector.sso.refresh_from_db()
    assert connector.sso.sp_entity_id == SP_ENTITY
    assert connector.sso.acs_urls[0]["url"] == SP_ACS
    assert "BEGIN CERTIFICATE" in connector.sso.sp_signing_cert
    response = admin_client.post(
        f"/console/connectors/{connector.slug}/sso/?wizard=1", _sso_post(nameid_property="username")
    )
    assert response.status_code == 302, _errors(response)
    assert response["Location"] == f"/console/connectors/{connector.slug}/identity/?wizard=1"

    # Step 3, Identity Management: URL and token of the downstream; the token is write-only.
    assert "Bearer token" in get(response["Location"])
    response = admin_client.post(
        f"/console/connectors/{connector.slug}/identity/?wizard=1",
        _identity_post(base_url=scim.base_url, token=scim.token),
    )
    assert response.status_code == 302, _errors(response)
    assert response["Location"] == f"/console/connectors/{connector.slug}/mappings/?wizard=1"
    identity = get(f"/console/connectors/{connector.slug}/identity/")
    assert "A token is set (updated" in identity and "Replace the token" in identity

    # Test connection, inline through htmx: the stored token reaches the real downstream.
    probe = admin_client.post(
        f"/console/connectors/{connector.slug}/identity/test/", {"base_url": scim.base_url}, HTTP_HX_REQUEST="true"
    )
    assert probe.status_code == 200
    probe_html = probe.content.decode()
    pages.append(probe_html)
    assert "Connection works" in probe_html and "<html" not in probe_html

    # Step 4, attribute mapping: the seed's defaults are there.
    mappings = get(f"/console/connectors/{connector.slug}/mappings/?wizard=1")
    assert 'value="userName"' in mappings and 'value="name.givenName"' in mappings and 'value="externalId"' in mappings

    # Step 5, assignments: find the group by search and assign it.
    found = get(f"/console/connectors/{connector.slug}/assignments/?q=engin", HTTP_HX_REQUEST="true")
    assert "Assign group Engineering" in found
    response = admin_client.post(
        f"/console/connectors/{connector.slug}/assignments/?wizard=1", {"group": str(engineering.pk)}
    )
    assert response.status_code == 302
    assert connector.assignments.filter(group=engineering).exists()

    # Step 6, activate: the checks first, then enable.
    activate = get(f"/console/connectors/{connector.slug}/activate/?wizard=1")
    assert "Activate connector" in activate and "No problems found" in activate
    response = admin_client.post(f"/console/connectors/{connector.slug}/activate/", {"action": "activate"})
    assert response.status_code == 302
    connector.refresh_from_db()
    assert connector.enabled is True

    # Preview before anything is sent, then sync and see the users downstream and "synced" in the tab.
    preview = get(f"/console/connectors/{connector.slug}/provisioning/preview/")
    assert "Users to create" in preview and "alice" in preview and "bob" in preview
    assert "name.givenName" in preview and "Engineering" in preview
    assert scim.users() == []
    assert admin_client.post(f"/console/connectors/{connector.slug}/provisioning/sync/").status_code == 302
    for _ in range(10):
        batch.process_connector(connector.pk)
        if not OutboxEvent.objects.filter(connector=connector, processed_at__isnull=True).exists():
            break
    assert {user["userName"] for user in scim.users()} == {"alice", "bob"}
    assert [group["displayName"] for group in scim.groups()] == ["Engineering"]
    tab = get(f"/console/connectors/{connector.slug}/provisioning/")
    assert tab.count(">Synced</span>") >= 3  # two users and the group
    assert RemoteObject.objects.filter(connector=connector, status=SyncStatus.SYNCED).count() == 3

    for page in [*pages, get(f"/console/connectors/{connector.slug}/"), get("/console/connectors/")]:
        assert scim.token not in page
    actions = set(AuditEvent.objects.filter(actor=admin).values_list("action", flat=True))
    assert {
        "connector.create",
        "connector.sp_metadata_import",
        "connector.sso.update",
        "connector.provisioning.update",
        "connector.activated",
        "provisioning.test_connection",
        "connector.assignment.create",
        "provisioning.sync",
    } <= actions


def test_metadata_url_is_fetched_through_the_guarded_client(admin_client):
    connector = _create()
    body = _twingate_metadata()

    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/samlmetadata+xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/saml/metadata"
        response = admin_client.post(f"/console/connectors/{connector.slug}/sso/metadata/", {"url": url})
    finally:
        server.shutdown()
        server.server_close()
    assert response.status_code == 302, _errors(response)
    connector.sso.refresh_from_db()
    assert connector.sso.sp_entity_id == SP_ENTITY


# --- SSRF: URLs an admin types are checked before the server fetches them -------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "https://"),
        ("http://169.254.169.254/", "link-local"),
        ("http://127.0.0.1:22/", "loopback"),
    ],
)
def test_metadata_url_to_an_internal_address_is_refused_with_a_form_error(admin_client, settings, url, reason):
    settings.OUTBOUND_ALLOW_LOOPBACK = False  # as in production; tests allow it for their local apps
    connector = _create()

    response = admin_client.post(f"/console/connectors/{connector.slug}/sso/metadata/", {"url": url})

    assert response.status_code == 400
    errors = response.context["metadata_form"].errors["url"]
    assert any(reason in error for error in errors), errors
    connector.sso.refresh_from_db()
    assert connector.sso.sp_entity_id == ""
    assert not AuditEvent.objects.filter(action="connector.sp_metadata_import").exists()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "Only http and https"),
        ("http://169.254.169.254/", "link-local"),
        ("http://127.0.0.1:22/", "loopback"),
    ],
)
def test_scim_base_url_to_an_internal_address_is_refused_with_a_form_error(admin_client, settings, url, reason):
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    connector = _create()

    response = admin_client.post(
        f"/console/connectors/{connector.slug}/identity/", _identity_post(enabled=None, base_url=url)
    )

    assert response.status_code == 400
    errors = response.context["form"].errors["base_url"]
    assert any(reason in error for error in errors), errors
    connector.provisioning.refresh_from_db()
    assert connector.provisioning.base_url == ""


def test_test_connection_refuses_a_link_local_url_without_contacting_it(admin_client):
    connector = _create(provisioning={"token": "t0ken-value"})

    response = admin_client.post(
        f"/console/connectors/{connector.slug}/identity/test/",
        {"base_url": "http://169.254.169.254/latest"},
        HTTP_HX_REQUEST="true",
    )

    html = response.content.decode()
    assert "Connection failed" in html and "link-local" in html
    assert "t0ken-value" not in html


# --- Tokens, SSO rules, mappings ---------------------------------------------------------------


def test_token_is_never_shown_again_and_an_empty_field_keeps_it(admin_client):
    connector = _create()
    secret = "tok-" + uuid.uuid4().hex
    url = f"/console/connectors/{connector.slug}/identity/"

    first = admin_client.post(url, _identity_post(enabled=None, base_url="https://93.184.216.34/scim/v2", token=secret))
    assert first.status_code == 302
    stored = connector.provisioning.__class__.objects.get(pk=connector.pk)
    assert stored.token_set and secret not in stored.token_ciphertext

    # An invalid save re-renders the form: the token typed is not echoed back.
    invalid = admin_client.post(url, _identity_post(enabled=None, base_url="ftp://x", token=secret + "x"))
    assert invalid.status_code == 400 and secret not in invalid.content.decode()

    admin_client.post(url, _identity_post(enabled=None, base_url="https://93.184.216.34/scim/v2", token=""))
    assert connector.provisioning.__class__.objects.get(pk=connector.pk).token_ciphertext == stored.token_ciphertext
    for page in ("", "identity/", "provisioning/", "sso/", "mappings/", "activate/"):
        html = admin_client.get(f"/console/connectors/{connector.slug}/{page}").content.decode()
        assert secret not in html


def test_sha1_needs_the_explicit_allow_and_then_shows_a_warning(admin_client):
    connector = _create()
    url = f"/console/connectors/{connector.slug}/sso/"

    refused = admin_client.post(url, _sso_post(signature_algorithm="rsa-sha1"))
    assert refused.status_code == 400
    assert "RSA-SHA1 is insecure" in " ".join(refused.context["form"].errors["signature_algorithm"])
    connector.sso.refresh_from_db()
    assert connector.sso.signature_algorithm == "rsa-sha256"

    assert admin_client.post(url, _sso_post(signature_algorithm="rsa-sha1", allow_sha1="on")).status_code == 302
    page = admin_client.get(url).content.decode()
    assert "SHA-1 is allowed for this app" in page
    assert "sha1_allowed" in {check.code for check in connector_checks(Connector.objects.get(pk=connector.pk))}


def test_acs_rows_can_be_added_and_removed_and_bad_ones_are_named(admin_client):
    connector = _create()
    url = f"/console/connectors/{connector.slug}/sso/"

    added = admin_client.post(url, _sso_post(action="add_acs"))
    assert added.status_code == 200
    assert added.context["acs_formset"].total_form_count() == 2

    two = _sso_post(**{"acs-TOTAL_FORMS": "2", "acs-1-url": "https://acme.twingate.com/acs2", "acs-1-index": "1"})
    two["acs-1-binding"] = two["acs-0-binding"]
    assert admin_client.post(url, two).status_code == 302
    connector.sso.refresh_from_db()
    assert [row["url"] for row in connector.sso.acs_urls] == [SP_ACS, "https://acme.twingate.com/acs2"]

    removed = {**two, "acs-0-DELETE": "on"}
    assert admin_client.post(url, removed).status_code == 302
    connector.sso.refresh_from_db()
    assert [row["url"] for row in connector.sso.acs_urls] == ["https://acme.twingate.com/acs2"]

    bad = admin_client.post(url, _sso_post(**{"acs-0-url": "http://acme.example.com/acs"}))
    assert bad.status_code == 400
    assert "must use https" in " ".join(bad.context["acs_formset"].non_form_errors())


def test_mapping_errors_are_shown_on_the_offending_row_and_nothing_is_saved(admin_client):
    connector = _create()
    before = list(connector.mappings.filter(kind="scim_user").values_list("source", "target"))
    url = f"/console/connectors/{connector.slug}/mappings/"
    rows = {
        "kind": "scim_user",
        "action": "save",
        "scim_user-TOTAL_FORMS": "3",
        "scim_user-INITIAL_FORMS": "3",
        "scim_user-0-source": "username",
        "scim_user-0-target": "userName",
        "scim_user-1-source": "nosuchproperty",
        "scim_user-1-target": "title",
        "scim_user-2-source": "email",
        "scim_user-2-target": "notAnAttribute",
    }

    response = admin_client.post(url, rows)

    assert response.status_code == 400
    table = next(table for table in response.context["tables"] if table["kind"] == "scim_user")
    forms = table["formset"].forms
    assert not forms[0].errors
    assert "Unknown directory property" in forms[1].errors["source"][0]
    assert "not an attribute of the SCIM User schema" in forms[2].errors["target"][0]
    assert list(connector.mappings.filter(kind="scim_user").values_list("source", "target")) == before

    no_user_name = {**rows, "scim_user-TOTAL_FORMS": "1", "scim_user-0-source": "email", "scim_user-0-target": "title"}
    response = admin_client.post(url, no_user_name)
    assert response.status_code == 400
    assert "SCIM users need a userName mapping" in response.content.decode()


def test_mapping_rows_save_remove_and_reset_to_defaults(admin, admin_client):
    connector = _create()
    url = f"/console/connectors/{connector.slug}/mappings/"
    rows = {
        "kind": "scim_user",
        "action": "save",
        "scim_user-TOTAL_FORMS": "3",
        "scim_user-INITIAL_FORMS": "2",
        "scim_user-0-source": "email",
        "scim_user-0-target": "userName",
        "scim_user-1-source": "first_name",
        "scim_user-1-target": "name.givenName",
        "scim_user-1-DELETE": "on",
        "scim_user-2-source": "",
        "scim_user-2-target": "",
    }
    assert admin_client.post(url, rows).status_code == 302
    assert list(connector.mappings.filter(kind="scim_user").values_list("source", "target")) == [("email", "userName")]
    assert AuditEvent.objects.filter(actor=admin, action="connector.mappings.replace").exists()

    added = admin_client.post(url, {**rows, "action": "add"})
    table = next(table for table in added.context["tables"] if table["kind"] == "scim_user")
    assert table["formset"].total_form_count() == 3  # the two kept rows and a new blank one

    assert admin_client.post(url, {"kind": "scim_user", "action": "reset"}).status_code == 302
    targets = list(connector.mappings.filter(kind="scim_user").values_list("target", flat=True))
    assert "userName" in targets and "externalId" in targets and "name.givenName" in targets


# --- Consistency checks ----------------------------------------------------------------------------


def test_consistency_warnings_on_the_overview_and_before_activation(admin_client):
    # A generic app: NameID = email, SCIM userName = username, and nothing says the app matches by email.
    connector = _create("Generic app", template="generic-saml-scim")
    overview = admin_client.get(f"/console/connectors/{connector.slug}/").content.decode()
    assert 'data-check="nameid_scim_mismatch"' in overview
    assert "second account" in overview
    assert 'data-check="no_users_assigned"' in overview
    assert 'data-check="sso_incomplete"' in overview

    # An error blocks activation; the page says why.
    response = admin_client.post(f"/console/connectors/{connector.slug}/activate/", {"action": "activate"})
    assert response.status_code == 400
    assert Connector.objects.get(pk=connector.pk).enabled is False

    connector_services.connector_update(
        actor=None,
        connector=connector,
        sso={"nameid_property": "username", "sp_entity_id": SP_ENTITY, "acs_urls": [SP_ACS]},
    )
    connector_services.assignment_create(actor=None, connector=connector, user=UserFactory())
    codes = {check.code for check in connector_checks(Connector.objects.get(pk=connector.pk))}
    assert not codes & {"nameid_scim_mismatch", "no_users_assigned", "sso_incomplete"}


def test_userName_from_email_agrees_with_an_email_nameid(db):
    connector = _create("Generic app", template="generic-saml-scim")
    connector_services.mappings_replace(
        actor=None, connector=connector, kind="scim_user", rows=[{"source": "email", "target": "userName"}]
    )
    assert "nameid_scim_mismatch" not in {check.code for check in connector_checks(connector)}


@pytest.mark.parametrize("template", sorted(load_catalog()))
def test_every_template_ships_consistent_defaults(db, template):
    extra = {"bookmark_url": "https://wiki.example.com"} if template == "bookmark" else {}
    connector = _create(f"From {template}", template=template, **extra)
    if template == "generic-saml-scim":
        pytest.skip("a generic app leaves the choice to the admin (the Fix it test below)")
    assert "nameid_scim_mismatch" not in {check.code for check in connector_checks(connector)}


def test_fix_it_applies_the_recommended_nameid_and_says_what_changed(admin, admin_client):
    connector = _create("Generic app", template="generic-saml-scim")
    overview = admin_client.get(f"/console/connectors/{connector.slug}/").content.decode()
    assert f'action="/console/connectors/{connector.slug}/checks/nameid_scim_mismatch/fix/"' in overview
    assert "Use the username as the NameID (format unspecified), as provisioning&#x27;s userName does" in overview

    response = admin_client.post(
        f"/console/connectors/{connector.slug}/checks/nameid_scim_mismatch/fix/",
        {"next": f"/console/connectors/{connector.slug}/sso/"},
        follow=True,
    )

    assert response.redirect_chain[-1][0] == f"/console/connectors/{connector.slug}/sso/"
    assert "Fixed: Use the username as the NameID" in response.content.decode()
    connector = Connector.objects.get(pk=connector.pk)
    assert (connector.sso.nameid_property, connector.sso.nameid_format) == ("username", "unspecified")
    assert "nameid_scim_mismatch" not in {check.code for check in connector_checks(connector)}
    event = AuditEvent.objects.get(action="connector.sso.update", target_id=str(connector.pk))
    assert event.actor == admin and event.after == {
        "sso": {"nameid_format": "unspecified", "nameid_property": "username"}
    }
    # Once fixed, there is nothing left to fix; an unknown address after it goes to the overview.
    again = admin_client.post(
        f"/console/connectors/{connector.slug}/checks/nameid_scim_mismatch/fix/", {"next": "https://evil.example/"}
    )
    assert again["Location"] == f"/console/connectors/{connector.slug}/"


def test_signing_key_expiring_within_60_days_is_a_warning(db):
    key = key_services.ensure_active_key()
    SigningKey.objects.filter(pk=key.pk).update(not_after=timezone.now() + datetime.timedelta(days=30))
    connector = _create()

    checks = {check.code: check for check in connector_checks(connector)}

    assert "signing_key_expiring" in checks
    assert "expires on" in checks["signing_key_expiring"].message

    SigningKey.objects.filter(pk=key.pk).update(not_after=timezone.now() + datetime.timedelta(days=400))
    assert "signing_key_expiring" not in {check.code for check in connector_checks(connector)}


def test_a_connector_override_key_is_the_one_checked(db):
    key_services.ensure_active_key()
    connector = _create()
    own = key_services.connector_signing_key_set(actor=None, connector=connector)
    SigningKey.objects.filter(pk=own.pk).update(not_after=timezone.now() - datetime.timedelta(days=1))

    checks = {check.code: check for check in connector_checks(connector)}

    assert checks["signing_key_expired"].level == "error"
    assert "own signing key" in checks["signing_key_expired"].message
    assert SigningKey.objects.filter(scope=KeyScope.PORTAL, status=KeyStatus.ACTIVE).count() == 1


# --- Kinds, metadata fetches, deletion -------------------------------------------------------------


def test_a_bookmark_skips_sso_identity_and_mappings(admin_client):
    response = admin_client.post(
        "/console/connectors/new/bookmark/", {"name": "Wiki", "bookmark_url": "https://wiki.example.com/"}
    )
    connector = Connector.objects.get(name="Wiki")
    assert response["Location"] == f"/console/connectors/{connector.slug}/assignments/?wizard=1"
    page = admin_client.get(response["Location"]).content.decode()
    assert (
        "General info" in page and "Assignments" in page and ">SSO<" not in page and "Identity Management" not in page
    )
    assert admin_client.get(f"/console/connectors/{connector.slug}/sso/").status_code == 404
    assert admin_client.get(f"/console/connectors/{connector.slug}/mappings/").status_code == 404


def test_a_scim_only_app_has_no_sso_step(admin_client):
    response = admin_client.post("/console/connectors/new/generic-scim/", {"name": "Directory sync"})
    connector = Connector.objects.get(name="Directory sync")
    assert response["Location"] == f"/console/connectors/{connector.slug}/identity/?wizard=1"
    assert admin_client.get(f"/console/connectors/{connector.slug}/sso/").status_code == 404


def test_invalid_general_info_writes_nothing(admin_client):
    response = admin_client.post(
        "/console/connectors/new/bookmark/", {"name": "Wiki", "bookmark_url": "javascript:alert(1)"}
    )
    assert response.status_code == 400
    assert response.context["form"].errors["bookmark_url"]
    assert not Connector.objects.exists()


def test_sso_tab_lists_metadata_fetches(admin_client):
    connector = _create()
    MetadataFetch.objects.create(connector=connector, ip="203.0.113.7", user_agent="Twingate/1.0", key_ids=[])
    page = admin_client.get(f"/console/connectors/{connector.slug}/sso/").content.decode()
    assert "203.0.113.7" in page and "Twingate/1.0" in page


def test_delete_asks_first_then_deletes_and_audits(admin, admin_client):
    connector = _create()
    connector_services.assignment_create(actor=None, connector=connector, group=GroupFactory(name="Sales"))
    url = f"/console/connectors/{connector.slug}/delete/"

    confirm = admin_client.get(url).content.decode()
    assert "1 assignment" in confirm and "Nothing is deprovisioned" in confirm
    assert Connector.objects.filter(pk=connector.pk).exists()

    response = admin_client.post(url)
    assert response.status_code == 302 and response["Location"] == "/console/connectors/"
    assert not Connector.objects.filter(pk=connector.pk).exists()
    assert AuditEvent.objects.filter(actor=admin, action="connector.delete", target_id=str(connector.pk)).exists()


def test_removing_an_assignment_is_audited(admin, admin_client):
    connector = _create()
    assignment = connector_services.assignment_create(
        actor=None, connector=connector, user=UserFactory(username="carol")
    )
    response = admin_client.post(f"/console/connectors/{connector.slug}/assignments/{assignment.pk}/remove/")
    assert response.status_code == 302
    assert not connector.assignments.exists()
    assert AuditEvent.objects.filter(actor=admin, action="connector.assignment.delete").exists()


# --- Roles, CSRF, queries ------------------------------------------------------------------------


def _pages(slug: str) -> list[str]:
    base = f"/console/connectors/{slug}"
    return [
        "/console/connectors/",
        "/console/connectors/catalog/",
        f"{base}/",
        f"{base}/general/",
        f"{base}/sso/",
        f"{base}/identity/",
        f"{base}/mappings/",
        f"{base}/assignments/",
        f"{base}/activate/",
    ]


def _posts(slug: str) -> list[tuple[str, dict]]:
    base = f"/console/connectors/{slug}"
    return [
        ("/console/connectors/new/twingate/", {"name": "Another"}),
        (f"{base}/general/", {"name": "Renamed"}),
        (f"{base}/sso/", _sso_post()),
        (f"{base}/sso/metadata/", {"url": "https://example.com/md"}),
        (f"{base}/identity/", _identity_post(enabled=None)),
        (f"{base}/identity/test/", {}),
        (f"{base}/mappings/", {"kind": "saml", "action": "reset"}),
        (f"{base}/assignments/", {"user": str(uuid.uuid4())}),
        (f"{base}/activate/", {"action": "activate"}),
        (f"{base}/delete/", {}),
    ]


def test_help_desk_gets_403_on_every_connector_page(helpdesk_client):
    connector = _create()
    for url in _pages(connector.slug):
        assert helpdesk_client.get(url).status_code == 403, url
    for url, data in _posts(connector.slug):
        assert helpdesk_client.post(url, data).status_code == 403, url


def test_read_only_sees_every_page_but_changes_nothing(readonly, readonly_client):
    connector = _create()
    for url in _pages(connector.slug):
        response = readonly_client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert "Save and continue" not in html and "Add a connector" not in html and "Delete connector" not in html
    for url, data in _posts(connector.slug):
        assert readonly_client.post(url, data).status_code == 403, url
    assert readonly_client.get("/console/connectors/new/twingate/").status_code == 403
    assert readonly_client.get(f"/console/connectors/{connector.slug}/delete/").status_code == 403
    connector.refresh_from_db()
    assert connector.name == "Twingate" and connector.enabled is False
    assert not AuditEvent.objects.filter(actor=readonly).exclude(action__startswith="portal.").exists()


def test_super_admin_and_admin_may_change_connectors(super_client, admin_client):
    for client in (super_client, admin_client):
        name = f"Wiki {uuid.uuid4().hex[:4]}"
        response = client.post(
            "/console/connectors/new/bookmark/", {"name": name, "bookmark_url": "https://w.example/"}
        )
        assert response.status_code == 302


def test_csrf_is_refused_without_a_token(admin):
    connector = _create()
    client = console_client(admin)
    client.handler.enforce_csrf_checks = True
    response = client.post(f"/console/connectors/{connector.slug}/general/", {"name": "Hijacked"})
    assert response.status_code == 403
    assert Connector.objects.get(pk=connector.pk).name == "Twingate"


def test_a_signed_out_client_reaches_no_connector_page(db):
    connector = _create()
    client = Client()
    for url in _pages(connector.slug):
        response = client.get(url)
        assert response.status_code in (302, 403), url
        assert connector.slug not in response.content.decode()


def test_connector_list_costs_a_fixed_number_of_queries(admin_client, django_assert_max_num_queries):
    def create(count: int) -> None:
        for _ in range(count):
            connector = _create(name=f"App {uuid.uuid4().hex[:6]}", template="generic-saml-scim")
            connector_services.assignment_create(actor=None, connector=connector, user=UserFactory())
            RemoteObject.objects.create(connector=connector, object_type="user", object_id=uuid.uuid4())

    create(2)
    admin_client.get("/console/connectors/")  # warm the session and caches
    with django_assert_max_num_queries(12) as few:
        assert admin_client.get("/console/connectors/").status_code == 200
    create(30)
    with django_assert_max_num_queries(len(few.captured_queries)) as many:
        response = admin_client.get("/console/connectors/")
    assert response.status_code == 200
    assert len(response.context["rows"]) == 32
    assert len(many.captured_queries) == len(few.captured_queries)


def test_garbage_input_gives_form_errors_never_a_500(admin_client):
    connector = _create()
    base = f"/console/connectors/{connector.slug}"
    garbage = {
        "acs-TOTAL_FORMS": "many",
        "scim_user-TOTAL_FORMS": "-5",
        "action": "add",
        "kind": "scim_user",
        "name": "x" * 500,
        "sign": "nobody",
        "assertion_lifetime_seconds": "soon",
        "rate_limit_per_second": "-1",
        "operations": ["fly"],
        "user": "not-a-uuid",
        "base_url": "\x00",
    }
    for url in (
        "/console/connectors/new/twingate/",
        f"{base}/general/",
        f"{base}/sso/",
        f"{base}/sso/metadata/",
        f"{base}/identity/",
        f"{base}/identity/test/",
        f"{base}/mappings/",
        f"{base}/assignments/",
        f"{base}/activate/",
    ):
        for data in (garbage, {**garbage, "action": "save"}, {}):
            response = admin_client.post(url, data)
            assert response.status_code < 500, (url, data.get("action"))
    assert admin_client.post(f"{base}/mappings/", {"kind": "bogus"}).status_code == 404
    assert admin_client.get("/console/connectors/no-such-app/").status_code == 404
    assert admin_client.get("/console/connectors/new/no-such-template/").status_code == 404


def test_catalog_back_button_gets_the_whole_page(admin_client):
    response = admin_client.get(
        "/console/connectors/catalog/?q=slack", HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true"
    )
    html = response.content.decode()
    assert "<html" in html and "Add Slack" in html and "Add Twingate" not in html


def test_assignment_list_costs_a_fixed_number_of_queries(admin_client, django_assert_max_num_queries):
    connector = _create()
    url = f"/console/connectors/{connector.slug}/assignments/"
    for _ in range(2):
        connector_services.assignment_create(actor=None, connector=connector, user=UserFactory())
    GroupFactory(members=[UserFactory()])  # the lists to pick from are not empty either
    admin_client.get(url)
    with django_assert_max_num_queries(40) as few:
        admin_client.get(url)
    for position in range(20):
        connector_services.assignment_create(actor=None, connector=connector, user=UserFactory())
        if position % 4 == 0:
            connector_services.assignment_create(actor=None, connector=connector, group=GroupFactory())
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = admin_client.get(url)
    assert len(response.context["assignments"]) == 27


def test_a_scope_too_large_to_count_shows_about(db, admin_client, monkeypatch):
    from apps.connectors import selectors
    from apps.connectors import services as connector_services
    from tests.factories import GroupFactory, UserFactory

    connector = connector_services.connector_create(actor=None, template="generic-scim", name="Scope App")
    people = [UserFactory(username=f"wide{i}") for i in range(4)]
    connector_services.assignment_create(actor=None, connector=connector, group=GroupFactory(members=people))
    connector_services.assignment_create(actor=None, connector=connector, group=GroupFactory(members=people[:2]))
    monkeypatch.setattr(selectors, "SCOPE_EXACT_COUNT_LIMIT", 3)
    estimate = selectors.users_in_scope_count(connector)
    assert not estimate.exact

    page = admin_client.get(f"/console/connectors/{connector.slug}/")
    assert f"{estimate} users in all" in page.content.decode()
    assignments = admin_client.get(f"/console/connectors/{connector.slug}/assignments/")
    assert f"{estimate} users can use Scope App" in assignments.content.decode()


def test_group_members_per_request_is_edited_in_identity_management(admin_client):
    connector = _create()
    url = f"/console/connectors/{connector.slug}/identity/"
    assert 'name="group_members_per_request" value="1000"' in admin_client.get(url).content.decode()

    saved = admin_client.post(url, _identity_post(enabled=None, group_members_per_request="300"))
    assert saved.status_code == 302
    assert connector.provisioning.__class__.objects.get(pk=connector.pk).group_members_per_request == 300

    refused = admin_client.post(url, _identity_post(enabled=None, group_members_per_request="0"))
    assert refused.status_code == 400 and "greater than or equal to 1" in refused.content.decode()
    assert connector.provisioning.__class__.objects.get(pk=connector.pk).group_members_per_request == 300
