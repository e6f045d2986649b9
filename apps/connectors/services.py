"""Every change to connectors: validated, in one transaction, audited. Secrets never reach the audit."""

from collections.abc import Collection, Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from apps.audit.services import Actor, audit_record
from apps.common.errors import ApplicationError
from apps.connectors import changes as announce
from apps.connectors import idp_urls
from apps.connectors.attributes import SAML_NAME_FORMATS, MappingError, target_key, validate_mapping
from apps.connectors.catalog import Template, get_template
from apps.connectors.checks import CheckResult, connector_checks
from apps.connectors.models import (
    Assignment,
    AttributeMapping,
    Connector,
    MappingKind,
    ProvisioningSettings,
    SsoSettings,
)
from apps.connectors.oidc_settings import (
    apply_oidc,
    client_type_changed,
    issue_initial_secret,
    new_oidc_settings,
    oidc_snapshot,
)
from apps.connectors.validation import (
    CONNECTOR_FIELDS,
    FIXED_FIELDS,
    PROVISIONING_FIELDS,
    SSO_FIELDS,
    FixedFieldError,
    SettingErrors,
    apply_connector_fields,
    apply_provisioning,
    apply_sso,
    unique_slug,
)
from apps.directory.attributes import custom_attribute_definitions
from apps.directory.models import Group, User

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
    oidc = getattr(connector, "oidc", None) if connector.has_oidc else None
    if oidc is not None:
        snapshot["oidc"] = oidc_snapshot(oidc)
    return snapshot


def _changed(before: dict, after: dict) -> tuple[dict, dict]:
    keys = {key for key in after if before.get(key) != after.get(key)}
    return {key: before.get(key) for key in keys}, {key: after.get(key) for key in keys}


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
    oidc: dict | None = None,
    **fields: Any,
) -> Connector:
    """Create from a catalog template. An OIDC connector with a confidential client gets its first
    client secret, readable once as `connector.issued_client_secret` (None otherwise)."""
    spec = get_template(template)
    if spec is None:
        raise ValidationError({"template": [ValidationError(f"No catalog template {template!r}.")]})
    errors = SettingErrors()
    for field in fields:
        if field not in CONNECTOR_FIELDS:
            errors.add(field, "Unknown or read-only field.")
    connector = Connector(name=(name or spec.name).strip(), template=spec.slug, kind=spec.kind, logo=spec.logo)
    connector.description = spec.description
    apply_connector_fields(connector, {k: v for k, v in fields.items() if k in CONNECTOR_FIELDS}, errors)
    connector.slug = unique_slug(slug, connector.name, errors)
    if connector.has_oidc:
        connector.idp_entity_id = idp_urls.oidc_issuer_for(connector.slug)
        connector.sso_url = f"{connector.idp_entity_id}/{idp_urls.OIDC_ENDPOINTS['authorization_endpoint']}"
    else:
        connector.idp_entity_id = idp_urls.idp_entity_id(connector.slug)
        connector.sso_url = idp_urls.idp_sso_url(connector.slug)

    sso_settings = SsoSettings(**spec.sso) if connector.has_sso else None
    if sso is not None and not connector.has_sso:
        errors.add("sso", f"A {connector.get_kind_display()} has no SSO settings.")
    elif sso_settings is not None:
        apply_sso(sso_settings, sso or {}, errors)
    provisioning_settings = ProvisioningSettings(**spec.provisioning) if connector.has_provisioning else None
    token_set = False
    if provisioning is not None and not connector.has_provisioning:
        errors.add("provisioning", f"A {connector.get_kind_display()} has no Identity Management settings.")
    elif provisioning_settings is not None:
        token_set = apply_provisioning(provisioning_settings, provisioning or {}, errors)
    oidc_settings = new_oidc_settings(connector, spec.oidc) if connector.has_oidc else None
    if oidc is not None and oidc_settings is None:
        errors.add("oidc", f"A {connector.get_kind_display()} has no OpenID Connect settings.")
    elif oidc_settings is not None:
        if not isinstance(oidc, dict | None):
            errors.add("oidc", "Give an object of OpenID Connect settings.")
        else:
            apply_oidc(oidc_settings, oidc or {}, errors)
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
    connector.issued_client_secret = None
    if oidc_settings is not None:
        oidc_settings.connector = connector
        connector.issued_client_secret = issue_initial_secret(oidc_settings)
        oidc_settings.save()
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
        if not _mapping_kind_applies(connector, row.kind):
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


def _mapping_kind_applies(connector: Connector, kind: str) -> bool:
    if kind == MappingKind.SAML:
        return connector.has_sso
    if kind == MappingKind.OIDC:
        return connector.has_oidc
    return connector.has_provisioning


def _locked(connector: Connector) -> Connector:
    # Only the connector row is locked: PostgreSQL cannot lock the nullable side of the outer joins.
    return (
        Connector.objects.select_for_update(of=("self",))
        .select_related("sso", "provisioning", "oidc")
        .get(pk=connector.pk)
    )


@transaction.atomic
def connector_update(
    *,
    actor: Actor,
    connector: Connector,
    sso: dict | None = None,
    provisioning: dict | None = None,
    oidc: dict | None = None,
    **fields: Any,
) -> Connector:
    """Change a connector. Making an OIDC client confidential issues its first secret, readable
    once as `connector.issued_client_secret`."""
    for field in FIXED_FIELDS:
        if field in fields:
            raise FixedFieldError(field)
    connector = _locked(connector)
    before = connector_snapshot(connector)
    errors = SettingErrors()
    for field in fields:
        if field not in CONNECTOR_FIELDS:
            errors.add(field, "Unknown or read-only field.")
    apply_connector_fields(connector, {k: v for k, v in fields.items() if k in CONNECTOR_FIELDS}, errors)
    sso_settings = getattr(connector, "sso", None) if connector.has_sso else None
    if sso is not None:
        if sso_settings is None:
            errors.add("sso", f"A {connector.get_kind_display()} has no SSO settings.")
        else:
            if not isinstance(sso, dict):
                errors.add("sso", "Give an object of SSO settings.")
            else:
                apply_sso(sso_settings, sso, errors)
    provisioning_settings = getattr(connector, "provisioning", None) if connector.has_provisioning else None
    token_changed = False
    if provisioning is not None:
        if provisioning_settings is None:
            errors.add("provisioning", f"A {connector.get_kind_display()} has no Identity Management settings.")
        elif not isinstance(provisioning, dict):
            errors.add("provisioning", "Give an object of Identity Management settings.")
        else:
            token_changed = apply_provisioning(provisioning_settings, provisioning, errors)
    oidc_settings = getattr(connector, "oidc", None) if connector.has_oidc else None
    client_type_before = oidc_settings.client_type if oidc_settings is not None else None
    if oidc is not None:
        if oidc_settings is None:
            errors.add("oidc", f"A {connector.get_kind_display()} has no OpenID Connect settings.")
        elif not isinstance(oidc, dict):
            errors.add("oidc", "Give an object of OpenID Connect settings.")
        else:
            apply_oidc(oidc_settings, oidc, errors)
    errors.raise_if_any()

    connector.save()
    connector.issued_client_secret = None
    if oidc_settings is not None and oidc is not None:
        if oidc_settings.client_type != client_type_before:
            connector.issued_client_secret = client_type_changed(oidc_settings)
        oidc_settings.save()
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
        _audit_update(actor, connector, changed_before, changed_after)
        if "enabled" in changed_after or "provisioning" in changed_after:
            announce.settings_changed(connector, "connector.update")
    return connector


# A connector update is audited as what happened, one event per part: switched on or off, its SSO
# settings, its Identity Management settings, its name and the rest.
_UPDATE_PARTS = (
    ("sso", "connector.sso.update"),
    ("provisioning", "connector.provisioning.update"),
    ("oidc", "connector.oidc.update"),
)


def _audit_update(actor: Actor, connector: Connector, before: dict, after: dict) -> None:
    before, after = dict(before), dict(after)
    if "enabled" in after:
        enabled = after.pop("enabled")
        audit_record(
            actor=actor,
            action="connector.activated" if enabled else "connector.deactivated",
            target=connector,
            before={"enabled": before.pop("enabled", None)},
            after={"enabled": enabled},
        )
    for part, action in _UPDATE_PARTS:
        if part in after or part in before:
            old, new = before.pop(part, None) or {}, after.pop(part, None) or {}
            keys = [key for key in {**old, **new} if old.get(key) != new.get(key)]
            audit_record(
                actor=actor,
                action=action,
                target=connector,
                before={part: {key: old.get(key) for key in keys}},
                after={part: {key: new.get(key) for key in keys}},
            )
    if after or before:
        audit_record(actor=actor, action="connector.update", target=connector, before=before, after=after)


@transaction.atomic
def connector_apply_fix(*, actor: Actor, connector: Connector, code: str) -> CheckResult:
    """Apply the recommended change of the consistency check `code` (audited as the update it is)."""
    check = next((check for check in connector_checks(connector) if check.code == code and check.fix), None)
    if check is None:
        raise ApplicationError("Nothing to fix: that check no longer applies.", code="no_fix")
    connector_update(actor=actor, connector=connector, **check.fix)
    return check


@transaction.atomic
def connector_delete(*, actor: Actor, connector: Connector) -> None:
    """Delete the connector, its settings, mappings and assignments; directory users stay."""
    before = connector_snapshot(_locked(connector))
    audit_record(actor=actor, action="connector.delete", target=connector, before=before)
    connector.delete()


# --- Mappings -----------------------------------------------------------------------------------


def _check_mapping_kind(connector: Connector, kind: str) -> None:
    if kind == MappingKind.OIDC and not connector.has_oidc:
        raise ValidationError({"kind": [ValidationError("This connector has no OpenID Connect, so no OIDC claims.")]})
    if kind == MappingKind.SAML and not connector.has_sso:
        raise ValidationError({"kind": [ValidationError("This connector has no SSO, so no SAML attributes.")]})
    if kind in (MappingKind.SCIM_USER, MappingKind.SCIM_GROUP) and not connector.has_provisioning:
        raise ValidationError(
            {"kind": [ValidationError("This connector has no Identity Management, so no SCIM mappings.")]}
        )


def _validated_row(
    kind: str, source: str, target: str, name_format: str, custom_names: Collection[str]
) -> tuple[str, str, str]:
    source, target, name_format = (source or "").strip(), (target or "").strip(), (name_format or "").strip()
    try:
        validate_mapping(kind, source, target, name_format, custom_names=custom_names)
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
    custom_names = {definition.name for definition in custom_attribute_definitions()}
    source, target, name_format = _validated_row(kind, source, target, name_format, custom_names)
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
    custom_names = {definition.name for definition in custom_attribute_definitions()}
    for position, row in enumerate(rows):
        try:
            item = _validated_row(
                kind, row.get("source", ""), row.get("target", ""), row.get("name_format", ""), custom_names
            )
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
        announce.settings_changed(connector, "mappings.change")


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
    announce.assignment_changed(assignment, "assignment.create")
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
    announce.assignment_changed(assignment, "assignment.delete")
    assignment.delete()
