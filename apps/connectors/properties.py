"""The directory properties a mapping can read, what each one reads of a user, and its value.

One table for SAML attributes, OIDC claims and outbound SCIM: each property names the directory
attributes it is made of (`reads`), so that a change to a user reaches only the connectors whose
mappings read a changed attribute (apps.provisioning.outbox), and one function (`user_values`)
gives every property's value for a user, whichever protocol sends it.

Admin-defined custom attributes are properties too, written `custom.<name>`; their names live in
the database (apps.directory), so the functions here take them as an argument and stay pure.
"""

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

CUSTOM_PREFIX = "custom."
_CUSTOM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Property:
    label: str
    # The directory attributes (User fields, "groups", "custom.<name>") the value is made of.
    reads: frozenset[str]
    # Text can be embedded in a template such as {first_name}.{last_name}; lists and booleans cannot.
    text: bool = True
    # Only an outbound SCIM mapping can send it (a structured list, or an id only provisioning knows).
    scim_only: bool = False
    section: str = "Identity"


def _p(label: str, *reads: str, text: bool = True, scim_only: bool = False, section: str = "Identity") -> Property:
    return Property(label, frozenset(reads), text, scim_only, section)


# In the order the pickers list them.
USER_PROPERTY_TABLE: dict[str, Property] = {
    "id": _p("Directory id (UUID)"),
    "username": _p("Username", "username"),
    "email": _p("Company email", "email"),
    "first_name": _p("First name", "first_name"),
    "last_name": _p("Last name", "last_name"),
    "full_name": _p("First name and last name", "first_name", "last_name"),
    "display_name": _p("Display name", "display_name", "first_name", "last_name"),
    "nick_name": _p("Nickname", "nick_name"),
    "employee_id": _p("Employee ID (enterprise employeeNumber)", "employee_id"),
    "external_id": _p("External id from the upstream source", "external_id"),
    "status": _p("Status (active: true/false)", "status", text=False),
    "groups": _p("Group names", "groups", text=False),
    "user_type": _p("User type (Employee, Contractor...)", "user_type"),
    "profile_url": _p("Profile URL", "profile_url"),
    "title": _p("Job title", "title", section="Work"),
    "department": _p("Department", "department", section="Work"),
    "division": _p("Division", "division", section="Work"),
    "organization": _p("Organization", "organization", section="Work"),
    "cost_center": _p("Cost center", "cost_center", section="Work"),
    "manager_id": _p("Manager: directory id", "manager", section="Work"),
    "manager_username": _p("Manager: username", "manager", section="Work"),
    "manager_email": _p("Manager: email", "manager", section="Work"),
    "manager_display_name": _p("Manager: display name", "manager", section="Work"),
    "manager_app_id": _p(
        "Manager: id in this app (once the manager is provisioned there)", "manager", scim_only=True, section="Work"
    ),
    "secondary_emails": _p("Secondary emails", "emails", text=False, section="Contact"),
    "phone_number": _p("Phone number (the primary one)", "phone_numbers", section="Contact"),
    "work_phone": _p("Work phone", "phone_numbers", section="Contact"),
    "mobile_phone": _p("Mobile phone", "phone_numbers", section="Contact"),
    "phone_numbers": _p(
        "Phone numbers (all, with type and primary)", "phone_numbers", text=False, scim_only=True, section="Contact"
    ),
    "address": _p("Address (the primary one, formatted)", "addresses", section="Contact"),
    "addresses": _p(
        "Addresses (all, with type and primary)", "addresses", text=False, scim_only=True, section="Contact"
    ),
    "photo": _p("Photo URL (the primary one)", "photos", section="Contact"),
    "photos": _p("Photo URLs (all, with type and primary)", "photos", text=False, scim_only=True, section="Contact"),
    "preferred_language": _p("Preferred language", "preferred_language", section="Locale"),
    "locale": _p("Locale", "locale", section="Locale"),
    "timezone": _p("Time zone", "timezone", section="Locale"),
}

# What a changed manager (their name, email...) changes in the properties of the people reporting to them.
MANAGER_PROPERTY_READS: dict[str, frozenset[str]] = {
    "manager_username": frozenset({"username"}),
    "manager_email": frozenset({"email"}),
    "manager_display_name": frozenset({"display_name", "first_name", "last_name"}),
}


def user_properties(kind_is_scim: bool) -> dict[str, str]:
    """Name -> label of the fixed user properties a mapping of this kind may read."""
    return {name: prop.label for name, prop in USER_PROPERTY_TABLE.items() if kind_is_scim or not prop.scim_only}


def non_text_properties() -> set[str]:
    return {name for name, prop in USER_PROPERTY_TABLE.items() if not prop.text}


def is_custom(source: str) -> bool:
    return source.startswith(CUSTOM_PREFIX) and bool(_CUSTOM_NAME.match(source[len(CUSTOM_PREFIX) :]))


def custom_property(name: str) -> str:
    return f"{CUSTOM_PREFIX}{name}"


def custom_properties(definitions: Iterable[Any]) -> dict[str, str]:
    """`custom.<name>` -> label, for the custom attribute definitions given (name, label)."""
    return {custom_property(item.name): f"{item.label} (custom)" for item in definitions}


_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def source_properties(source: str) -> list[str]:
    """The properties a mapping source names: itself, or the placeholders of a template."""
    source = source.strip()
    if "{" in source:
        return _PLACEHOLDER.findall(source)
    return [source]


def attributes_read(sources: Iterable[str]) -> frozenset[str]:
    """The directory attributes the mapping sources read (custom ones as `custom.<name>`)."""
    reads: set[str] = set()
    for source in sources:
        for name in source_properties(source):
            if name in USER_PROPERTY_TABLE:
                reads |= USER_PROPERTY_TABLE[name].reads
            elif is_custom(name):
                reads.add(name)
    return frozenset(reads)


def manager_attributes_read(sources: Iterable[str]) -> frozenset[str]:
    """The attributes of a user's manager the mapping sources read (through manager_* properties)."""
    reads: set[str] = set()
    for source in sources:
        for name in source_properties(source):
            reads |= MANAGER_PROPERTY_READS.get(name, frozenset())
    return frozenset(reads)


def reads_manager(sources: Iterable[str]) -> bool:
    return "manager" in attributes_read(sources)


# --- Values -------------------------------------------------------------------------------------


def _primary(entries: Any) -> dict | None:
    items = [item for item in entries or () if isinstance(item, dict) and item.get("value", item.get("formatted"))]
    if not items:
        return None
    return next((item for item in items if item.get("primary")), items[0])


def _of_type(entries: Any, kind: str) -> str:
    for item in entries or ():
        if isinstance(item, dict) and item.get("type") == kind and item.get("value"):
            return str(item["value"])
    return ""


def _scim_entry(item: dict, keys: Collection[str]) -> dict:
    """A directory entry as SCIM writes it: only the keys that hold something, primary only when true."""
    entry = {key: item[key] for key in keys if item.get(key) not in (None, "")}
    if item.get("primary"):
        entry["primary"] = True
    return entry


_ADDRESS_KEYS = {
    "formatted": "formatted",
    "street_address": "streetAddress",
    "locality": "locality",
    "region": "region",
    "postal_code": "postalCode",
    "country": "country",
    "type": "type",
}


def scim_address(item: dict) -> dict:
    entry = {scim: item[ours] for ours, scim in _ADDRESS_KEYS.items() if item.get(ours) not in (None, "")}
    if item.get("primary"):
        entry["primary"] = True
    return entry


def formatted_address(item: dict | None) -> str:
    if not item:
        return ""
    if item.get("formatted"):
        return str(item["formatted"])
    # Our keys or SCIM's (streetAddress, postalCode): both reach here.
    street = item.get("street_address") or item.get("streetAddress")
    postal_code = item.get("postal_code") or item.get("postalCode")
    town = " ".join(str(part) for part in (postal_code, item.get("locality")) if part)
    parts = [street, town, item.get("region"), item.get("country")]
    return ", ".join(str(part) for part in parts if part)


def _addresses(user: Any) -> list[dict]:
    return [item for item in getattr(user, "addresses", None) or [] if isinstance(item, dict)]


def user_values(
    user: Any,
    *,
    groups: Iterable[str] | None = None,
    manager: Any = None,
    manager_app_id: str = "",
) -> dict[str, Any]:
    """Every property's value for `user` (custom ones as `custom.<name>`).

    Multi-valued properties are lists of SCIM-shaped entries ({"value", "type", "primary"}); SAML
    and OIDC send their values (`text_values`). `manager` is the user's manager (or None);
    `manager_app_id` their id in the app a SCIM mapping writes to."""
    full_name = f"{user.first_name} {user.last_name}".strip()
    phones = list(getattr(user, "phone_numbers", None) or [])
    photos = list(getattr(user, "photos", None) or [])
    addresses = _addresses(user)
    values: dict[str, Any] = {
        "id": str(user.pk),
        "username": user.username,
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "full_name": full_name,
        "display_name": user.display_name or full_name,
        "employee_id": user.employee_id,
        "external_id": user.external_id,
        "status": user.status == "active",
        "nick_name": getattr(user, "nick_name", ""),
        "user_type": getattr(user, "user_type", ""),
        "profile_url": getattr(user, "profile_url", ""),
        "title": getattr(user, "title", ""),
        "department": getattr(user, "department", ""),
        "division": getattr(user, "division", ""),
        "organization": getattr(user, "organization", ""),
        "cost_center": getattr(user, "cost_center", ""),
        "preferred_language": getattr(user, "preferred_language", ""),
        "locale": getattr(user, "locale", ""),
        "timezone": getattr(user, "timezone", ""),
        "secondary_emails": [
            {**_scim_entry(item, ("value", "type")), "primary": False}
            for item in getattr(user, "emails", None) or []
            if isinstance(item, dict) and item.get("value")
        ],
        "phone_numbers": [_scim_entry(item, ("value", "type")) for item in phones if isinstance(item, dict)],
        "phone_number": str((_primary(phones) or {}).get("value", "")),
        "work_phone": _of_type(phones, "work"),
        "mobile_phone": _of_type(phones, "mobile"),
        "addresses": [scim_address(item) for item in addresses],
        "address": formatted_address(_primary(addresses)),
        "photos": [_scim_entry(item, ("value", "type")) for item in photos if isinstance(item, dict)],
        "photo": str((_primary(photos) or {}).get("value", "")),
        "manager_id": str(manager.pk) if manager is not None else "",
        "manager_username": manager.username if manager is not None else "",
        "manager_email": manager.email if manager is not None else "",
        "manager_display_name": (
            (manager.display_name or f"{manager.first_name} {manager.last_name}".strip()) if manager is not None else ""
        ),
        "manager_app_id": manager_app_id,
    }
    for name, value in (getattr(user, "custom_attributes", None) or {}).items():
        values[custom_property(name)] = value
    if groups is not None:
        values["groups"] = sorted(groups)
    return values


def text_values(value: Any) -> Any:
    """A property's value as SAML and OIDC send it: the values of a list of entries, else itself."""
    if isinstance(value, list):
        return [
            (formatted_address(item) if "value" not in item else item["value"]) if isinstance(item, dict) else item
            for item in value
        ]
    return value
