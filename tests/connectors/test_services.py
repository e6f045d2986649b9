"""Connector write services and selectors: validation, one transaction, audit, secrets, who is in scope."""

import datetime
import json

import pytest
from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from django.core.exceptions import ValidationError
from django.db import connection

from apps.audit.models import AuditEvent
from apps.common.crypto import decrypt_secret
from apps.common.errors import ApplicationError
from apps.common.pki import certificate_base64
from apps.connectors import metadata_refresh, selectors, services
from apps.connectors.metadata import BINDING_POST, BINDING_REDIRECT
from apps.connectors.models import (
    Assignment,
    AttributeMapping,
    Connector,
    ConnectorKind,
    MappingKind,
    ProvisioningSettings,
    SsoSettings,
)
from apps.connectors.services import FixedFieldError
from apps.directory import services as directory
from apps.directory.models import Group, Membership, User
from tests.factories import GroupFactory, UserFactory

pytestmark = pytest.mark.django_db

TOKEN = "scim-Bearer-token-7f3a9c1e5d2b4a60-not-for-anyone"
OTHER_TOKEN = "rotated-scim-token-0b1c2d3e4f5a6b7c"
SCIM_URL = "http://127.0.0.1:8089/scim/v2"
SEED_USER_ROWS = [
    ("username", "userName"),
    ("email", 'emails[type eq "work"].value'),
    ("status", "active"),
    ("first_name", "name.givenName"),
    ("last_name", "name.familyName"),
    ("display_name", "name.formatted"),
    ("display_name", "displayName"),
    ("employee_id", "externalId"),
]
SEED_GROUP_ROWS = [("name", "displayName"), ("members", "members")]
BASIC = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"

IS_POSTGRES = connection.vendor == "postgresql"


@pytest.fixture
def actor():
    return UserFactory(username="the.actor", is_staff=True, is_superuser=True)


@pytest.fixture(scope="module")
def cert_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sp.example.com")])
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


def _sp_metadata(cert_pem: str = "", *, acs: str = "https://sp.example.com/saml/acs", extra_sp_attrs: str = "") -> str:
    key = ""
    if cert_pem:
        key = (
            '<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>'
            f"{certificate_base64(cert_pem)}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
        )
    return (
        '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
        'xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://sp.example.com/saml">'
        f'<md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"{extra_sp_attrs}>'
        f"{key}"
        f'<md:SingleLogoutService Binding="{BINDING_REDIRECT}" Location="https://sp.example.com/saml/slo"/>'
        "<md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>"
        f'<md:AssertionConsumerService Binding="{BINDING_POST}" Location="{acs}/2" index="2"/>'
        f'<md:AssertionConsumerService Binding="{BINDING_POST}" Location="{acs}" index="1" isDefault="true"/>'
        "</md:SPSSODescriptor></md:EntityDescriptor>"
    )


def _field_errors(excinfo) -> dict[str, list[str]]:
    return excinfo.value.message_dict


def _refused(call, **kwargs) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as excinfo:
        call(**kwargs)
    return _field_errors(excinfo)


def _events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def _dump(event: AuditEvent) -> str:
    return json.dumps([event.before, event.after])


def _rows(connector: Connector, kind: str) -> list[tuple[str, str]]:
    return list(
        AttributeMapping.objects.filter(connector=connector, kind=kind)
        .order_by("position")
        .values_list("source", "target")
    )


def _create(actor, template: str = "twingate", **kwargs) -> Connector:
    return services.connector_create(actor=actor, template=template, **kwargs)


def _fresh(connector: Connector) -> Connector:
    return Connector.objects.select_related("sso", "provisioning").get(pk=connector.pk)


# --- Creating from the catalog --------------------------------------------------------------------


def test_create_twingate_from_the_catalog(actor, settings):
    connector = _create(actor, name="Twingate")

    assert connector.slug == "twingate"
    assert connector.name == "Twingate"
    assert connector.template == "twingate"
    assert connector.kind == ConnectorKind.SAML_SCIM
    assert connector.enabled is False
    assert connector.logo == "connectors/logos/twingate.svg"
    assert connector.description.startswith("Zero-trust network access")
    assert connector.idp_entity_id == f"{settings.PORTAL_BASE_URL}/saml/idp/twingate/metadata"
    assert connector.sso_url == f"{settings.PORTAL_BASE_URL}/saml/idp/twingate/sso"
    assert connector.created is not None
    assert connector.updated is not None
    sso = SsoSettings.objects.get(connector=connector)
    assert (sso.nameid_format, sso.nameid_property) == ("email", "email")
    assert sso.sign_response and sso.sign_assertion
    assert sso.signature_algorithm == "rsa-sha256"
    assert sso.allow_sha1 is False
    assert sso.acs_urls == []
    provisioning = ProvisioningSettings.objects.get(connector=connector)
    assert provisioning.enabled is False
    assert provisioning.operations == ["create_users", "update_users", "deactivate_users", "push_groups"]
    assert provisioning.deprovision == "deactivate"
    assert provisioning.token_ciphertext == ""


def test_create_twingate_copies_the_seed_mappings(actor):
    connector = _create(actor)

    assert _rows(connector, MappingKind.SCIM_USER) == SEED_USER_ROWS
    assert _rows(connector, MappingKind.SCIM_GROUP) == SEED_GROUP_ROWS
    saml = list(
        AttributeMapping.objects.filter(connector=connector, kind=MappingKind.SAML)
        .order_by("position")
        .values_list("source", "target", "name_format", "position")
    )
    assert saml == [
        ("email", "email", BASIC, 0),
        ("first_name", "firstName", BASIC, 1),
        ("last_name", "lastName", BASIC, 2),
        ("groups", "groups", BASIC, 3),
    ]


@pytest.mark.parametrize(
    ("template", "kind", "has_sso", "has_provisioning", "kinds"),
    [
        ("generic-saml", ConnectorKind.SAML, True, False, {"saml"}),
        ("generic-scim", ConnectorKind.SCIM, False, True, {"scim_user", "scim_group"}),
        ("generic-saml-scim", ConnectorKind.SAML_SCIM, True, True, {"saml", "scim_user", "scim_group"}),
        ("google-workspace", ConnectorKind.SAML, True, False, set()),
        ("slack", ConnectorKind.SAML_SCIM, True, True, {"saml", "scim_user", "scim_group"}),
    ],
)
def test_create_from_each_kind_of_template(actor, template, kind, has_sso, has_provisioning, kinds):
    connector = _create(actor, template)

    assert connector.kind == kind
    assert (connector.has_sso, connector.has_provisioning) == (has_sso, has_provisioning)
    assert SsoSettings.objects.filter(connector=connector).exists() is has_sso
    assert ProvisioningSettings.objects.filter(connector=connector).exists() is has_provisioning
    assert set(AttributeMapping.objects.filter(connector=connector).values_list("kind", flat=True)) == kinds


def test_template_sso_and_provisioning_defaults_are_copied(actor):
    slack = _create(actor, "slack")

    assert slack.sso.sp_entity_id == "https://slack.com"
    assert (slack.sso.nameid_format, slack.sso.nameid_property) == ("persistent", "id")
    assert slack.provisioning.rate_limit_per_second == 3


def test_create_bookmark(actor):
    connector = _create(actor, "bookmark", name="Wiki", bookmark_url="https://wiki.example.com/login")

    assert connector.kind == ConnectorKind.BOOKMARK
    assert connector.bookmark_url == "https://wiki.example.com/login"
    assert not connector.has_sso and not connector.has_provisioning
    assert not SsoSettings.objects.filter(connector=connector).exists()
    assert not ProvisioningSettings.objects.filter(connector=connector).exists()
    assert not AttributeMapping.objects.filter(connector=connector).exists()


def test_bookmark_needs_its_url(actor):
    errors = _refused(services.connector_create, actor=actor, template="bookmark", name="Wiki")

    assert errors == {"bookmark_url": ["A bookmark needs the app's sign-in URL."]}
    assert not Connector.objects.exists()


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,<script>x</script>", "wiki.example.com"])
def test_bookmark_url_must_be_a_web_url(actor, url):
    errors = _refused(services.connector_create, actor=actor, template="bookmark", name="Wiki", bookmark_url=url)

    assert "bookmark URL" in errors["bookmark_url"][0]


def test_bookmark_takes_no_sso_or_provisioning(actor):
    errors = _refused(
        services.connector_create,
        actor=actor,
        template="bookmark",
        bookmark_url="https://wiki.example.com",
        sso={"sp_entity_id": "x"},
        provisioning={"enabled": False},
    )

    assert errors["sso"] == ["A Bookmark has no SSO settings."]
    assert errors["provisioning"] == ["A Bookmark has no Identity Management settings."]


def test_saml_only_takes_no_provisioning_and_scim_only_no_sso(actor):
    saml = _refused(services.connector_create, actor=actor, template="generic-saml", provisioning={"enabled": False})
    scim = _refused(services.connector_create, actor=actor, template="generic-scim", sso={"sp_entity_id": "x"})

    assert saml == {"provisioning": ["A SAML app has no Identity Management settings."]}
    assert scim == {"sso": ["A SCIM-only app has no SSO settings."]}


def test_create_with_settings(actor, cert_pem):
    connector = _create(
        actor,
        name="  Acme VPN  ",
        description="VPN for staff",
        enabled=True,
        sso={
            "sp_entity_id": "https://vpn.acme.test",
            "acs_urls": [{"url": "https://vpn.acme.test/acs"}],
            "nameid_format": "persistent",
            "nameid_property": "employee_id",
            "sp_signing_cert": cert_pem,
            "require_signed_requests": True,
        },
        provisioning={"enabled": True, "base_url": SCIM_URL + "/", "token": TOKEN, "rate_limit_per_second": 0},
    )

    connector = _fresh(connector)
    assert (connector.name, connector.slug, connector.enabled) == ("Acme VPN", "acme-vpn", True)
    assert connector.sso.acs_urls == [{"url": "https://vpn.acme.test/acs", "binding": BINDING_POST, "index": 0}]
    assert connector.sso.require_signed_requests is True
    assert connector.provisioning.base_url == SCIM_URL  # without the trailing slash
    assert connector.provisioning.rate_limit_per_second == 0
    assert decrypt_secret(connector.provisioning.token_ciphertext) == TOKEN


def test_unknown_template_is_refused(actor):
    errors = _refused(services.connector_create, actor=actor, template="no-such-app")

    assert errors == {"template": ["No catalog template 'no-such-app'."]}


@pytest.mark.parametrize("field", ["kind", "idp_entity_id", "template_slug", "created"])
def test_create_refuses_unknown_or_read_only_fields(actor, field):
    errors = _refused(services.connector_create, actor=actor, template="twingate", **{field: "x"})

    assert errors == {field: ["Unknown or read-only field."]}


@pytest.mark.parametrize(
    ("name", "error"), [("   ", "This field is required."), ("x" * 101, "At most 100 characters.")]
)
def test_name_is_required_and_bounded(actor, name, error):
    assert _refused(services.connector_create, actor=actor, template="twingate", name=name) == {"name": [error]}


@pytest.mark.parametrize(
    ("logo", "ok"),
    [
        ("connectors/logos/generic-saml.svg", True),
        ("https://cdn.example.com/logo.svg", True),
        ("http://cdn.example.com/logo.svg", False),
        ("javascript:alert(1)", False),
        ("/etc/passwd", False),
    ],
)
def test_logo_is_a_catalog_logo_or_https(actor, logo, ok):
    if ok:
        assert _create(actor, logo=logo).logo == logo
    else:
        assert "logo" in _refused(services.connector_create, actor=actor, template="twingate", logo=logo)


# --- Slugs ----------------------------------------------------------------------------------------


def test_slug_comes_from_the_name_and_is_suffixed_when_taken(actor):
    first = _create(actor, name="Twingate")
    second = _create(actor, name="Twingate")
    third = _create(actor, name="twingate!")

    assert [first.slug, second.slug, third.slug] == ["twingate", "twingate-2", "twingate-3"]
    assert len({first.idp_entity_id, second.idp_entity_id, third.idp_entity_id}) == 3
    assert second.idp_entity_id.endswith("/saml/idp/twingate-2/metadata")


def test_slug_of_a_name_without_latin_letters(actor):
    assert _create(actor, name="日本語").slug == "app"


def test_slug_of_a_long_name_is_cut(actor):
    connector = _create(actor, name="A" * 100)

    assert connector.slug == "a" * 56


def test_explicit_slug_is_used(actor):
    connector = _create(actor, name="Twingate", slug="tg-prod")

    assert connector.slug == "tg-prod"
    assert connector.idp_entity_id.endswith("/saml/idp/tg-prod/metadata")


def test_explicit_slug_must_be_unique(actor):
    _create(actor, slug="tg-prod")

    errors = _refused(services.connector_create, actor=actor, template="twingate", slug="tg-prod")

    assert errors == {"slug": ["A connector with this slug already exists."]}
    assert Connector.objects.count() == 1


def test_console_path_words_are_not_slugs(actor):
    # /console/connectors/catalog/ is the catalog page, not a connector called "Catalog".
    assert _create(actor, name="Catalog").slug == "catalog-2"
    assert _create(actor, name="New").slug == "new-2"
    errors = _refused(services.connector_create, actor=actor, template="twingate", slug="catalog")
    assert errors == {"slug": ["'catalog' is reserved; choose another slug."]}


@pytest.mark.parametrize("slug", ["TG", "tg prod", "tg/prod", "tg_prod!", "-"])
def test_explicit_slug_must_be_a_slug(actor, slug):
    errors = _refused(services.connector_create, actor=actor, template="twingate", slug=slug)

    assert errors == {"slug": ["Use lowercase letters, digits and hyphens only."]}


def test_explicit_slug_is_bounded(actor):
    errors = _refused(services.connector_create, actor=actor, template="twingate", slug="a" * 65)

    assert errors == {"slug": ["At most 64 characters."]}


# --- Fixed fields ---------------------------------------------------------------------------------


@pytest.mark.parametrize("field", services.FIXED_FIELDS)
def test_fixed_fields_cannot_be_updated(actor, field):
    connector = _create(actor)
    before = {f: getattr(connector, f) for f in services.FIXED_FIELDS}
    events = AuditEvent.objects.count()

    with pytest.raises(FixedFieldError) as excinfo:
        services.connector_update(actor=actor, connector=connector, name="Renamed", **{field: "changed"})

    error = excinfo.value
    assert isinstance(error, ApplicationError)
    assert error.code == "immutable"
    assert error.extra == {"field": field}
    assert error.message.startswith(f"{field} is fixed when the connector is created")
    assert "delete the connector and create it again" in error.message
    connector = _fresh(connector)
    assert {f: getattr(connector, f) for f in services.FIXED_FIELDS} == before
    assert connector.name == "Twingate"
    assert AuditEvent.objects.count() == events


def test_fixed_fields_cover_the_idp_urls():
    assert {"slug", "idp_entity_id", "sso_url"} <= set(services.FIXED_FIELDS)


# --- SSO settings ---------------------------------------------------------------------------------


def _update_sso(actor, connector, **sso):
    return services.connector_update(actor=actor, connector=connector, sso=sso)


def test_sha1_is_refused_by_default(actor):
    connector = _create(actor)

    errors = _refused(
        services.connector_update, actor=actor, connector=connector, sso={"signature_algorithm": "rsa-sha1"}
    )

    assert list(errors) == ["sso.signature_algorithm"]
    assert "RSA-SHA1 is insecure" in errors["sso.signature_algorithm"][0]
    assert "allow_sha1" in errors["sso.signature_algorithm"][0]
    assert _fresh(connector).sso.signature_algorithm == "rsa-sha256"


def test_sha1_is_accepted_with_the_explicit_override(actor):
    connector = _create(actor)

    _update_sso(actor, connector, signature_algorithm="rsa-sha1", allow_sha1=True)

    sso = _fresh(connector).sso
    assert (sso.signature_algorithm, sso.allow_sha1) == ("rsa-sha1", True)
    # Taking the override away while SHA-1 is still selected is refused.
    errors = _refused(services.connector_update, actor=actor, connector=connector, sso={"allow_sha1": False})
    assert "sso.signature_algorithm" in errors


def test_sha1_at_creation_is_refused_too(actor):
    errors = _refused(
        services.connector_create, actor=actor, template="generic-saml", sso={"signature_algorithm": "rsa-sha1"}
    )

    assert list(errors) == ["sso.signature_algorithm"]


@pytest.mark.parametrize("algorithm", ["rsa-sha256", "rsa-sha384", "rsa-sha512"])
def test_sha2_algorithms_are_accepted(actor, algorithm):
    connector = _create(actor)

    _update_sso(actor, connector, signature_algorithm=algorithm)

    assert _fresh(connector).sso.signature_algorithm == algorithm


@pytest.mark.parametrize("algorithm", ["dsa-sha1", "hmac-sha256", "", "RSA-SHA256"])
def test_unknown_signature_algorithm_is_refused(actor, algorithm):
    connector = _create(actor)

    errors = _refused(
        services.connector_update, actor=actor, connector=connector, sso={"signature_algorithm": algorithm}
    )

    assert errors["sso.signature_algorithm"][0].startswith("Choose one of rsa-sha256")


def test_signed_requests_need_the_sp_signing_certificate(actor, cert_pem):
    connector = _create(actor)

    errors = _refused(
        services.connector_update, actor=actor, connector=connector, sso={"require_signed_requests": True}
    )

    assert errors == {
        "sso.sp_signing_cert": ["Signed AuthnRequests are required, so the SP's signing certificate is needed."]
    }
    _update_sso(actor, connector, require_signed_requests=True, sp_signing_cert=certificate_base64(cert_pem))
    sso = _fresh(connector).sso
    assert sso.require_signed_requests is True
    assert sso.sp_signing_cert == cert_pem  # bare base64 DER is stored as PEM
    # and the certificate cannot then be removed while signed requests are required
    errors = _refused(services.connector_update, actor=actor, connector=connector, sso={"sp_signing_cert": ""})
    assert "sso.sp_signing_cert" in errors


@pytest.mark.parametrize("field", ["sp_signing_cert", "sp_encryption_cert"])
def test_invalid_certificates_are_refused(actor, field):
    connector = _create(actor)

    errors = _refused(services.connector_update, actor=actor, connector=connector, sso={field: "not a certificate"})

    assert errors == {f"sso.{field}": ["This is not an X.509 certificate (PEM or base64)."]}


def test_encryption_certificate_is_stored_as_pem(actor, cert_pem):
    connector = _create(actor)

    _update_sso(actor, connector, sp_encryption_cert=cert_pem)

    assert _fresh(connector).sso.sp_encryption_cert == cert_pem


def test_response_or_assertion_must_be_signed(actor):
    connector = _create(actor)

    errors = _refused(
        services.connector_update,
        actor=actor,
        connector=connector,
        sso={"sign_response": False, "sign_assertion": False},
    )

    assert errors == {"sso.sign_assertion": ["Sign the response, the assertion or both."]}
    _update_sso(actor, connector, sign_response=False)
    _update_sso(actor, connector, sign_response=True, sign_assertion=False)
    sso = _fresh(connector).sso
    assert (sso.sign_response, sso.sign_assertion) == (True, False)


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_booleans_must_be_booleans(actor, value):
    connector = _create(actor)

    errors = _refused(services.connector_update, actor=actor, connector=connector, sso={"sign_response": value})

    assert errors == {"sso.sign_response": ["Must be true or false."]}


@pytest.mark.parametrize("nameid_format", ["email", "persistent", "unspecified", "transient"])
def test_nameid_formats(actor, nameid_format):
    connector = _create(actor)

    _update_sso(actor, connector, nameid_format=nameid_format)

    assert _fresh(connector).sso.nameid_format == nameid_format


@pytest.mark.parametrize("nameid_property", ["username", "email", "id", "employee_id"])
def test_nameid_properties(actor, nameid_property):
    connector = _create(actor)

    _update_sso(actor, connector, nameid_property=nameid_property)

    assert _fresh(connector).sso.nameid_property == nameid_property


@pytest.mark.parametrize(("field", "value"), [("nameid_format", "x509"), ("nameid_property", "phone")])
def test_unknown_nameid_choices_are_refused(actor, field, value):
    connector = _create(actor)

    errors = _refused(services.connector_update, actor=actor, connector=connector, sso={field: value})

    assert errors[f"sso.{field}"][0].startswith("Choose one of ")


@pytest.mark.parametrize(
    ("field", "value", "ok"),
    [
        ("assertion_lifetime_seconds", 30, True),
        ("assertion_lifetime_seconds", 3600, True),
        ("assertion_lifetime_seconds", 29, False),
        ("assertion_lifetime_seconds", 3601, False),
        ("session_lifetime_seconds", 30 * 24 * 3600, True),
        ("session_lifetime_seconds", 30 * 24 * 3600 + 1, False),
        ("session_lifetime_seconds", True, False),
        ("session_lifetime_seconds", "600", False),
    ],
)
def test_lifetimes_are_bounded(actor, field, value, ok):
    connector = _create(actor)

    if ok:
        _update_sso(actor, connector, **{field: value})
        assert getattr(_fresh(connector).sso, field) == value
    else:
        errors = _refused(services.connector_update, actor=actor, connector=connector, sso={field: value})
        assert list(errors) == [f"sso.{field}"]


def test_unknown_sso_field_is_refused(actor):
    connector = _create(actor)

    errors = _refused(services.connector_update, actor=actor, connector=connector, sso={"idp_entity_id": "x"})

    assert errors == {"sso.idp_entity_id": ["Unknown or read-only field."]}


@pytest.mark.parametrize(
    "url",
    [
        "https://sp.example.com/saml/acs",
        "https://sp.example.com:8443/saml/acs?tenant=1",
        "http://127.0.0.1:8080/acs",
        "http://127.9.8.7/acs",
        "http://[::1]:8443/acs",
        "http://localhost/acs",
        "HTTP://LOCALHOST:9000/acs",
    ],
)
def test_acs_url_is_https_or_loopback_http(actor, url):
    connector = _create(actor)

    _update_sso(actor, connector, acs_urls=[{"url": url}])

    assert _fresh(connector).sso.acs_urls == [{"url": url, "binding": BINDING_POST, "index": 0}]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://sp.example.com/acs", "must use https (http is allowed only for 127.0.0.1, ::1 and localhost)"),
        ("http://10.0.0.5/acs", "must use https"),
        ("http://127.0.0.1.nip.io/acs", "must use https"),
        ("http://localhost.evil.example/acs", "must use https"),
        ("javascript:alert(document.cookie)", "must start with https:// (not javascript)"),
        ("data:text/html;base64,PHNjcmlwdD4=", "must start with https:// (not data)"),
        ("ftp://sp.example.com/acs", "must start with https:// (not ftp)"),
        ("/saml/acs", "must start with https:// (not a relative path)"),
        ("https:///acs", "has no host"),
        ("https://user:secret@sp.example.com/acs", "must not contain credentials"),
        ("https://sp.example.com/a cs", "spaces or control characters"),
        ("https://sp.example.com/" + "a" * 2000, "longer than 2000 characters"),
    ],
)
def test_bad_acs_urls_are_refused(actor, url, message):
    connector = _create(actor)

    errors = _refused(services.connector_update, actor=actor, connector=connector, sso={"acs_urls": [{"url": url}]})

    assert list(errors) == ["sso.acs_urls"]
    assert errors["sso.acs_urls"][0].startswith("Entry 1: The ACS URL ")
    assert message in errors["sso.acs_urls"][0]


def test_acs_urls_keep_their_order_and_the_first_is_the_default(actor):
    connector = _create(actor)

    _update_sso(
        actor,
        connector,
        acs_urls=[
            "https://sp.example.com/acs/b",
            {"url": "https://sp.example.com/acs/a", "binding": BINDING_POST, "index": 7},
        ],
    )

    sso = _fresh(connector).sso
    assert sso.acs_urls == [
        {"url": "https://sp.example.com/acs/b", "binding": BINDING_POST, "index": 0},
        {"url": "https://sp.example.com/acs/a", "binding": BINDING_POST, "index": 7},
    ]
    assert sso.default_acs == sso.acs_urls[0]


@pytest.mark.parametrize(
    ("acs_urls", "message"),
    [
        ([{"url": "https://a.example.com", "binding": BINDING_REDIRECT}], "only the HTTP-POST binding"),
        ([{"url": "https://a.example.com", "index": 1}, {"url": "https://b.example.com", "index": 1}], "used twice"),
        ([{"url": "https://a.example.com", "index": -1}], "index must be a whole number from 0 to 65535"),
        ([{"url": "https://a.example.com", "index": "1"}], "index must be a whole number"),
        ([{"url": "https://a.example.com", "index": True}], "index must be a whole number"),
        ([42], "give an object with a url"),
        ("https://a.example.com", "Give a list of {url, binding, index}."),
        ([f"https://sp.example.com/{n}" for n in range(21)], "At most 20 ACS URLs."),
    ],
)
def test_acs_url_list_rules(actor, acs_urls, message):
    connector = _create(actor)

    errors = _refused(services.connector_update, actor=actor, connector=connector, sso={"acs_urls": acs_urls})

    assert message in " ".join(errors["sso.acs_urls"])


def test_every_bad_acs_entry_is_reported(actor):
    connector = _create(actor)

    errors = _refused(
        services.connector_update,
        actor=actor,
        connector=connector,
        sso={"acs_urls": ["https://ok.example.com", "http://bad.example.com", "javascript:x"]},
    )

    assert [message[:8] for message in errors["sso.acs_urls"]] == ["Entry 2:", "Entry 3:"]


@pytest.mark.parametrize("field", ["slo_url", "sp_login_url"])
def test_slo_and_login_urls_are_https_or_loopback(actor, field):
    connector = _create(actor)

    _update_sso(actor, connector, **{field: "https://sp.example.com/x"})
    assert getattr(_fresh(connector).sso, field) == "https://sp.example.com/x"
    _update_sso(actor, connector, **{field: ""})
    assert getattr(_fresh(connector).sso, field) == ""

    errors = _refused(services.connector_update, actor=actor, connector=connector, sso={field: "javascript:alert(1)"})
    assert list(errors) == [f"sso.{field}"]


def test_relay_state_urls(actor):
    connector = _create(actor)

    _update_sso(actor, connector, relay_state_urls=["https://sp.example.com/home", "http://localhost/dev"])
    assert _fresh(connector).sso.relay_state_urls == ["https://sp.example.com/home", "http://localhost/dev"]

    errors = _refused(
        services.connector_update, actor=actor, connector=connector, sso={"relay_state_urls": ["javascript:x"]}
    )
    assert list(errors) == ["sso.relay_state_urls"]


def test_update_sso_of_a_scim_only_connector_is_refused(actor):
    connector = _create(actor, "generic-scim")

    errors = _refused(services.connector_update, actor=actor, connector=connector, sso={"sp_entity_id": "x"})

    assert errors == {"sso": ["A SCIM-only app has no SSO settings."]}


def test_partial_sso_update_keeps_the_other_fields(actor):
    connector = _create(actor)
    _update_sso(actor, connector, sp_entity_id="https://sp.example.com", acs_urls=["https://sp.example.com/acs"])

    _update_sso(actor, connector, nameid_format="persistent")

    sso = _fresh(connector).sso
    assert sso.sp_entity_id == "https://sp.example.com"
    assert sso.acs_urls[0]["url"] == "https://sp.example.com/acs"
    assert sso.nameid_format == "persistent"


# --- Identity Management settings -----------------------------------------------------------------


def _update_provisioning(actor, connector, **provisioning):
    return services.connector_update(actor=actor, connector=connector, provisioning=provisioning)


def test_enabled_provisioning_needs_base_url_and_token(actor):
    connector = _create(actor)

    errors = _refused(services.connector_update, actor=actor, connector=connector, provisioning={"enabled": True})

    assert errors == {
        "provisioning.base_url": ["Identity Management is enabled, so the SCIM base URL is needed."],
        "provisioning.token": ["Identity Management is enabled, so the app's bearer token is needed."],
    }
    only_url = _refused(
        services.connector_update,
        actor=actor,
        connector=connector,
        provisioning={"enabled": True, "base_url": SCIM_URL},
    )
    assert list(only_url) == ["provisioning.token"]
    assert _fresh(connector).provisioning.enabled is False


def test_enabled_provisioning_with_base_url_and_token_at_creation(actor):
    connector = _create(actor, provisioning={"enabled": True, "base_url": SCIM_URL, "token": TOKEN})

    provisioning = _fresh(connector).provisioning
    assert (provisioning.enabled, provisioning.base_url, provisioning.token_set) == (True, SCIM_URL, True)


def test_token_cannot_be_cleared_while_enabled(actor):
    connector = _create(actor, provisioning={"enabled": True, "base_url": SCIM_URL, "token": TOKEN})

    errors = _refused(services.connector_update, actor=actor, connector=connector, provisioning={"token": ""})

    assert list(errors) == ["provisioning.token"]
    assert decrypt_secret(_fresh(connector).provisioning.token_ciphertext) == TOKEN


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/scim/v2",
        "https://192.168.1.20/scim",
        "https://172.16.0.1/scim",
        "http://0.0.0.0/scim",
        "http://[fe80::1]/scim",
        "http://[::ffff:169.254.169.254]/scim",
    ],
)
def test_base_url_to_a_private_or_link_local_address_is_refused(actor, url):
    connector = _create(actor)

    errors = _refused(services.connector_update, actor=actor, connector=connector, provisioning={"base_url": url})

    assert list(errors) == ["provisioning.base_url"]
    assert "the portal does not contact" in errors["provisioning.base_url"][0]
    assert _fresh(connector).provisioning.base_url == ""


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://93.184.216.34/scim", "Only http and https URLs can be used."),
        ("https://admin:pw@93.184.216.34/scim", "Credentials in the URL are not allowed"),
        ("https://93.184.216.34:99999/scim", "invalid port"),
        ("https://no-such-host.invalid/scim", "cannot be resolved"),
    ],
)
def test_base_url_other_refusals(actor, url, message):
    connector = _create(actor)

    errors = _refused(services.connector_update, actor=actor, connector=connector, provisioning={"base_url": url})

    assert message in errors["provisioning.base_url"][0]


@pytest.mark.parametrize("url", ["http://127.0.0.1:8089/scim/v2", "http://localhost:8089/scim", "http://[::1]/scim"])
def test_loopback_base_url_is_allowed_in_tests(actor, url, settings):
    assert settings.OUTBOUND_ALLOW_LOOPBACK is True

    connector = _create(actor, provisioning={"base_url": url})

    assert _fresh(connector).provisioning.base_url == url


@pytest.mark.parametrize("url", ["http://127.0.0.1:8089/scim/v2", "http://localhost:8089/scim"])
def test_loopback_base_url_is_refused_when_not_allowed(actor, url, settings):
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    connector = _create(actor)

    errors = _refused(services.connector_update, actor=actor, connector=connector, provisioning={"base_url": url})

    assert "loopback" in errors["provisioning.base_url"][0]


def test_public_base_url_is_allowed(actor):
    connector = _create(actor, provisioning={"base_url": "https://93.184.216.34/scim/v2/"})

    assert _fresh(connector).provisioning.base_url == "https://93.184.216.34/scim/v2"


def test_token_is_encrypted_at_rest(actor):
    connector = _create(actor, provisioning={"token": f"  {TOKEN}  "})

    stored = _fresh(connector).provisioning
    assert stored.token_set is True
    assert stored.token_updated_at is not None
    assert TOKEN not in stored.token_ciphertext
    assert stored.token_ciphertext.startswith("gAAAAA")  # a Fernet token
    assert decrypt_secret(stored.token_ciphertext) == TOKEN  # surrounding spaces dropped
    # The same token encrypts differently each time (random IV): the ciphertext reveals nothing.
    other = _create(actor, name="Twingate staging", provisioning={"token": TOKEN})
    again = _fresh(other).provisioning.token_ciphertext
    assert again != stored.token_ciphertext
    assert decrypt_secret(again) == TOKEN


def test_token_is_encrypted_with_the_key_from_the_environment(actor, settings):
    key = Fernet.generate_key().decode()
    settings.SECRETS_ENCRYPTION_KEYS = [key]

    connector = _create(actor, provisioning={"token": TOKEN})

    ciphertext = _fresh(connector).provisioning.token_ciphertext
    assert Fernet(key.encode()).decrypt(ciphertext.encode()).decode() == TOKEN
    assert decrypt_secret(ciphertext) == TOKEN


def test_token_none_keeps_and_empty_clears_it(actor):
    connector = _create(actor, provisioning={"token": TOKEN})
    ciphertext = _fresh(connector).provisioning.token_ciphertext

    _update_provisioning(actor, connector, token=None, rate_limit_per_second=5)
    assert _fresh(connector).provisioning.token_ciphertext == ciphertext

    _update_provisioning(actor, connector, token="")
    assert _fresh(connector).provisioning.token_set is False


@pytest.mark.parametrize("token", ["two words", "tab\there", "x" * 4097, "new\nline"])
def test_malformed_tokens_are_refused_without_echoing_them(actor, token):
    connector = _create(actor)

    errors = _refused(services.connector_update, actor=actor, connector=connector, provisioning={"token": token})

    assert errors == {"provisioning.token": ["The token must be at most 4096 printable characters without spaces."]}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("operations", ["create_users", "launch_rockets"], "A list of: create_users"),
        ("operations", "create_users", "A list of: create_users"),
        ("deprovision", "archive", "Choose one of deactivate, delete."),
        ("update_method", "post", "Choose one of patch, put."),
        ("rate_limit_per_second", -1, "from 0 (no limit) to 10000"),
        ("rate_limit_per_second", 10_001, "from 0 (no limit) to 10000"),
        ("group_members_per_request", 0, "members per request from 1 to 10000"),
        ("group_members_per_request", 10_001, "members per request from 1 to 10000"),
        ("group_members_per_request", "500", "members per request from 1 to 10000"),
        ("enabled", "true", "Must be true or false."),
        ("deprovision_threshold_percent", 101, "from 0 to 100"),
        ("paused", True, "Unknown or read-only field."),
        ("token_ciphertext", "x", "Unknown or read-only field."),
    ],
)
def test_provisioning_field_rules(actor, field, value, message):
    connector = _create(actor)

    errors = _refused(services.connector_update, actor=actor, connector=connector, provisioning={field: value})

    assert message in errors[f"provisioning.{field}"][0]


def test_operations_and_deprovisioning(actor):
    connector = _create(
        actor,
        provisioning={"operations": ["push_groups", "delete_users", "create_users"], "deprovision": "delete"},
    )

    provisioning = _fresh(connector).provisioning
    assert provisioning.operations == ["create_users", "delete_users", "push_groups"]
    assert provisioning.deprovision == "delete"


def test_update_provisioning_of_a_saml_only_connector_is_refused(actor):
    connector = _create(actor, "generic-saml")

    errors = _refused(services.connector_update, actor=actor, connector=connector, provisioning={"token": TOKEN})

    assert errors == {"provisioning": ["A SAML app has no Identity Management settings."]}


@pytest.mark.parametrize("template", ["generic-saml", "bookmark", "twingate"])
def test_connector_can_be_enabled_after_creation(actor, template):
    extra = {"bookmark_url": "https://wiki.example.com"} if template == "bookmark" else {}
    connector = _create(actor, template, **extra)

    services.connector_update(actor=actor, connector=connector, enabled=True)

    assert _fresh(connector).enabled is True
    [event] = _events("connector.activated")
    assert (event.before, event.after) == ({"enabled": False}, {"enabled": True})


def test_scim_base_url_and_token_can_be_set_after_creation(actor):
    connector = _create(actor)

    _update_provisioning(actor, connector, base_url=SCIM_URL + "/", token=TOKEN, enabled=True)

    provisioning = _fresh(connector).provisioning
    assert (provisioning.enabled, provisioning.base_url) == (True, SCIM_URL)
    assert decrypt_secret(provisioning.token_ciphertext) == TOKEN
    [event] = _events("connector.provisioning.update")
    assert event.after["provisioning"]["token"] == "changed"
    assert TOKEN not in _dump(event)


# --- Nothing half-written -------------------------------------------------------------------------


def test_failed_create_writes_nothing(actor):
    before = AuditEvent.objects.count()

    errors = _refused(
        services.connector_create,
        actor=actor,
        template="twingate",
        name="Half",
        sso={"acs_urls": ["http://sp.example.com/acs"]},
        provisioning={"token": TOKEN, "base_url": "http://169.254.169.254/"},
    )

    assert set(errors) == {"sso.acs_urls", "provisioning.base_url"}  # every problem at once
    assert not Connector.objects.exists()
    assert not SsoSettings.objects.exists()
    assert not ProvisioningSettings.objects.exists()
    assert not AttributeMapping.objects.exists()
    assert AuditEvent.objects.count() == before


def test_failed_update_writes_nothing(actor):
    connector = _create(actor)
    events = AuditEvent.objects.count()

    _refused(
        services.connector_update,
        actor=actor,
        connector=connector,
        name="Renamed",
        enabled=True,
        sso={"sp_entity_id": "https://new.example.com", "acs_urls": ["javascript:alert(1)"]},
        provisioning={"token": TOKEN, "base_url": SCIM_URL, "deprovision": "archive"},
    )

    connector = _fresh(connector)
    assert (connector.name, connector.enabled) == ("Twingate", False)
    assert connector.sso.sp_entity_id == ""
    assert connector.provisioning.token_ciphertext == ""
    assert connector.provisioning.base_url == ""
    assert AuditEvent.objects.count() == events


def test_caller_object_is_not_changed_by_a_failed_update(actor):
    connector = _create(actor)

    _refused(services.connector_update, actor=actor, connector=connector, name="Renamed", logo="javascript:x")

    assert connector.name == "Twingate"


# --- Audit ----------------------------------------------------------------------------------------


def test_create_is_audited_with_the_token_only_as_set(actor):
    connector = _create(actor, provisioning={"base_url": SCIM_URL, "token": TOKEN})

    [event] = _events("connector.create")
    assert event.actor == actor
    assert (event.target_type, event.target_id, event.target_label) == (
        "connectors.connector",
        str(connector.pk),
        "Twingate",
    )
    assert event.before is None
    assert event.after["slug"] == "twingate"
    assert event.after["kind"] == "saml_scim"
    assert event.after["sso"]["signature_algorithm"] == "rsa-sha256"
    assert event.after["provisioning"]["token"] == "set"
    assert event.after["provisioning"]["token_set"] is True
    assert event.after["provisioning"]["base_url"] == SCIM_URL
    dumped = _dump(event)
    assert TOKEN not in dumped
    assert _fresh(connector).provisioning.token_ciphertext not in dumped
    assert "token_ciphertext" not in dumped


def test_create_without_token_has_no_token_marker(actor):
    _create(actor)

    [event] = _events("connector.create")
    assert "token" not in event.after["provisioning"]
    assert event.after["provisioning"]["token_set"] is False


def test_update_is_audited_with_only_what_changed(actor):
    connector = _create(actor)

    services.connector_update(
        actor=actor, connector=connector, name="Twingate Prod", sso={"nameid_format": "persistent"}
    )

    [event] = _events("connector.update")
    assert event.actor == actor
    assert (event.before, event.after) == ({"name": "Twingate"}, {"name": "Twingate Prod"})
    [sso] = _events("connector.sso.update")
    assert (sso.before, sso.after) == ({"sso": {"nameid_format": "email"}}, {"sso": {"nameid_format": "persistent"}})


def test_token_change_is_audited_as_changed(actor):
    connector = _create(actor, provisioning={"token": TOKEN})

    _update_provisioning(actor, connector, token=OTHER_TOKEN)

    [event] = _events("connector.provisioning.update")
    assert event.after["provisioning"]["token"] == "changed"
    dumped = _dump(event)
    for secret in (TOKEN, OTHER_TOKEN, _fresh(connector).provisioning.token_ciphertext):
        assert secret not in dumped


def test_unchanged_update_is_not_audited(actor):
    connector = _create(actor)

    services.connector_update(actor=actor, connector=connector, name="Twingate", sso={"nameid_format": "email"})

    assert not AuditEvent.objects.filter(action__startswith="connector.").exclude(action="connector.create").exists()


def test_delete_is_audited_and_keeps_directory_objects(actor):
    connector = _create(actor, provisioning={"token": TOKEN})
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    group = GroupFactory(name="Engineering")
    directory.group_add_members(actor=None, group=group, users=[bob])
    services.assignment_create(actor=actor, connector=connector, user=alice)
    services.assignment_create(actor=actor, connector=connector, group=group)
    users, groups = User.objects.count(), Group.objects.count()
    pk = connector.pk

    services.connector_delete(actor=actor, connector=connector)

    assert not Connector.objects.filter(pk=pk).exists()
    assert not Assignment.objects.exists()
    assert not AttributeMapping.objects.exists()
    assert not SsoSettings.objects.exists()
    assert not ProvisioningSettings.objects.exists()
    assert User.objects.count() == users
    assert Group.objects.count() == groups
    assert Membership.objects.filter(group=group, user=bob).exists()
    [event] = _events("connector.delete")
    assert event.target_id == str(pk)
    assert event.before["slug"] == "twingate"
    assert event.before["provisioning"]["token_set"] is True
    assert TOKEN not in _dump(event)


def test_slug_is_free_again_after_delete(actor):
    services.connector_delete(actor=actor, connector=_create(actor))

    assert _create(actor).slug == "twingate"


# --- SP metadata ----------------------------------------------------------------------------------


def test_metadata_import_fills_the_sso_settings(actor, cert_pem):
    connector = _create(actor)

    metadata_refresh.connector_import_sp_metadata(
        actor=actor, connector=connector, xml=_sp_metadata(cert_pem, extra_sp_attrs=' AuthnRequestsSigned="true"')
    )

    sso = _fresh(connector).sso
    assert sso.sp_entity_id == "https://sp.example.com/saml"
    assert [item["url"] for item in sso.acs_urls] == [
        "https://sp.example.com/saml/acs",
        "https://sp.example.com/saml/acs/2",
    ]
    assert sso.slo_url == "https://sp.example.com/saml/slo"
    assert sso.slo_binding == BINDING_REDIRECT
    assert sso.sp_signing_cert == cert_pem
    assert sso.nameid_format == "persistent"
    assert sso.nameid_property == "id"  # a persistent NameID must never change
    assert sso.require_signed_requests is True
    [event] = _events("connector.sp_metadata_import")
    assert event.after == {"sp_entity_id": "https://sp.example.com/saml", "source": "upload"}
    assert len(_events("connector.sso.update")) == 1


def test_metadata_import_on_a_scim_only_connector_is_refused(actor):
    connector = _create(actor, "generic-scim")

    with pytest.raises(ApplicationError) as excinfo:
        metadata_refresh.connector_import_sp_metadata(actor=actor, connector=connector, xml=_sp_metadata())

    assert excinfo.value.code == "no_sso"


def test_metadata_whose_values_break_a_rule_is_refused(actor):
    connector = _create(actor)

    errors = _refused(
        metadata_refresh.connector_import_sp_metadata,
        actor=actor,
        connector=connector,
        xml=_sp_metadata(acs="http://sp.example.com/saml/acs"),
    )

    assert list(errors) == ["xml"]
    assert errors["xml"][0].startswith("sso.acs_urls: Entry 1: The ACS URL must use https")
    assert _fresh(connector).sso.sp_entity_id == ""
    assert _events("connector.sp_metadata_import") == []


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        ('<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', "DTD or entity declarations"),
        ("not xml", "not well-formed XML"),
        (
            '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.example.com">'
            "<md:IDPSSODescriptor/></md:EntityDescriptor>",
            "is this an IdP's metadata",
        ),
    ],
)
def test_bad_metadata_is_refused_under_xml(actor, xml, message):
    connector = _create(actor)

    errors = _refused(metadata_refresh.connector_import_sp_metadata, actor=actor, connector=connector, xml=xml)

    assert list(errors) == ["xml"]
    assert message in errors["xml"][0]


def test_metadata_xml_or_url_not_both(actor):
    connector = _create(actor)

    both = _refused(
        metadata_refresh.connector_import_sp_metadata,
        actor=actor,
        connector=connector,
        xml="<x/>",
        url="https://x.test",
    )
    neither = _refused(metadata_refresh.connector_import_sp_metadata, actor=actor, connector=connector)

    assert both == neither == {"xml": ["Give the metadata XML or its URL, not both."]}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.0.0.1/metadata", "private"),
        ("javascript:alert(1)", "must start with https://"),
        ("file:///etc/passwd", "must start with https://"),
    ],
)
def test_metadata_url_is_guarded(actor, url, message):
    connector = _create(actor)

    errors = _refused(metadata_refresh.connector_import_sp_metadata, actor=actor, connector=connector, url=url)

    assert list(errors) == ["url"]
    assert message in errors["url"][0]


# --- Mappings -------------------------------------------------------------------------------------


def test_mappings_replace(actor):
    connector = _create(actor)
    rows = [
        {"source": "email", "target": "userName"},
        {"source": "{first_name}.{last_name}", "target": "displayName"},
        {"source": "status", "target": "active"},
        {
            "source": "employee_id",
            "target": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
        },
    ]

    created = services.mappings_replace(actor=actor, connector=connector, kind="scim_user", rows=rows)

    assert [(m.source, m.target, m.position) for m in created] == [
        (row["source"], row["target"], index) for index, row in enumerate(rows)
    ]
    assert _rows(connector, MappingKind.SCIM_USER) == [(row["source"], row["target"]) for row in rows]
    assert _rows(connector, MappingKind.SCIM_GROUP) == SEED_GROUP_ROWS  # other kinds untouched
    [event] = _events("connector.mappings.replace")
    assert event.before["scim_user"][0] == {"source": "username", "target": "userName", "name_format": ""}
    assert event.after["scim_user"] == [{**row, "name_format": ""} for row in rows]


def test_mappings_replace_with_the_same_rows_is_not_audited(actor):
    connector = _create(actor)
    rows = [{"source": s, "target": t} for s, t in SEED_USER_ROWS]

    services.mappings_replace(actor=actor, connector=connector, kind="scim_user", rows=rows)

    assert _events("connector.mappings.replace") == []


def test_mappings_replace_refuses_duplicate_targets_ignoring_case(actor):
    connector = _create(actor)
    rows = [
        {"source": "username", "target": "userName"},
        {"source": "email", "target": "USERNAME"},
        {"source": "email", "target": 'emails[type eq "work"].value'},
        {"source": "username", "target": 'Emails[type eq "work"].Value'},
    ]

    errors = _refused(services.mappings_replace, actor=actor, connector=connector, kind="scim_user", rows=rows)

    assert errors == {
        "rows.1.target": ["USERNAME is mapped twice."],
        "rows.3.target": ['Emails[type eq "work"].Value is mapped twice.'],
    }
    assert _rows(connector, MappingKind.SCIM_USER) == SEED_USER_ROWS


def test_mappings_replace_reports_each_bad_row(actor):
    connector = _create(actor)
    rows = [
        {"source": "username", "target": "userName"},
        {"source": "shoe_size", "target": "title"},
        {"source": "email", "target": "id"},
        {"source": "email", "target": "name"},
        {"source": "email", "target": "active"},
    ]

    errors = _refused(services.mappings_replace, actor=actor, connector=connector, kind="scim_user", rows=rows)

    assert set(errors) == {"rows.1.source", "rows.2.target", "rows.3.target", "rows.4.source"}
    assert "Unknown directory property 'shoe_size'" in errors["rows.1.source"][0]
    assert "cannot be mapped" in errors["rows.2.target"][0]
    assert "Name a sub-attribute of name" in errors["rows.3.target"][0]
    assert "active takes the status property" in errors["rows.4.source"][0]


def test_scim_users_need_a_username_mapping(actor):
    connector = _create(actor)

    errors = _refused(
        services.mappings_replace,
        actor=actor,
        connector=connector,
        kind="scim_user",
        rows=[{"source": "email", "target": 'emails[type eq "work"].value'}],
    )

    assert errors == {"target": ["SCIM users need a userName mapping."]}
    assert _rows(connector, MappingKind.SCIM_USER) == SEED_USER_ROWS


def test_scim_groups_need_a_display_name_mapping(actor):
    connector = _create(actor)

    errors = _refused(
        services.mappings_replace,
        actor=actor,
        connector=connector,
        kind="scim_group",
        rows=[{"source": "members", "target": "members"}],
    )

    assert errors == {"target": ["SCIM groups need a displayName mapping."]}


def test_saml_mappings_may_be_emptied_and_take_short_name_formats(actor):
    connector = _create(actor)

    services.mappings_replace(actor=actor, connector=connector, kind="saml", rows=[])
    assert _rows(connector, MappingKind.SAML) == []

    services.mappings_replace(
        actor=actor,
        connector=connector,
        kind="saml",
        rows=[
            {"source": "groups", "target": "memberOf", "name_format": "uri"},
            {"source": "email", "target": "Email", "name_format": ""},
            {"source": "email", "target": "email"},  # SAML attribute names are case-sensitive
        ],
    )
    stored = list(
        AttributeMapping.objects.filter(connector=connector, kind="saml")
        .order_by("position")
        .values_list("target", "name_format")
    )
    assert stored == [
        ("memberOf", "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"),
        ("Email", ""),
        ("email", ""),
    ]


@pytest.mark.parametrize(
    ("template", "kind", "message"),
    [
        ("generic-scim", "saml", "This connector has no SSO, so no SAML attributes."),
        ("generic-saml", "scim_user", "This connector has no Identity Management, so no SCIM mappings."),
        ("bookmark", "scim_group", "This connector has no Identity Management, so no SCIM mappings."),
        ("twingate", "ldap", "Choose one of scim_user, scim_group, saml, oidc."),
        ("twingate", "oidc", "This connector has no OpenID Connect, so no OIDC claims."),
    ],
)
def test_mapping_kind_must_fit_the_connector(actor, template, kind, message):
    extra = {"bookmark_url": "https://wiki.example.com"} if template == "bookmark" else {}
    connector = _create(actor, template, **extra)

    replace = _refused(services.mappings_replace, actor=actor, connector=connector, kind=kind, rows=[])
    create = _refused(
        services.mapping_create, actor=actor, connector=connector, kind=kind, source="email", target="email"
    )

    assert replace == create == {"kind": [message]}


def test_mapping_create_appends_and_is_audited(actor):
    connector = _create(actor)

    mapping = services.mapping_create(
        actor=actor, connector=connector, kind="scim_user", source=" {username}@corp.example ", target=" title "
    )

    assert (mapping.source, mapping.target, mapping.position) == ("{username}@corp.example", "title", 8)
    [event] = _events("connector.mapping.create")
    assert event.after == {
        "kind": "scim_user",
        "source": "{username}@corp.example",
        "target": "title",
        "name_format": "",
    }


def test_mapping_create_refuses_a_duplicate_target_ignoring_case(actor):
    connector = _create(actor)

    errors = _refused(
        services.mapping_create,
        actor=actor,
        connector=connector,
        kind="scim_user",
        source="email",
        target="DisplayName",
    )

    assert errors == {"target": ["DisplayName is already mapped; edit or delete that row."]}


@pytest.mark.parametrize(
    ("source", "target", "field"),
    [
        ("shoe_size", "title", "source"),
        ("{first_name", "title", "source"),
        ("{status}", "title", "source"),
        ("email", "emails[type eq work].value", "target"),
        ("email", "meta", "target"),
        ("email", "favouriteColour", "target"),
    ],
)
def test_mapping_create_refuses_bad_rows(actor, source, target, field):
    connector = _create(actor)

    errors = _refused(
        services.mapping_create, actor=actor, connector=connector, kind="scim_user", source=source, target=target
    )

    assert list(errors) == [field]


def test_username_mapping_cannot_be_deleted(actor):
    connector = _create(actor)
    user_name = AttributeMapping.objects.get(connector=connector, kind="scim_user", target="userName")

    errors = _refused(services.mapping_delete, actor=actor, mapping=user_name)

    assert errors == {"target": ["SCIM users need a userName mapping."]}
    assert AttributeMapping.objects.filter(pk=user_name.pk).exists()
    assert _events("connector.mapping.delete") == []


def test_group_display_name_mapping_cannot_be_deleted(actor):
    connector = _create(actor)
    display_name = AttributeMapping.objects.get(connector=connector, kind="scim_group", target="displayName")

    errors = _refused(services.mapping_delete, actor=actor, mapping=display_name)

    assert errors == {"target": ["SCIM groups need a displayName mapping."]}


def test_other_mappings_can_be_deleted(actor):
    connector = _create(actor)
    external_id = AttributeMapping.objects.get(connector=connector, kind="scim_user", target="externalId")
    groups_attribute = AttributeMapping.objects.get(connector=connector, kind="saml", target="groups")

    services.mapping_delete(actor=actor, mapping=external_id)
    services.mapping_delete(actor=actor, mapping=groups_attribute)

    assert not AttributeMapping.objects.filter(pk__in=[external_id.pk, groups_attribute.pk]).exists()
    events = _events("connector.mapping.delete")
    assert [event.before for event in events] == [
        {"kind": "scim_user", "source": "employee_id", "target": "externalId"},
        {"kind": "saml", "source": "groups", "target": "groups"},
    ]


# --- Assignments and who is in scope --------------------------------------------------------------


@pytest.fixture
def people():
    """alice: direct; bob: through Engineering; carol: direct and through two groups; dave: neither."""
    users = {name: UserFactory(username=name) for name in ("alice", "Bob", "carol", "dave")}
    engineering = GroupFactory(name="Engineering")
    ops = GroupFactory(name="Ops")
    unassigned = GroupFactory(name="Sales")
    directory.group_add_members(actor=None, group=engineering, users=[users["Bob"], users["carol"]])
    directory.group_add_members(actor=None, group=ops, users=[users["carol"]])
    directory.group_add_members(actor=None, group=unassigned, users=[users["dave"]])
    return {**users, "engineering": engineering, "ops": ops, "sales": unassigned}


@pytest.fixture
def assigned(actor, people):
    connector = _create(actor)
    services.assignment_create(actor=actor, connector=connector, user=people["alice"])
    services.assignment_create(actor=actor, connector=connector, user=people["carol"])
    services.assignment_create(actor=actor, connector=connector, group=people["ops"])
    services.assignment_create(actor=actor, connector=connector, group=people["engineering"])
    return connector


def test_effective_assignments_name_every_path(assigned, people):
    entries = selectors.effective_assignments(assigned)

    assert [(entry.user.username, entry.via) for entry in entries] == [
        ("alice", ["direct"]),
        ("Bob", ["group:Engineering"]),
        ("carol", ["direct", "group:Engineering", "group:Ops"]),
    ]
    assert [entry.direct for entry in entries] == [True, False, True]


def test_users_in_scope_whatever_their_status(actor, assigned, people):
    directory.user_suspend(actor=actor, user=people["Bob"])

    assert list(selectors.users_in_scope(assigned).values_list("username", flat=True)) == ["Bob", "alice", "carol"]


def test_user_is_assigned(assigned, people):
    assert selectors.user_is_assigned(assigned, people["alice"])
    assert selectors.user_is_assigned(assigned, people["Bob"])
    assert selectors.user_is_assigned(assigned, people["carol"])
    assert not selectors.user_is_assigned(assigned, people["dave"])


def test_membership_changes_change_the_effective_set(actor, assigned, people):
    directory.group_remove_members(actor=None, group=people["engineering"], users=[people["Bob"]])
    directory.group_add_members(actor=None, group=people["ops"], users=[people["dave"]])

    assert not selectors.user_is_assigned(assigned, people["Bob"])
    assert [e.via for e in selectors.effective_assignments(assigned) if e.user == people["dave"]] == [["group:Ops"]]


def test_connectors_for_user_lists_only_enabled_assigned_connectors(actor, people):
    enabled_direct = _create(actor, "generic-saml", name="Alpha", enabled=True)
    enabled_group = _create(actor, "generic-saml", name="Bravo", enabled=True)
    disabled = _create(actor, "generic-saml", name="Charlie", enabled=False)
    _create(actor, "generic-saml", name="Delta", enabled=True)  # not assigned
    services.assignment_create(actor=actor, connector=enabled_direct, user=people["carol"])
    services.assignment_create(actor=actor, connector=enabled_group, group=people["ops"])
    services.assignment_create(actor=actor, connector=disabled, user=people["carol"])

    assert list(selectors.connectors_for_user(people["carol"])) == [enabled_direct, enabled_group]
    assert list(selectors.connectors_for_user(people["dave"])) == []
    Connector.objects.filter(pk=disabled.pk).update(enabled=True)
    assert [c.name for c in selectors.connectors_for_user(people["carol"])] == ["Alpha", "Bravo", "Charlie"]


def test_assignment_create_is_audited(actor, people):
    connector = _create(actor)

    by_user = services.assignment_create(actor=actor, connector=connector, user=people["alice"])
    by_group = services.assignment_create(actor=actor, connector=connector, group=people["ops"])

    assert (by_user.user, by_user.group) == (people["alice"], None)
    assert (by_group.user, by_group.group) == (None, people["ops"])
    events = _events("connector.assignment.create")
    assert [event.after for event in events] == [
        {"user": str(people["alice"].pk), "username": "alice"},
        {"group": str(people["ops"].pk), "name": "Ops"},
    ]
    assert all(event.target_id == str(connector.pk) for event in events)


def test_assignment_needs_exactly_one_subject(actor, people):
    connector = _create(actor)

    neither = _refused(services.assignment_create, actor=actor, connector=connector)
    both = _refused(
        services.assignment_create, actor=actor, connector=connector, user=people["alice"], group=people["ops"]
    )

    assert neither == both == {"user": ["Assign either a user or a group."]}
    assert not Assignment.objects.exists()


def test_duplicate_assignments_are_refused(actor, people):
    connector = _create(actor)
    services.assignment_create(actor=actor, connector=connector, user=people["alice"])
    services.assignment_create(actor=actor, connector=connector, group=people["ops"])

    user_again = _refused(services.assignment_create, actor=actor, connector=connector, user=people["alice"])
    group_again = _refused(services.assignment_create, actor=actor, connector=connector, group=people["ops"])

    assert user_again == {"user": ["alice is already assigned to Twingate."]}
    assert group_again == {"group": ["Ops is already assigned to Twingate."]}
    assert Assignment.objects.count() == 2


def test_assignment_delete_is_audited_and_narrows_the_scope(actor, assigned, people):
    assignment = Assignment.objects.get(connector=assigned, group=people["engineering"])

    services.assignment_delete(actor=actor, assignment=assignment)

    assert not Assignment.objects.filter(pk=assignment.pk).exists()
    assert not selectors.user_is_assigned(assigned, people["Bob"])
    assert selectors.user_is_assigned(assigned, people["carol"])  # still direct and through Ops
    [event] = _events("connector.assignment.delete")
    assert event.before == {"group": str(people["engineering"].pk), "name": "Engineering"}
    assert Group.objects.filter(pk=people["engineering"].pk).exists()


def test_deleting_a_user_or_group_removes_their_assignments(actor, assigned, people):
    directory.group_delete(actor=actor, group=people["engineering"])
    directory.user_delete(actor=actor, user=people["alice"])

    assert [(e.user.username, e.via) for e in selectors.effective_assignments(assigned)] == [
        ("carol", ["direct", "group:Ops"])
    ]


# --- Listing ----------------------------------------------------------------------------------------


def test_connector_list_filters(actor):
    _create(actor, "generic-saml", name="Alpha SAML", enabled=True)
    _create(actor, "generic-scim", name="Bravo SCIM")
    _create(actor, "bookmark", name="Charlie Wiki", bookmark_url="https://wiki.example.com")

    def names(**kwargs):
        return [c.name for c in selectors.connector_list(**kwargs)]

    assert names() == ["Alpha SAML", "Bravo SCIM", "Charlie Wiki"]
    assert names(search="scim") == ["Bravo SCIM"]
    assert names(search="charlie-wiki") == ["Charlie Wiki"]  # the slug matches too
    assert names(kind="bookmark") == ["Charlie Wiki"]
    assert names(enabled=True) == ["Alpha SAML"]
    assert names(enabled=False) == ["Bravo SCIM", "Charlie Wiki"]


def test_connector_get_by_slug(actor):
    connector = _create(actor)

    assert selectors.connector_get_by_slug("twingate") == connector
    assert selectors.connector_get_by_slug("nope") is None


def test_mapping_list_is_ordered_by_kind_and_position(actor):
    connector = _create(actor)

    assert [(m.source, m.target) for m in selectors.mapping_list(connector, "scim_user")] == SEED_USER_ROWS
    assert [m.kind for m in selectors.mapping_list(connector)] == ["saml"] * 4 + ["scim_group"] * 2 + ["scim_user"] * 8
