"""Every change to connectors: validated, in one transaction, audited. Secrets never reach the audit."""

from collections.abc import Iterable
from typing import Any

import httpx
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from apps.audit.services import Actor, audit_record
from apps.common.crypto import encrypt_secret
from apps.common.errors import ApplicationError
from apps.common.http import OutboundURLError, check_outbound_url, fetch_limited
from apps.common.pki import CertificateError, normalize_certificate_pem
from apps.connectors import idp_urls
from apps.connectors.attributes import SAML_NAME_FORMATS, MappingError, target_key, validate_mapping
from apps.connectors.catalog import Template, get_template
from apps.connectors.metadata import BINDING_POST, MAX_METADATA_BYTES, MetadataError, parse_sp_metadata
from apps.connectors.models import (
    Assignment,
    AttributeMapping,
    Connector,
    ConnectorKind,
    Deprovision,
    MappingKind,
    NameIdFormat,
    NameIdProperty,
    ProvisioningOperation,
    ProvisioningSettings,
    SignatureAlgorithm,
    SsoSettings,
    UpdateMethod,
)
from apps.connectors.validation import validate_app_url
from apps.directory.models import Group, User
from apps.provisioning import outbox as provisioning_outbox

CONNECTOR_FIELDS = ("name", "description", "logo", "enabled", "bookmark_url")
# Fixed when the connector is created: the IdP URLs that admins paste into the app derive from them.
FIXED_FIELDS = ("slug", "idp_entity_id", "sso_url", "kind", "template")
SSO_FIELDS = (
    "sp_entity_id",
    "acs_urls",
    "sp_login_url",
    "slo_url",
    "slo_binding",
    "nameid_format",
    "nameid_property",
    "sign_response",
    "sign_assertion",
    "signature_algorithm",
    "allow_sha1",
    "require_signed_requests",
    "sp_signing_cert",
    "sp_encryption_cert",
    "assertion_lifetime_seconds",
    "session_lifetime_seconds",
    "relay_state_urls",
    "default_relay_state",
)
PROVISIONING_FIELDS = (
    "deprovision_unmanaged",
    "deprovision_threshold_count",
    "deprovision_threshold_percent",
    "enabled",
    "base_url",
    "token",
    "operations",
    "deprovision",
    "update_method",
    "rate_limit_per_second",
)
MAX_ACS_URLS = 20
MAX_RELAY_STATE_URLS = 50


class FixedFieldError(ApplicationError):
    def __init__(self, field: str) -> None:
        super().__init__(
            f"{field} is fixed when the connector is created and cannot be edited; "
            "delete the connector and create it again to change it.",
            code="immutable",
            extra={"field": field},
        )


class _Errors:
    """Collects field errors under dotted names (`sso.acs_urls`) and raises them together."""

    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def add(self, field: str, message: str) -> None:
        self.errors.setdefault(field, []).append(message)

    def raise_if_any(self) -> None:
        if self.errors:
            raise ValidationError(
                {field: [ValidationError(m) for m in messages] for field, messages in self.errors.items()}
            )


# --- Snapshots (secrets reduced to whether they are set) ----------------------------------------


def connector_snapshot(connector: Connector) -> dict[str, Any]:
    snapshot = {field: getattr(connector, field) for field in (*CONNECTOR_FIELDS, "slug", "kind", "template")}
    sso = getattr(connector, "sso", None)
    if sso is not None:
        snapshot["sso"] = {field: getattr(sso, field) for field in SSO_FIELDS}
    provisioning = getattr(connector, "provisioning", None)
    if provisioning is not None:
        snapshot["provisioning"] = {
            field: getattr(provisioning, field) for field in PROVISIONING_FIELDS if field != "token"
        }
        snapshot["provisioning"]["token_set"] = provisioning.token_set
    return snapshot


def _changed(before: dict, after: dict) -> tuple[dict, dict]:
    keys = {key for key in after if before.get(key) != after.get(key)}
    return {key: before.get(key) for key in keys}, {key: after.get(key) for key in keys}


# --- Validation of nested settings --------------------------------------------------------------


def _clean_acs_urls(value: Any, errors: _Errors) -> list[dict]:
    if not isinstance(value, list):
        errors.add("sso.acs_urls", "Give a list of {url, binding, index}.")
        return []
    if len(value) > MAX_ACS_URLS:
        errors.add("sso.acs_urls", f"At most {MAX_ACS_URLS} ACS URLs.")
        return []
    cleaned: list[dict] = []
    seen_indexes: set[int] = set()
    for position, item in enumerate(value):
        if isinstance(item, str):
            item = {"url": item}
        if not isinstance(item, dict):
            errors.add("sso.acs_urls", f"Entry {position + 1}: give an object with a url.")
            continue
        try:
            url = validate_app_url(str(item.get("url", "")), what="ACS URL")
        except ValueError as exc:
            errors.add("sso.acs_urls", f"Entry {position + 1}: {exc}")
            continue
        binding = item.get("binding") or BINDING_POST
        if binding != BINDING_POST:
            errors.add(
                "sso.acs_urls", f"Entry {position + 1}: only the HTTP-POST binding ({BINDING_POST}) is supported."
            )
            continue
        index = item.get("index", position)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= 65535:
            errors.add("sso.acs_urls", f"Entry {position + 1}: index must be a whole number from 0 to 65535.")
            continue
        if index in seen_indexes:
            errors.add("sso.acs_urls", f"Entry {position + 1}: index {index} is used twice.")
            continue
        seen_indexes.add(index)
        cleaned.append({"url": url, "binding": binding, "index": index})
    return cleaned


def _clean_url_list(value: Any, field: str, errors: _Errors, *, what: str) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_RELAY_STATE_URLS:
        errors.add(field, f"Give a list of at most {MAX_RELAY_STATE_URLS} URLs.")
        return []
    cleaned = []
    for item in value:
        try:
            cleaned.append(validate_app_url(str(item), what=what))
        except ValueError as exc:
            errors.add(field, str(exc))
    return cleaned


def _apply_sso(sso: SsoSettings, changes: dict, errors: _Errors) -> None:
    for field, value in changes.items():
        key = f"sso.{field}"
        if field not in SSO_FIELDS:
            errors.add(key, "Unknown or read-only field.")
        elif field == "acs_urls":
            sso.acs_urls = _clean_acs_urls(value, errors)
        elif field == "relay_state_urls":
            sso.relay_state_urls = _clean_url_list(value, key, errors, what="RelayState URL")
        elif field in ("sp_login_url", "slo_url"):
            sso_value = str(value or "").strip()
            if sso_value:
                try:
                    sso_value = validate_app_url(sso_value, what=field.replace("_", " "))
                except ValueError as exc:
                    errors.add(key, str(exc))
            setattr(sso, field, sso_value)
        elif field in ("sp_signing_cert", "sp_encryption_cert"):
            try:
                setattr(sso, field, normalize_certificate_pem(str(value or "")))
            except CertificateError as exc:
                errors.add(key, str(exc))
        elif field in ("sign_response", "sign_assertion", "allow_sha1", "require_signed_requests"):
            if not isinstance(value, bool):
                errors.add(key, "Must be true or false.")
            else:
                setattr(sso, field, value)
        elif field in ("assertion_lifetime_seconds", "session_lifetime_seconds"):
            upper = 3600 if field == "assertion_lifetime_seconds" else 30 * 24 * 3600
            if isinstance(value, bool) or not isinstance(value, int) or not 30 <= value <= upper:
                errors.add(key, f"A number of seconds from 30 to {upper}.")
            else:
                setattr(sso, field, value)
        else:
            choices = {
                "nameid_format": NameIdFormat.values,
                "nameid_property": NameIdProperty.values,
                "signature_algorithm": SignatureAlgorithm.values,
            }.get(field)
            text = str(value if value is not None else "").strip()
            if choices is not None and text not in choices:
                errors.add(key, f"Choose one of {', '.join(choices)}.")
                continue
            limit = SsoSettings._meta.get_field(field).max_length
            if limit and len(text) > limit:
                errors.add(key, f"At most {limit} characters.")
                continue
            setattr(sso, field, text)

    if not sso.sign_response and not sso.sign_assertion:
        errors.add("sso.sign_assertion", "Sign the response, the assertion or both.")
    if sso.signature_algorithm == SignatureAlgorithm.RSA_SHA1 and not sso.allow_sha1:
        errors.add(
            "sso.signature_algorithm",
            "RSA-SHA1 is insecure and refused; set allow_sha1 to true only if the app accepts nothing else.",
        )
    if sso.require_signed_requests and not sso.sp_signing_cert:
        errors.add(
            "sso.sp_signing_cert", "Signed AuthnRequests are required, so the SP's signing certificate is needed."
        )
    if sso.default_relay_state and len(sso.default_relay_state) > 1024:
        errors.add("sso.default_relay_state", "At most 1024 characters.")


def _apply_provisioning(provisioning: ProvisioningSettings, changes: dict, errors: _Errors) -> bool:
    """Apply changes; returns whether the token changed (its value never leaves this function)."""
    token_changed = False
    url_before = provisioning.base_url.rstrip("/")
    for field, value in changes.items():
        key = f"provisioning.{field}"
        if field not in PROVISIONING_FIELDS:
            errors.add(key, "Unknown or read-only field.")
        elif field in ("enabled", "deprovision_unmanaged"):
            if not isinstance(value, bool):
                errors.add(key, "Must be true or false.")
            else:
                setattr(provisioning, field, value)
        elif field in ("deprovision_threshold_count", "deprovision_threshold_percent"):
            upper = 100 if field.endswith("percent") else 1_000_000
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= upper:
                errors.add(key, f"A whole number from 0 to {upper}.")
            else:
                setattr(provisioning, field, value)
        elif field == "base_url":
            url = str(value or "").strip().rstrip("/")
            if url:
                try:
                    # The bearer token travels with every request: https unless the app is on loopback.
                    check_outbound_url(url)
                    validate_app_url(url, what="SCIM base URL")
                except (ValueError, OutboundURLError) as exc:
                    errors.add(key, str(exc))
                if len(url) > 2000:
                    errors.add(key, "At most 2000 characters.")
            provisioning.base_url = url
        elif field == "token":
            if value is None:
                continue
            token = str(value).strip()
            if len(token) > 4096 or any(ord(char) < 0x21 for char in token):
                errors.add(key, "The token must be at most 4096 printable characters without spaces.")
                continue
            provisioning.token_ciphertext = encrypt_secret(token) if token else ""
            provisioning.token_updated_at = timezone.now()
            token_changed = True
        elif field == "operations":
            if not isinstance(value, list) or any(op not in ProvisioningOperation.values for op in value):
                errors.add(key, f"A list of: {', '.join(ProvisioningOperation.values)}.")
            else:
                provisioning.operations = [op for op in ProvisioningOperation.values if op in value]
        elif field == "deprovision":
            if value not in Deprovision.values:
                errors.add(key, f"Choose one of {', '.join(Deprovision.values)}.")
            else:
                provisioning.deprovision = value
        elif field == "update_method":
            if value not in UpdateMethod.values:
                errors.add(key, f"Choose one of {', '.join(UpdateMethod.values)}.")
            else:
                provisioning.update_method = value
        elif field == "rate_limit_per_second":
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10_000:
                errors.add(key, "A whole number of requests per second from 0 (no limit) to 10000.")
            else:
                provisioning.rate_limit_per_second = value
    if url_before and provisioning.base_url != url_before and provisioning.token_ciphertext and not token_changed:
        # The token was given for the old address: it must not follow the URL to a new one unasked.
        errors.add(
            "provisioning.token",
            "The SCIM base URL changed: enter the app's token again (a stored token is only ever sent to the "
            "URL it was saved with).",
        )
    if provisioning.enabled and not provisioning.base_url:
        errors.add("provisioning.base_url", "Identity Management is enabled, so the SCIM base URL is needed.")
    if provisioning.enabled and not provisioning.token_ciphertext:
        errors.add("provisioning.token", "Identity Management is enabled, so the app's bearer token is needed.")
    return token_changed


def _apply_connector_fields(connector: Connector, changes: dict, errors: _Errors) -> None:
    for field, value in changes.items():
        if field == "enabled":
            if not isinstance(value, bool):
                errors.add(field, "Must be true or false.")
            else:
                connector.enabled = value
            continue
        text = str(value if value is not None else "").strip()
        if field == "bookmark_url" and text:
            try:
                text = validate_app_url(text, what="bookmark URL", allow_http=True)
            except ValueError as exc:
                errors.add(field, str(exc))
                continue
        if field == "logo" and text and not text.startswith(("connectors/", "https://")):
            errors.add(field, "A logo is a catalog logo (connectors/...) or an https URL.")
            continue
        setattr(connector, field, text)
    if not connector.name:
        errors.add("name", "This field is required.")
    for field in ("name", "description", "logo"):
        limit = Connector._meta.get_field(field).max_length
        if limit and len(getattr(connector, field)) > limit:
            errors.add(field, f"At most {limit} characters.")
    if connector.kind == ConnectorKind.BOOKMARK and not connector.bookmark_url:
        errors.add("bookmark_url", "A bookmark needs the app's sign-in URL.")


# Path segments the console uses beside connector slugs (/console/connectors/catalog/, /new/...).
RESERVED_SLUGS = frozenset({"catalog", "new"})


def _slug_taken(slug: str) -> bool:
    return slug in RESERVED_SLUGS or Connector.objects.filter(slug=slug).exists()


def _unique_slug(requested: str | None, name: str, errors: _Errors) -> str:
    if requested:
        slug = slugify(requested)
        if slug != requested or not slug:
            errors.add("slug", "Use lowercase letters, digits and hyphens only.")
        elif len(slug) > 64:
            errors.add("slug", "At most 64 characters.")
        elif slug in RESERVED_SLUGS:
            errors.add("slug", f"{slug!r} is reserved; choose another slug.")
        elif Connector.objects.filter(slug=slug).exists():
            errors.add("slug", "A connector with this slug already exists.")
        return slug
    base = (slugify(name) or "app")[:56]
    slug, counter = base, 2
    while _slug_taken(slug):
        slug, counter = f"{base}-{counter}", counter + 1
    return slug


# --- Connectors -------------------------------------------------------------------------------


@transaction.atomic
def connector_create(
    *,
    actor: Actor,
    template: str,
    name: str = "",
    slug: str | None = None,
    sso: dict | None = None,
    provisioning: dict | None = None,
    **fields: Any,
) -> Connector:
    spec = get_template(template)
    if spec is None:
        raise ValidationError({"template": [ValidationError(f"No catalog template {template!r}.")]})
    errors = _Errors()
    for field in fields:
        if field not in CONNECTOR_FIELDS:
            errors.add(field, "Unknown or read-only field.")
    connector = Connector(name=(name or spec.name).strip(), template=spec.slug, kind=spec.kind, logo=spec.logo)
    connector.description = spec.description
    _apply_connector_fields(connector, {k: v for k, v in fields.items() if k in CONNECTOR_FIELDS}, errors)
    connector.slug = _unique_slug(slug, connector.name, errors)
    connector.idp_entity_id = idp_urls.idp_entity_id(connector.slug)
    connector.sso_url = idp_urls.idp_sso_url(connector.slug)

    sso_settings = SsoSettings(**spec.sso) if connector.has_sso else None
    if sso is not None and not connector.has_sso:
        errors.add("sso", f"A {connector.get_kind_display()} has no SSO settings.")
    elif sso_settings is not None:
        _apply_sso(sso_settings, sso or {}, errors)
    provisioning_settings = ProvisioningSettings(**spec.provisioning) if connector.has_provisioning else None
    token_set = False
    if provisioning is not None and not connector.has_provisioning:
        errors.add("provisioning", f"A {connector.get_kind_display()} has no Identity Management settings.")
    elif provisioning_settings is not None:
        token_set = _apply_provisioning(provisioning_settings, provisioning or {}, errors)
    errors.raise_if_any()

    try:
        with transaction.atomic():
            connector.save()
    except IntegrityError as exc:
        raise ValidationError({"slug": [ValidationError("A connector with this slug already exists.")]}) from exc
    if sso_settings is not None:
        sso_settings.connector = connector
        sso_settings.save()
    if provisioning_settings is not None:
        provisioning_settings.connector = connector
        provisioning_settings.save()
    _create_template_mappings(connector, spec)
    after = connector_snapshot(connector)
    if token_set:
        after["provisioning"]["token"] = "set"  # noqa: S105 - a marker that a token was set, not a token
    audit_record(actor=actor, action="connector.create", target=connector, after=after)
    return connector


def _create_template_mappings(connector: Connector, spec: Template) -> None:
    rows = []
    positions: dict[str, int] = {}
    for row in spec.mappings:
        if row.kind != MappingKind.SAML and not connector.has_provisioning:
            continue
        if row.kind == MappingKind.SAML and not connector.has_sso:
            continue
        position = positions.get(row.kind, 0)
        positions[row.kind] = position + 1
        rows.append(
            AttributeMapping(
                connector=connector,
                kind=row.kind,
                source=row.source,
                target=row.target,
                name_format=SAML_NAME_FORMATS.get(row.name_format, row.name_format),
                position=position,
            )
        )
    AttributeMapping.objects.bulk_create(rows)


def _locked(connector: Connector) -> Connector:
    # Only the connector row is locked: PostgreSQL cannot lock the nullable side of the outer joins.
    return Connector.objects.select_for_update(of=("self",)).select_related("sso", "provisioning").get(pk=connector.pk)


@transaction.atomic
def connector_update(
    *, actor: Actor, connector: Connector, sso: dict | None = None, provisioning: dict | None = None, **fields: Any
) -> Connector:
    for field in FIXED_FIELDS:
        if field in fields:
            raise FixedFieldError(field)
    connector = _locked(connector)
    before = connector_snapshot(connector)
    errors = _Errors()
    for field in fields:
        if field not in CONNECTOR_FIELDS:
            errors.add(field, "Unknown or read-only field.")
    _apply_connector_fields(connector, {k: v for k, v in fields.items() if k in CONNECTOR_FIELDS}, errors)
    sso_settings = getattr(connector, "sso", None) if connector.has_sso else None
    if sso is not None:
        if sso_settings is None:
            errors.add("sso", f"A {connector.get_kind_display()} has no SSO settings.")
        else:
            if not isinstance(sso, dict):
                errors.add("sso", "Give an object of SSO settings.")
            else:
                _apply_sso(sso_settings, sso, errors)
    provisioning_settings = getattr(connector, "provisioning", None) if connector.has_provisioning else None
    token_changed = False
    if provisioning is not None:
        if provisioning_settings is None:
            errors.add("provisioning", f"A {connector.get_kind_display()} has no Identity Management settings.")
        elif not isinstance(provisioning, dict):
            errors.add("provisioning", "Give an object of Identity Management settings.")
        else:
            token_changed = _apply_provisioning(provisioning_settings, provisioning, errors)
    errors.raise_if_any()

    connector.save()
    if sso_settings is not None and sso is not None:
        sso_settings.save()
    if provisioning_settings is not None and provisioning is not None:
        provisioning_settings.save()
    after = connector_snapshot(connector)
    changed_before, changed_after = _changed(before, after)
    if token_changed:
        changed_after.setdefault("provisioning", after.get("provisioning", {}))
        changed_after["provisioning"] = {**changed_after["provisioning"], "token": "changed"}
    if changed_after:
        audit_record(
            actor=actor, action="connector.update", target=connector, before=changed_before, after=changed_after
        )
        if "enabled" in changed_after or "provisioning" in changed_after:
            provisioning_outbox.record_full_sync(connector, "connector.update")
    return connector


@transaction.atomic
def connector_delete(*, actor: Actor, connector: Connector) -> None:
    """Delete the connector, its settings, mappings and assignments; directory users stay."""
    before = connector_snapshot(_locked(connector))
    audit_record(actor=actor, action="connector.delete", target=connector, before=before)
    connector.delete()


# --- SP metadata --------------------------------------------------------------------------------


@transaction.atomic
def connector_import_sp_metadata(
    *, actor: Actor, connector: Connector, xml: bytes | str | None = None, url: str | None = None
) -> Connector:
    """Fill the SSO settings from the SP's metadata, given as XML or fetched from `url`."""
    if not connector.has_sso:
        raise ApplicationError(f"A {connector.get_kind_display()} has no SSO settings.", code="no_sso")
    if (xml is None) == (url is None):
        raise ValidationError({"xml": [ValidationError("Give the metadata XML or its URL, not both.")]})
    if url is not None:
        try:
            validate_app_url(url, what="metadata URL", allow_http=True)
            xml = fetch_limited(
                url, max_bytes=MAX_METADATA_BYTES, accept="application/samlmetadata+xml, application/xml"
            )
        except (ValueError, OutboundURLError) as exc:
            raise ValidationError({"url": [ValidationError(str(exc))]}) from exc
        except httpx.HTTPError as exc:
            raise ValidationError(
                {"url": [ValidationError(f"The metadata could not be fetched: {type(exc).__name__}.")]}
            ) from exc
    try:
        metadata = parse_sp_metadata(xml)
    except MetadataError as exc:
        raise ValidationError({"xml": [ValidationError(str(exc))]}) from exc
    changes: dict[str, Any] = {"sp_entity_id": metadata.entity_id, "acs_urls": metadata.acs_urls}
    if metadata.slo_url:
        changes["slo_url"] = metadata.slo_url
        changes["slo_binding"] = metadata.slo_binding
    if metadata.signing_cert:
        changes["sp_signing_cert"] = metadata.signing_cert
    if metadata.encryption_cert:
        changes["sp_encryption_cert"] = metadata.encryption_cert
    if metadata.nameid_format:
        changes["nameid_format"] = metadata.nameid_format
        if metadata.nameid_format == NameIdFormat.PERSISTENT:
            changes["nameid_property"] = NameIdProperty.ID
    if metadata.authn_requests_signed and metadata.signing_cert:
        changes["require_signed_requests"] = True
    try:
        connector = connector_update(actor=actor, connector=connector, sso=changes)
    except ValidationError as exc:
        # The metadata's own values broke a rule (an http ACS on a public host, say): say so.
        raise ValidationError(
            {
                "xml": [
                    ValidationError(f"{field}: {'; '.join(messages)}") for field, messages in exc.message_dict.items()
                ]
            }
        ) from exc
    audit_record(
        actor=actor,
        action="connector.sp_metadata_import",
        target=connector,
        after={"sp_entity_id": metadata.entity_id, "source": url or "upload"},
    )
    return connector


# --- Mappings -----------------------------------------------------------------------------------


def _check_mapping_kind(connector: Connector, kind: str) -> None:
    if kind == MappingKind.SAML and not connector.has_sso:
        raise ValidationError({"kind": [ValidationError("This connector has no SSO, so no SAML attributes.")]})
    if kind in (MappingKind.SCIM_USER, MappingKind.SCIM_GROUP) and not connector.has_provisioning:
        raise ValidationError(
            {"kind": [ValidationError("This connector has no Identity Management, so no SCIM mappings.")]}
        )


def _validated_row(kind: str, source: str, target: str, name_format: str) -> tuple[str, str, str]:
    source, target, name_format = (source or "").strip(), (target or "").strip(), (name_format or "").strip()
    try:
        validate_mapping(kind, source, target, name_format)
    except MappingError as exc:
        raise ValidationError({exc.field: [ValidationError(exc.message)]}) from exc
    return source, target, SAML_NAME_FORMATS.get(name_format, name_format)


def _require_user_name(kind: str, rows: Iterable[tuple[str, str, str]]) -> None:
    if kind == MappingKind.SCIM_USER and not any(
        target_key(kind, target) == target_key(kind, "userName") for _, target, _ in rows
    ):
        raise ValidationError({"target": [ValidationError("SCIM users need a userName mapping.")]})
    if kind == MappingKind.SCIM_GROUP and not any(
        target_key(kind, target) == target_key(kind, "displayName") for _, target, _ in rows
    ):
        raise ValidationError({"target": [ValidationError("SCIM groups need a displayName mapping.")]})


@transaction.atomic
def mapping_create(
    *, actor: Actor, connector: Connector, kind: str, source: str, target: str, name_format: str = ""
) -> AttributeMapping:
    if kind not in MappingKind.values:
        raise ValidationError({"kind": [ValidationError(f"Choose one of {', '.join(MappingKind.values)}.")]})
    _check_mapping_kind(connector, kind)
    source, target, name_format = _validated_row(kind, source, target, name_format)
    existing = AttributeMapping.objects.select_for_update().filter(connector=connector, kind=kind)
    key = target_key(kind, target)
    if any(target_key(kind, other.target) == key for other in existing):
        raise ValidationError({"target": [ValidationError(f"{target} is already mapped; edit or delete that row.")]})
    position = max((other.position for other in existing), default=-1) + 1
    mapping = AttributeMapping.objects.create(
        connector=connector, kind=kind, source=source, target=target, name_format=name_format, position=position
    )
    audit_record(
        actor=actor,
        action="connector.mapping.create",
        target=connector,
        after={"kind": kind, "source": source, "target": target, "name_format": name_format},
    )
    _resync_after_mapping_change(connector, kind)
    return mapping


@transaction.atomic
def mappings_replace(*, actor: Actor, connector: Connector, kind: str, rows: list[dict]) -> list[AttributeMapping]:
    """Make the mappings of one kind exactly `rows` (an editable table saved at once)."""
    if kind not in MappingKind.values:
        raise ValidationError({"kind": [ValidationError(f"Choose one of {', '.join(MappingKind.values)}.")]})
    _check_mapping_kind(connector, kind)
    cleaned: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    errors: dict[str, list[ValidationError]] = {}
    for position, row in enumerate(rows):
        try:
            item = _validated_row(kind, row.get("source", ""), row.get("target", ""), row.get("name_format", ""))
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                errors.setdefault(f"rows.{position}.{field}", []).extend(ValidationError(m) for m in messages)
            continue
        key = target_key(kind, item[1])
        if key in seen:
            errors.setdefault(f"rows.{position}.target", []).append(ValidationError(f"{item[1]} is mapped twice."))
            continue
        seen.add(key)
        cleaned.append(item)
    if errors:
        raise ValidationError(errors)
    _require_user_name(kind, cleaned)
    before = list(
        AttributeMapping.objects.filter(connector=connector, kind=kind).values("source", "target", "name_format")
    )
    AttributeMapping.objects.filter(connector=connector, kind=kind).delete()
    created = AttributeMapping.objects.bulk_create(
        AttributeMapping(connector=connector, kind=kind, source=s, target=t, name_format=f, position=i)
        for i, (s, t, f) in enumerate(cleaned)
    )
    after = [{"source": s, "target": t, "name_format": f} for s, t, f in cleaned]
    if before != after:
        audit_record(
            actor=actor,
            action="connector.mappings.replace",
            target=connector,
            before={kind: before},
            after={kind: after},
        )
        _resync_after_mapping_change(connector, kind)
    return created


@transaction.atomic
def mapping_delete(*, actor: Actor, mapping: AttributeMapping) -> None:
    connector = mapping.connector
    remaining = [
        (other.source, other.target, other.name_format)
        for other in AttributeMapping.objects.filter(connector=connector, kind=mapping.kind).exclude(pk=mapping.pk)
    ]
    if mapping.kind != MappingKind.SAML:
        _require_user_name(mapping.kind, remaining)
    audit_record(
        actor=actor,
        action="connector.mapping.delete",
        target=connector,
        before={"kind": mapping.kind, "source": mapping.source, "target": mapping.target},
    )
    mapping.delete()
    _resync_after_mapping_change(connector, mapping.kind)


def _resync_after_mapping_change(connector: Connector, kind: str) -> None:
    """SCIM resources are built from the mappings: re-send what changed (unchanged objects send nothing)."""
    if kind != MappingKind.SAML:
        provisioning_outbox.record_full_sync(connector, "mappings.change")


# --- Assignments --------------------------------------------------------------------------------


@transaction.atomic
def assignment_create(
    *, actor: Actor, connector: Connector, user: User | None = None, group: Group | None = None
) -> Assignment:
    if (user is None) == (group is None):
        raise ValidationError({"user": [ValidationError("Assign either a user or a group.")]})
    if user is not None and Assignment.objects.filter(connector=connector, user=user).exists():
        raise ValidationError({"user": [ValidationError(f"{user.username} is already assigned to {connector.name}.")]})
    if group is not None and Assignment.objects.filter(connector=connector, group=group).exists():
        raise ValidationError({"group": [ValidationError(f"{group.name} is already assigned to {connector.name}.")]})
    try:
        with transaction.atomic():
            assignment = Assignment.objects.create(connector=connector, user=user, group=group)
    except IntegrityError as exc:
        field = "user" if user is not None else "group"
        raise ValidationError({field: [ValidationError("Already assigned.")]}) from exc
    subject = (
        {"user": str(user.pk), "username": user.username} if user else {"group": str(group.pk), "name": group.name}
    )
    audit_record(actor=actor, action="connector.assignment.create", target=connector, after=subject)
    provisioning_outbox.record_assignment_change(assignment, "assignment.create")
    return assignment


@transaction.atomic
def assignment_delete(*, actor: Actor, assignment: Assignment) -> None:
    user, group = assignment.user, assignment.group
    subject = (
        {"user": str(user.pk), "username": user.username} if user else {"group": str(group.pk), "name": group.name}
    )
    audit_record(actor=actor, action="connector.assignment.delete", target=assignment.connector, before=subject)
    # Recorded before the row goes (it names who was granted access); the worker evaluates scope
    # after commit, so these users are deprovisioned only if nothing else grants them access.
    provisioning_outbox.record_assignment_change(assignment, "assignment.delete")
    assignment.delete()
