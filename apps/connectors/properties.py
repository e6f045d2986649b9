"""The user properties a mapping can read, what each one reads of a user, and its value.

The properties are the directory's attribute keys (apps.directory.attributes: `title`,
`phone_numbers.primary`, `manager.email`, `custom.<name>`...) plus what only a mapping says: the
full name, the group names and the manager's id in the app a SCIM mapping writes to. One vocabulary
for SAML attributes, OIDC claims, outbound SCIM and the directory's change announcements: a change
to a user reaches only the connectors whose mappings read a changed attribute
(apps.provisioning.outbox), and one function (`user_values`) gives the values every protocol sends.
"""

import re
from collections.abc import Iterable
from typing import Any

from apps.directory.attributes import BUILT_IN_ATTRIBUTES, CUSTOM_PREFIX, MULTI_VALUED_FIELDS, user_value

_CUSTOM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
MANAGER_APP_ID = "manager.app_id"

# Properties that are no directory attribute, or read as a mapping needs them (status as a boolean).
_MAPPING_PROPERTIES: dict[str, str] = {
    "status": "Status (active: true/false)",
    "full_name": "First name and last name",
    "groups": "Group names",
}
_MAPPING_READS: dict[str, frozenset[str]] = {
    "id": frozenset(),
    "status": frozenset({"status"}),
    "full_name": frozenset({"first_name", "last_name"}),
    # The display name falls back on the first and last name.
    "display_name": frozenset({"display_name", "first_name", "last_name"}),
    "groups": frozenset({"groups"}),
    MANAGER_APP_ID: frozenset({"manager"}),
}


def _picker_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for attribute in BUILT_IN_ATTRIBUTES:
        table[attribute.key] = _MAPPING_PROPERTIES.get(attribute.key, attribute.label)
        if attribute.key == "last_name":
            table["full_name"] = _MAPPING_PROPERTIES["full_name"]
    table["groups"] = _MAPPING_PROPERTIES["groups"]
    return table


USER_PROPERTY_LABELS: dict[str, str] = _picker_table()
SCIM_USER_PROPERTY_LABELS: dict[str, str] = {
    **USER_PROPERTY_LABELS,
    MANAGER_APP_ID: "Manager's id in this app (once the manager is provisioned there)",
}
# Lists of entries or booleans: a template such as {first_name}.{last_name} cannot embed them.
NON_TEXT_PROPERTIES = frozenset({"status", "groups", *MULTI_VALUED_FIELDS})


def is_custom(source: str) -> bool:
    return source.startswith(CUSTOM_PREFIX) and bool(_CUSTOM_NAME.match(source[len(CUSTOM_PREFIX) :]))


def custom_properties(definitions: Iterable[Any]) -> dict[str, str]:
    """`custom.<name>` -> label, for custom attribute definitions (objects with name and label)."""
    return {f"{CUSTOM_PREFIX}{item.name}": f"{item.label or item.name} (custom)" for item in definitions}


_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def source_properties(source: str) -> list[str]:
    """The properties a mapping source names: itself, or the placeholders of a template."""
    source = source.strip()
    if "{" in source:
        return _PLACEHOLDER.findall(source)
    return [source]


def property_reads(name: str) -> frozenset[str]:
    """The attribute keys the directory announces a change of (apps.directory.changes) that can
    change this property: `phone_numbers.primary` reads `phone_numbers`; `manager.email` reads
    `manager` (another manager) and `manager.email` (the manager's own email changed)."""
    if name in _MAPPING_READS:
        return _MAPPING_READS[name]
    if name.startswith(CUSTOM_PREFIX):
        return frozenset({name})
    head, _, _ = name.partition(".")
    if head == "manager" and name != "manager":
        return frozenset({"manager", name})
    return frozenset({head})


def attributes_read(sources: Iterable[str]) -> frozenset[str]:
    reads: set[str] = set()
    for source in sources:
        for name in source_properties(source):
            reads |= property_reads(name)
    return frozenset(reads)


def reads_manager(sources: Iterable[str]) -> bool:
    """Whether the sources read something of the manager's own row (so load it with the user)."""
    return any(
        name.startswith("manager.") and name != MANAGER_APP_ID
        for source in sources
        for name in source_properties(source)
    )


# --- Values -------------------------------------------------------------------------------------


def _scim_entry(field: str, item: dict) -> dict:
    """A stored entry as SCIM writes it: SCIM's names, no empty parts, `primary` only when true."""
    entry = {
        scim: item[ours]
        for ours, scim in MULTI_VALUED_FIELDS[field]
        if ours != "primary" and item.get(ours) not in (None, "")
    }
    if item.get("primary") and field != "emails":  # secondary emails: the company email is the primary one
        entry["primary"] = True
    return entry


# Read from the user's own row whatever the mappings: every caller may need them (the OIDC subject,
# email_verified), and they cost nothing.
_ALWAYS = ("id", "username", "email", "first_name", "last_name", "full_name", "display_name", "employee_id",
           "external_id", "status")  # fmt: skip


def user_values(
    user: Any, sources: Iterable[str] = (), *, groups: Iterable[str] | None = None, manager_app_id: str = ""
) -> dict[str, Any]:
    """The values of the properties `sources` name (and of the user's own identity), for `user`.

    Lists of entries (emails, phone_numbers, addresses, photos) are SCIM-shaped (`streetAddress`,
    `primary` only when true); SAML and OIDC send their values (`text_values`). A user read with
    select_related("manager") costs no query for the manager's properties. `manager_app_id` is the
    manager's id in the app a SCIM mapping writes to (empty while the manager is not linked there)."""
    values: dict[str, Any] = {}
    for name in {*_ALWAYS, *(name for source in sources for name in source_properties(source))}:
        if name == "status":
            values[name] = user.status == "active"
        elif name == "full_name":
            values[name] = f"{user.first_name} {user.last_name}".strip()
        elif name == "display_name":
            values[name] = user.display_name or f"{user.first_name} {user.last_name}".strip()
        elif name == "groups":
            if groups is not None:
                values[name] = sorted(groups)
        elif name == MANAGER_APP_ID:
            values[name] = manager_app_id
        elif name in MULTI_VALUED_FIELDS:
            entries = [_scim_entry(name, item) for item in getattr(user, name) or [] if isinstance(item, dict)]
            values[name] = [entry for entry in entries if entry.get("value") or len(entry) > 1]
        else:
            values[name] = user_value(user, name)
    if groups is not None and "groups" not in values:
        values["groups"] = sorted(groups)
    return values


def _entry_text(entry: Any) -> Any:
    if not isinstance(entry, dict):
        return entry
    if "value" in entry:
        return entry["value"]
    return entry.get("formatted") or ", ".join(
        str(entry[key]) for key in ("streetAddress", "postalCode", "locality", "region", "country") if entry.get(key)
    )


def text_values(value: Any) -> Any:
    """A property's value as SAML and OIDC send it: the values of a list of entries, else itself."""
    if isinstance(value, list):
        return [_entry_text(entry) for entry in value]
    return value
