"""Admin-defined profile attributes: create, change and delete their definitions.

A definition's values live in each user's `custom_attributes`, so a change of type, choices or
cardinality is checked against every stored value first: the values that still fit are rewritten
to the new shape, and if any does not fit the change is refused, naming the users who hold one.
"""

from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from apps.audit.services import Actor, audit_record
from apps.common.errors import ApplicationError, field_error
from apps.directory import changes as announce
from apps.directory.attributes import CUSTOM_PREFIX
from apps.directory.models import CustomAttribute, CustomAttributeType, User
from apps.directory.profile_validation import ProfileValueError, coerce_custom_value
from apps.directory.rules.engine import rederive_rules_reading
from apps.directory.rules.services import require_no_rule_reads

CUSTOM_ATTRIBUTE_EDITABLE_FIELDS = ("label", "description", "type", "choices", "multi_valued", "required")
ENUM_CHOICES_MAX = 500
ENUM_CHOICE_MAX_LENGTH = 255
# Users named in the error of a refused change (all are counted).
UNFIT_USERS_NAMED = 10
_REWRITE_BATCH = 1000
# Names that would read as something else where custom attributes are named (`custom.<name>`).
_RESERVED_NAMES = frozenset({"schemas", "id", "meta", "externalid"})


class CustomAttributeValuesUnfit(ApplicationError):
    """A change of a definition that stored values do not fit."""

    def __init__(self, definition: CustomAttribute, usernames: list[str], count: int) -> None:
        listed = ", ".join(usernames) + (f" and {count - len(usernames)} more" if count > len(usernames) else "")
        super().__init__(
            f"{count} user{'s' if count != 1 else ''} hold a value of {definition.name} that the new settings "
            f"would not accept ({listed}): change or clear those values first.",
            code="custom_attribute_values_unfit",
            extra={"users": usernames, "count": count},
        )


def custom_attribute_snapshot(definition: CustomAttribute) -> dict[str, Any]:
    return {
        "id": str(definition.pk),
        "name": definition.name,
        "label": definition.label,
        "description": definition.description,
        "type": definition.type,
        "choices": list(definition.choices or []),
        "multi_valued": definition.multi_valued,
        "required": definition.required,
    }


def _clean_choices(definition: CustomAttribute) -> list[str]:
    if definition.type != CustomAttributeType.ENUM:
        return []
    raw = definition.choices or []
    if not isinstance(raw, list | tuple) or any(not isinstance(choice, str | int | float) for choice in raw):
        raise field_error("choices", "Enter a list of values.")
    choices: list[str] = []
    for choice in raw:
        text = str(choice).strip()
        if not text:
            continue
        if len(text) > ENUM_CHOICE_MAX_LENGTH:
            raise field_error("choices", f"A choice has at most {ENUM_CHOICE_MAX_LENGTH} characters.")
        if text.lower() in (existing.lower() for existing in choices):
            raise field_error("choices", f"{text!r} is listed twice.")
        choices.append(text)
    if not choices:
        raise field_error("choices", "A list attribute needs at least one choice.", code="required")
    if len(choices) > ENUM_CHOICES_MAX:
        raise field_error("choices", f"At most {ENUM_CHOICES_MAX} choices.")
    return choices


def _validate(definition: CustomAttribute) -> None:
    definition.label = (definition.label or "").strip() or definition.name
    definition.description = (definition.description or "").strip()
    errors: dict[str, list] = {}
    try:
        definition.full_clean(validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        errors.update(exc.error_dict)
    try:
        definition.choices = _clean_choices(definition)
    except ValidationError as exc:
        errors.update(exc.error_dict)
    if definition.name.lower() in _RESERVED_NAMES:
        errors["name"] = [ValidationError(f"{definition.name!r} is reserved: choose another name.", code="reserved")]
    elif (
        "name" not in errors
        and CustomAttribute.objects.exclude(pk=definition.pk).filter(name__iexact=definition.name).exists()
    ):
        errors["name"] = [ValidationError("A custom attribute with this name already exists.", code="unique")]
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def custom_attribute_create(
    *,
    actor: Actor,
    name: str,
    label: str = "",
    description: str = "",
    type: str = CustomAttributeType.STRING,
    choices: list[str] | tuple[str, ...] = (),
    multi_valued: bool = False,
    required: bool = False,
) -> CustomAttribute:
    definition = CustomAttribute(
        name=(name or "").strip(),
        label=label,
        description=description,
        type=type,
        choices=list(choices or []),
        multi_valued=multi_valued,
        required=required,
    )
    _validate(definition)
    definition.save()
    audit_record(
        actor=actor, action="custom_attribute.create", target=definition, after=custom_attribute_snapshot(definition)
    )
    return definition


@transaction.atomic
def custom_attribute_update(*, actor: Actor, definition: CustomAttribute, **changes: Any) -> CustomAttribute:
    """Change a definition; its name is fixed (mappings and rules name it). A change of type,
    choices or cardinality rewrites the stored values, or is refused if one does not fit."""
    if "name" in changes and str(changes["name"]).strip() != definition.name:
        raise field_error(
            "name", "The name of a custom attribute cannot change: mappings and rules use it.", code="immutable"
        )
    changes.pop("name", None)
    unknown = set(changes) - set(CUSTOM_ATTRIBUTE_EDITABLE_FIELDS)
    if unknown:
        raise ApplicationError(f"Cannot update {', '.join(sorted(unknown))} here.", code="not_editable")
    definition = CustomAttribute.objects.select_for_update().get(pk=definition.pk)
    before = custom_attribute_snapshot(definition)
    for field, value in changes.items():
        setattr(definition, field, list(value or []) if field == "choices" else value)
    _validate(definition)
    after = custom_attribute_snapshot(definition)
    if after == before:
        return definition
    shape = ("type", "choices", "multi_valued")
    rewritten: list[Any] = []
    if any(before[field] != after[field] for field in shape):
        rewritten = _rewrite_values(definition)
    definition.save()
    changed = [key for key in after if after[key] != before[key]]
    audit_record(
        actor=actor,
        action="custom_attribute.update",
        target=definition,
        before={key: before[key] for key in changed},
        after={**{key: after[key] for key in changed}, **({"values_rewritten": len(rewritten)} if rewritten else {})},
    )
    if rewritten:
        announce.user_changed(rewritten, "custom_attribute.update", attributes={f"{CUSTOM_PREFIX}{definition.name}"})
    if any(before[field] != after[field] for field in shape):
        # Group rules reading it are checked against its new shape and their groups re-derived.
        rederive_rules_reading(
            actor=actor, attributes={f"{CUSTOM_PREFIX}{definition.name}"}, trigger="custom_attribute.update"
        )
    return definition


def _holders(name: str):
    return User.objects.filter(custom_attributes__has_key=name)


def _rewrite_values(definition: CustomAttribute) -> list[Any]:
    """Every stored value in the definition's new shape; the ids of users whose value changed.
    Raises CustomAttributeValuesUnfit (and writes nothing) if a value does not fit."""
    updates: list[User] = []
    now = timezone.now()
    unfit: list[str] = []
    unfit_count = 0
    holders = _holders(definition.name).only("pk", "username", "custom_attributes").order_by("username")
    for user in holders.iterator(chunk_size=_REWRITE_BATCH):
        value = user.custom_attributes[definition.name]
        try:
            new = coerce_custom_value(definition, value)
        except ProfileValueError:
            unfit_count += 1
            if len(unfit) < UNFIT_USERS_NAMED:
                unfit.append(user.username)
            continue
        if new != value:
            values = dict(user.custom_attributes)
            if new is None:
                values.pop(definition.name)
            else:
                values[definition.name] = new
            user.custom_attributes = values
            user.updated = now  # their SCIM version moves
            updates.append(user)
    if unfit_count:
        raise CustomAttributeValuesUnfit(definition, unfit, unfit_count)
    User.objects.bulk_update(updates, ["custom_attributes", "updated"], batch_size=_REWRITE_BATCH)
    return [user.pk for user in updates]


@transaction.atomic
def custom_attribute_delete(*, actor: Actor, definition: CustomAttribute) -> int:
    """Delete a definition and every user's value of it; returns how many users had one."""
    definition = CustomAttribute.objects.select_for_update().get(pk=definition.pk)
    require_no_rule_reads(f"{CUSTOM_PREFIX}{definition.name}")
    holder_ids = list(_holders(definition.name).values_list("pk", flat=True))
    if holder_ids:
        _remove_key(definition.name)
    audit_record(
        actor=actor,
        action="custom_attribute.delete",
        target=definition,
        before={**custom_attribute_snapshot(definition), "users_with_value": len(holder_ids)},
    )
    definition.delete()
    if holder_ids:
        announce.user_changed(holder_ids, "custom_attribute.delete", attributes={f"{CUSTOM_PREFIX}{definition.name}"})
    return len(holder_ids)


# The key is a bound parameter; the table is the User model's (directory_user).
_REMOVE_KEY_SQL = {
    "postgresql": (
        'UPDATE "directory_user" SET "custom_attributes" = "custom_attributes" - %s, "updated" = %s '
        'WHERE "custom_attributes" ? %s'
    ),
    "sqlite": (
        'UPDATE "directory_user" SET "custom_attributes" = json_remove("custom_attributes", %s), "updated" = %s '
        'WHERE json_type("custom_attributes", %s) IS NOT NULL'
    ),
}


def _remove_key(name: str) -> None:
    """One UPDATE that drops the key from every user's values, in the database's JSON dialect."""
    now = timezone.now()
    # SQLite names the key by a JSON path; names are identifiers (validated), so it is well-formed.
    key = name if connection.vendor == "postgresql" else f'$."{name}"'
    with connection.cursor() as cursor:
        cursor.execute(_REMOVE_KEY_SQL[connection.vendor], [key, now, key])
