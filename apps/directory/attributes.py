"""The profile attributes a user has: one registry for every part that names them.

Each attribute has a key (the name the directory, mappings and rules use: `title`, `manager`,
`phone_numbers`, `custom.cost_code`), a label, a type, where it lives in SCIM (schema URN and path)
and whether it is multi-valued. `user_value(user, key)` reads a user's value for any key,
including read-only derived ones (`manager.display_name`, `phone_numbers.primary`,
`addresses.primary.locality`). Mapping pickers, group rules and the SCIM server read this module
rather than keeping lists of their own.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from apps.directory.models import CustomAttribute, CustomAttributeType, User

CORE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
# The SCIM schema extension that carries the admin-defined attributes.
CUSTOM_SCHEMA = getattr(
    settings, "DIRECTORY_CUSTOM_SCHEMA_URN", "urn:ietf:params:scim:schemas:extension:idp-portal:2.0:User"
)
CUSTOM_PREFIX = "custom."


class AttributeType:
    STRING = "string"
    BOOLEAN = "boolean"
    NUMBER = "number"
    DATE = "date"  # ISO 8601 date, YYYY-MM-DD
    DATETIME = "datetime"
    ENUM = "enum"
    REFERENCE = "reference"  # a URL, or (manager) another user's id
    COMPLEX = "complex"  # an object, or a list of objects, with sub-attributes


class Section:
    """Where a profile page groups an attribute."""

    IDENTITY = "Identity"
    CONTACT = "Contact"
    WORK = "Work"
    PREFERENCES = "Preferences"
    CUSTOM = "Custom attributes"


@dataclass(frozen=True)
class ProfileAttribute:
    key: str
    label: str
    type: str
    section: str
    # The SCIM schema URN and the attribute's path inside it ("" when SCIM does not carry it).
    scim_schema: str = CORE_SCHEMA
    scim_path: str = ""
    multi_valued: bool = False
    # Derived attributes (manager.display_name, phone_numbers.primary) are read, never written.
    writable: bool = True
    # Indexed for equality filters (SCIM `eq`, API list filters, rule conditions).
    filterable: bool = False
    case_exact: bool = False
    # For complex attributes: (key, SCIM name) of each sub-attribute.
    sub_attributes: tuple[tuple[str, str], ...] = ()
    choices: tuple[str, ...] = ()
    required: bool = False
    custom: bool = False
    description: str = ""

    @property
    def scim_urn_path(self) -> str:
        """The fully qualified SCIM path: `title`, or `urn:...:enterprise:2.0:User:department`."""
        if not self.scim_path:
            return ""
        return self.scim_path if self.scim_schema == CORE_SCHEMA else f"{self.scim_schema}:{self.scim_path}"


_VALUE_TYPE_PRIMARY = (("value", "value"), ("display", "display"), ("type", "type"), ("primary", "primary"))
ADDRESS_SUB_ATTRIBUTES = (
    ("formatted", "formatted"),
    ("street_address", "streetAddress"),
    ("locality", "locality"),
    ("region", "region"),
    ("postal_code", "postalCode"),
    ("country", "country"),
    ("type", "type"),
    ("primary", "primary"),
)
# The multi-valued attributes stored as JSON lists on the user, with their sub-attributes.
MULTI_VALUED_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "emails": _VALUE_TYPE_PRIMARY,
    "phone_numbers": _VALUE_TYPE_PRIMARY,
    "addresses": ADDRESS_SUB_ATTRIBUTES,
    "photos": _VALUE_TYPE_PRIMARY,
}

_S, _B, _R, _C = AttributeType.STRING, AttributeType.BOOLEAN, AttributeType.REFERENCE, AttributeType.COMPLEX
_ENT = ENTERPRISE_SCHEMA

BUILT_IN_ATTRIBUTES: tuple[ProfileAttribute, ...] = (
    ProfileAttribute("id", "Directory id (UUID)", _S, Section.IDENTITY, scim_path="id", writable=False,
                     filterable=True, case_exact=True),
    ProfileAttribute("username", "Username", _S, Section.IDENTITY, scim_path="userName", filterable=True),
    ProfileAttribute("external_id", "External id", _S, Section.IDENTITY, scim_path="externalId", filterable=True,
                     case_exact=True),
    ProfileAttribute("status", "Status", AttributeType.ENUM, Section.IDENTITY, scim_path="active",
                     choices=("active", "suspended", "staged"), filterable=True),
    ProfileAttribute("first_name", "First name", _S, Section.IDENTITY, scim_path="name.givenName"),
    ProfileAttribute("last_name", "Last name", _S, Section.IDENTITY, scim_path="name.familyName"),
    ProfileAttribute("display_name", "Display name", _S, Section.IDENTITY, scim_path="displayName"),
    ProfileAttribute("nick_name", "Nickname", _S, Section.IDENTITY, scim_path="nickName"),
    ProfileAttribute("user_type", "User type", _S, Section.IDENTITY, scim_path="userType"),
    ProfileAttribute("profile_url", "Profile URL", _R, Section.IDENTITY, scim_path="profileUrl"),
    ProfileAttribute("photos", "Photos", _C, Section.IDENTITY, scim_path="photos", multi_valued=True,
                     sub_attributes=_VALUE_TYPE_PRIMARY),
    ProfileAttribute("photos.primary", "Photo (primary URL)", _R, Section.IDENTITY, writable=False),
    ProfileAttribute("email", "Company email (primary)", _S, Section.CONTACT,
                     scim_path='emails[primary eq true].value', filterable=True),
    ProfileAttribute("email_type", "Company email type", _S, Section.CONTACT),
    ProfileAttribute("emails", "Other emails", _C, Section.CONTACT, scim_path="emails", multi_valued=True,
                     sub_attributes=_VALUE_TYPE_PRIMARY, filterable=True),
    ProfileAttribute("phone_numbers", "Phone numbers", _C, Section.CONTACT, scim_path="phoneNumbers",
                     multi_valued=True, sub_attributes=_VALUE_TYPE_PRIMARY, filterable=True),
    ProfileAttribute("phone_numbers.primary", "Phone number (primary)", _S, Section.CONTACT, writable=False),
    ProfileAttribute("addresses", "Addresses", _C, Section.CONTACT, scim_path="addresses", multi_valued=True,
                     sub_attributes=ADDRESS_SUB_ATTRIBUTES),
    *(
        ProfileAttribute(f"addresses.primary.{key}", f"Address (primary): {label}", _S, Section.CONTACT,
                         writable=False)
        for key, label in (
            ("formatted", "formatted"),
            ("street_address", "street"),
            ("locality", "city"),
            ("region", "region"),
            ("postal_code", "postal code"),
            ("country", "country"),
        )
    ),
    ProfileAttribute("title", "Job title", _S, Section.WORK, scim_path="title", filterable=True),
    ProfileAttribute("employee_id", "Employee number", _S, Section.WORK, scim_schema=_ENT,
                     scim_path="employeeNumber", filterable=True, case_exact=True),
    ProfileAttribute("cost_center", "Cost center", _S, Section.WORK, scim_schema=_ENT, scim_path="costCenter"),
    ProfileAttribute("organization", "Organization", _S, Section.WORK, scim_schema=_ENT,
                     scim_path="organization"),
    ProfileAttribute("division", "Division", _S, Section.WORK, scim_schema=_ENT, scim_path="division"),
    ProfileAttribute("department", "Department", _S, Section.WORK, scim_schema=_ENT, scim_path="department",
                     filterable=True),
    ProfileAttribute("manager", "Manager (user id)", _R, Section.WORK, scim_schema=_ENT,
                     scim_path="manager.value", filterable=True, case_exact=True),
    ProfileAttribute("manager.display_name", "Manager's display name", _S, Section.WORK, scim_schema=_ENT,
                     scim_path="manager.displayName", writable=False),
    ProfileAttribute("manager.username", "Manager's username", _S, Section.WORK, writable=False),
    ProfileAttribute("manager.email", "Manager's email", _S, Section.WORK, writable=False),
    ProfileAttribute("manager.employee_id", "Manager's employee number", _S, Section.WORK, writable=False),
    ProfileAttribute("preferred_language", "Preferred language", _S, Section.PREFERENCES,
                     scim_path="preferredLanguage"),
    ProfileAttribute("locale", "Locale", _S, Section.PREFERENCES, scim_path="locale"),
    ProfileAttribute("timezone", "Time zone", _S, Section.PREFERENCES, scim_path="timezone"),
)  # fmt: skip
_BUILT_IN_BY_KEY = {attribute.key: attribute for attribute in BUILT_IN_ATTRIBUTES}

# User model fields that hold the profile (written by apps.directory.profile).
PROFILE_TEXT_FIELDS = (
    "email_type",
    "nick_name",
    "title",
    "user_type",
    "preferred_language",
    "locale",
    "timezone",
    "profile_url",
    "cost_center",
    "organization",
    "division",
    "department",
)
PROFILE_FIELDS = (*PROFILE_TEXT_FIELDS, *MULTI_VALUED_FIELDS, "manager", "custom_attributes")

_CUSTOM_TYPES = {
    CustomAttributeType.STRING: AttributeType.STRING,
    CustomAttributeType.NUMBER: AttributeType.NUMBER,
    CustomAttributeType.BOOLEAN: AttributeType.BOOLEAN,
    CustomAttributeType.DATE: AttributeType.DATE,
    CustomAttributeType.ENUM: AttributeType.ENUM,
}


def custom_attribute(definition: CustomAttribute) -> ProfileAttribute:
    return ProfileAttribute(
        key=f"{CUSTOM_PREFIX}{definition.name}",
        label=definition.label or definition.name,
        type=_CUSTOM_TYPES[CustomAttributeType(definition.type)],
        section=Section.CUSTOM,
        scim_schema=CUSTOM_SCHEMA,
        scim_path=definition.name,
        multi_valued=definition.multi_valued,
        filterable=True,
        choices=tuple(definition.choices or ()),
        required=definition.required,
        custom=True,
        description=definition.description,
    )


def custom_attribute_definitions() -> list[CustomAttribute]:
    return list(CustomAttribute.objects.order_by("name"))


def all_attributes(
    *, custom: bool = True, writable_only: bool = False, definitions: Iterable[CustomAttribute] | None = None
) -> list[ProfileAttribute]:
    """Every attribute, built-in first, then the custom ones by name (one query for those)."""
    attributes = list(BUILT_IN_ATTRIBUTES)
    if custom:
        found = custom_attribute_definitions() if definitions is None else definitions
        attributes += [custom_attribute(definition) for definition in found]
    if writable_only:
        attributes = [attribute for attribute in attributes if attribute.writable]
    return attributes


def attribute_choices(*, custom: bool = True) -> dict[str, str]:
    """{key: label}, in registry order: what a picker offers."""
    return {attribute.key: attribute.label for attribute in all_attributes(custom=custom)}


def get_attribute(key: str) -> ProfileAttribute | None:
    """The attribute named `key` (a custom one is looked up in the database), or None."""
    if key.startswith(CUSTOM_PREFIX):
        definition = CustomAttribute.objects.filter(name__iexact=key[len(CUSTOM_PREFIX) :]).first()
        return custom_attribute(definition) if definition else None
    return _BUILT_IN_BY_KEY.get(key)


def is_attribute_key(key: str) -> bool:
    return get_attribute(key) is not None


# --- Values -------------------------------------------------------------------------------------


def primary_item(items: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """The item marked primary, or else the first: RFC 7643's preferred value of a list."""
    if not items:
        return None
    return next((item for item in items if item.get("primary")), items[0])


def user_value(user: User, key: str) -> Any:
    """The user's value for an attribute key; None when unset.

    Scalars are strings (`status` its value, `manager` the manager's id as a string); multi-valued
    attributes are lists of dicts; `<list>.value` is the list of their values; `<list>.primary` the
    primary item's value (`addresses.primary.<sub>` one of its parts); `manager.<key>` any key of
    the manager; `custom.<name>` a custom attribute's value (a list if it is multi-valued). Read
    many users with select_related("manager") to keep the manager's keys to one query.
    """
    if key.startswith(CUSTOM_PREFIX):
        return (user.custom_attributes or {}).get(key[len(CUSTOM_PREFIX) :])
    head, _, rest = key.partition(".")
    if head == "manager":
        if not rest:
            return str(user.manager_id) if user.manager_id else None
        return user_value(user.manager, rest) if user.manager_id and user.manager else None
    if head in MULTI_VALUED_FIELDS:
        items = list(getattr(user, head) or [])
        if not rest:
            return items
        if rest == "value":
            return [item.get("value") for item in items if item.get("value")]
        part, _, sub = rest.partition(".")
        if part == "primary":
            item = primary_item(items)
            if item is None:
                return None
            return item.get(sub or "value") or None
        return None
    if head == "id":
        return str(user.pk)
    if key in _BUILT_IN_BY_KEY or key in PROFILE_FIELDS:
        value = getattr(user, key, None)
        return None if value in ("", None) else value
    return None


def changed_attribute_keys(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    """Registry keys that differ between two user snapshots (custom values as `custom.<name>`)."""
    changed: set[str] = set()
    for key in set(before) | set(after):
        if key == "custom_attributes":
            old, new = before.get(key) or {}, after.get(key) or {}
            changed |= {f"{CUSTOM_PREFIX}{name}" for name in set(old) | set(new) if old.get(name) != new.get(name)}
        elif before.get(key) != after.get(key):
            changed.add(key)
    return changed
