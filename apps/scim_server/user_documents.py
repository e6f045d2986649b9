"""A directory User as a SCIM User document and back: the core schema, the Enterprise User
extension and the custom extension of admin-defined attributes.

Rendering and reading are inverses, so that PATCH (applied to the rendered document, then read
back) and PUT take the same path. Reading only translates names and shapes: every value is checked
by the directory's services when written (apps.directory.services), in one place for every entry
point. What reading refuses itself is what is SCIM's own: unknown attributes, read-only ones, two
primary values in one list.
"""

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from apps.directory.attributes import MULTI_VALUED_FIELDS
from apps.directory.models import CustomAttribute, User
from apps.directory.profile_validation import MULTI_VALUED_MAX_ITEMS
from apps.scim_server.errors import invalid_path, invalid_value, mutability
from apps.scim_server.patch import _get
from apps.scim_server.schemas import (
    COMMON_ATTRIBUTES,
    CUSTOM_USER_SCHEMA,
    ENTERPRISE_SCHEMA,
    USER_SCHEMA,
    attribute_defs,
    password_writable,
)

# Per multi-valued attribute, as the directory keeps them (emails: the company email besides).
MAX_ITEMS = MULTI_VALUED_MAX_ITEMS

# SCIM attribute -> User field, for the single-valued strings of the core schema.
CORE_TEXT = {
    "nickName": "nick_name",
    "profileUrl": "profile_url",
    "title": "title",
    "userType": "user_type",
    "preferredLanguage": "preferred_language",
    "locale": "locale",
    "timezone": "timezone",
}
# ... and of the Enterprise User extension.
ENTERPRISE_TEXT = {
    "employeeNumber": "employee_id",
    "costCenter": "cost_center",
    "organization": "organization",
    "division": "division",
    "department": "department",
}
# SCIM multi-valued attribute -> User field (emails: the secondary ones; the primary is `email`).
MULTI_VALUED = {"emails": "emails", "phoneNumbers": "phone_numbers", "photos": "photos", "addresses": "addresses"}
# Sub-attribute names, SCIM <-> stored, per field.
_SUB_TO_SCIM = {name: dict(subs) for name, subs in MULTI_VALUED_FIELDS.items()}
_SUB_FROM_SCIM = {name: {scim.lower(): key for key, scim in subs} for name, subs in MULTI_VALUED_FIELDS.items()}

# --- Rendering ---------------------------------------------------------------------------------


def _item_document(field_name: str, item: dict) -> dict:
    names = _SUB_TO_SCIM[field_name]
    document = {}
    for key, value in item.items():
        if key == "primary":
            continue
        if value not in ("", None) and key in names:
            document[names[key]] = value
    document["primary"] = bool(item.get("primary"))
    return document


def email_documents(user: User) -> list[dict]:
    items = []
    if user.email:
        items.append({"value": user.email, "type": user.email_type or "work", "primary": True})
    items += [_item_document("emails", item) for item in user.emails or []]
    return items


def manager_document(user: User, users_path: str, display_name_of) -> dict | None:
    if not user.manager_id:
        return None
    document = {"value": str(user.manager_id), "$ref": f"{users_path}{user.manager_id}"}
    # Read with the user (apps.scim_server.user_resources), unless the manager changed since.
    read_with_user = getattr(user, "scim_manager_display_name", None)
    if read_with_user is not None and read_with_user[0] == user.manager_id:
        display_name = read_with_user[1]
    else:
        display_name = display_name_of(user.manager) if user.manager is not None else None
    if display_name:
        document["displayName"] = display_name
    return document


def profile_documents(user: User, users_path: str, display_name_of) -> tuple[dict, dict, dict]:
    """(core attributes beyond the basic ones, enterprise extension, custom extension) of a user."""
    core: dict[str, Any] = {}
    for scim_name, field_name in CORE_TEXT.items():
        value = getattr(user, field_name)
        if value:
            core[scim_name] = value
    emails = email_documents(user)
    if emails:
        core["emails"] = emails
    for scim_name, field_name in MULTI_VALUED.items():
        if scim_name == "emails":
            continue
        items = getattr(user, field_name) or []
        if items:
            core[scim_name] = [_item_document(field_name, item) for item in items]
    enterprise: dict[str, Any] = {}
    for scim_name, field_name in ENTERPRISE_TEXT.items():
        value = getattr(user, field_name)
        if value:
            enterprise[scim_name] = value
    manager = manager_document(user, users_path, display_name_of)
    if manager:
        enterprise["manager"] = manager
    custom = {name: value for name, value in (user.custom_attributes or {}).items() if value not in (None, "", [])}
    return core, enterprise, custom


# --- Reading -----------------------------------------------------------------------------------


@dataclass
class UserFields:
    """What a SCIM User document says about a directory user, as directory fields."""

    profile: dict[str, Any]
    active: bool | None
    password: str | None = None
    touched: set[str] = field(default_factory=set)


def string_value(value: Any, label: str, *, allow_none: bool = True) -> str:
    if value is None and allow_none:
        return ""
    if not isinstance(value, str):
        raise invalid_value(f"{label} must be a string.")
    return value


def _boolean(value: Any, label: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise invalid_value(f"{label} must be true or false.")


def truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def check_schemas(document: dict, allowed: set[str], required: str) -> None:
    _, schemas = _get(document, "schemas")
    if schemas is None:
        return
    if not isinstance(schemas, list) or not all(isinstance(item, str) for item in schemas):
        raise invalid_value("schemas must be a list of URIs.")
    lowered = {uri.lower() for uri in allowed}
    unknown = [item for item in schemas if item.lower() not in lowered]
    if unknown:
        raise invalid_value(f"Unsupported schema {unknown[0][:100]!r}.")
    if required not in schemas:
        raise invalid_value(f"schemas must include {required}.")


def check_read_only(key: str, value: Any, mode: str, current_id: str | None) -> None:
    """POST refuses read-only attributes; PUT ignores them (RFC 7644 §3.5.1) but not a different id."""
    lowered = key.lower()
    if mode == "create":
        if lowered == "groups" and value in (None, []):
            return  # Okta sends an empty `groups` on create; there is nothing to write.
        # Entra ID sends `"meta": {"resourceType": "User"}` with each create: nothing to write.
        if lowered == "meta" and isinstance(value, dict) and value in ({}, {"resourceType": "User"}):
            return
        raise mutability(f"{key} is read-only.")
    if lowered == "id" and mode == "replace" and value is not None and str(value) != current_id:
        raise mutability("id cannot be changed.")


def _items(value: Any, scim_name: str) -> list[dict]:
    if value is None:
        return []
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise invalid_value(f"{scim_name} must be a list.")
    limit = MAX_ITEMS + 1 if scim_name == "emails" else MAX_ITEMS
    if len(value) > limit:
        raise invalid_value(f"At most {limit} values of {scim_name}.")
    if not all(isinstance(element, dict) for element in value):
        raise invalid_value(f"Each value of {scim_name} must be an object.")
    if sum(1 for element in value if truthy(_get(element, "primary")[1])) > 1:
        raise invalid_value(f"At most one value of {scim_name} may be primary (RFC 7643 §2.4).")
    return value


def _read_item(element: dict, scim_name: str, field_name: str) -> dict:
    names = _SUB_FROM_SCIM[field_name]
    item = {}
    for key, value in element.items():
        stored = names.get(key.lower())
        if stored is None:
            raise invalid_path(f"Unknown attribute {scim_name}.{key[:80]}.")
        item[stored] = value
    return item


def _read_emails(value: Any) -> tuple[str, str, list[dict]]:
    """(company email, its type, the other emails). The company email is the one marked primary;
    with none marked, the work one among those that do not say `primary: false`, else the first of
    those. When every email says `primary: false`, the user has no company email."""
    items = [_read_item(element, "emails", "emails") for element in _items(value, "emails")]
    items = [item for item in items if item.get("value") not in (None, "")]
    candidates = [
        index for index, item in enumerate(items) if truthy(item.get("primary")) or not is_false(item.get("primary"))
    ]
    if not candidates:
        return "", "", [{**item, "primary": False} for item in items]
    chosen = min(
        candidates,
        key=lambda index: (not truthy(items[index].get("primary")), str(items[index].get("type") or "") != "work"),
    )
    primary = items[chosen]
    others = [{**item, "primary": False} for index, item in enumerate(items) if index != chosen]
    return string_value(primary["value"], "emails.value"), str(primary.get("type") or ""), others


def is_false(value: Any) -> bool:
    return value is False or (isinstance(value, str) and value.strip().lower() == "false")


def _read_name(value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid_value("name must be an object.")
    subs = attribute_defs(USER_SCHEMA)["name"].sub_attributes
    result = {}
    for key, item in value.items():
        sub = subs.get(key.lower())
        if sub is None:
            raise invalid_path(f"Unknown attribute name.{key[:80]}.")
        text = string_value(item, f"name.{sub.name}")
        result[{"givenName": "first_name", "familyName": "last_name", "formatted": "formatted"}[sub.name]] = text
    return result


def read_manager(value: Any) -> UUID | None:
    """`{"value": id}`, `{"$ref": ".../Users/id"}` or (Entra ID) the bare id; empty means none."""
    if isinstance(value, dict):
        _, reference = _get(value, "value")
        if reference in (None, ""):
            _, ref = _get(value, "$ref")
            reference = ref.rstrip("/").rsplit("/", 1)[-1] if isinstance(ref, str) and ref else None
    else:
        reference = value
    if reference in (None, ""):
        return None
    if not isinstance(reference, str):
        raise invalid_value("manager.value must be the id of a User.")
    try:
        return UUID(reference.strip())
    except ValueError:
        raise invalid_value(f"manager: {reference[:60]!r} is not the id of a User.") from None


def _read_enterprise(value: Any, values: dict) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise invalid_value(f"{ENTERPRISE_SCHEMA} must be an object.")
    by_name = {name.lower(): name for name in (*ENTERPRISE_TEXT, "manager")}
    for key, item in value.items():
        name = by_name.get(key.lower())
        if key.lower() == "schemas":
            continue
        if name is None:
            raise invalid_path(f"Unknown attribute {ENTERPRISE_SCHEMA}:{key[:80]}.")
        if name == "manager":
            values["manager"] = read_manager(item)
        else:
            values[ENTERPRISE_TEXT[name]] = string_value(item, name)


def _read_custom(value: Any, definitions: list[CustomAttribute] | None, values: dict) -> None:
    """The custom extension, names checked against `definitions` (None: passed on as they are)."""
    if value is None:
        values["custom_attributes"] = {}
        return
    if not isinstance(value, dict):
        raise invalid_value(f"{CUSTOM_USER_SCHEMA} must be an object.")
    by_name = None if definitions is None else {definition.name.lower(): definition.name for definition in definitions}
    custom = {}
    for key, item in value.items():
        if key.lower() == "schemas":
            continue
        name = key if by_name is None else by_name.get(key.lower())
        if name is None:
            raise invalid_path(f"Unknown attribute {CUSTOM_USER_SCHEMA}:{key[:80]}.")
        custom[name] = item
    values["custom_attributes"] = custom


def read_user_document(
    document: Any, *, mode: str, definitions: list[CustomAttribute] | None, current: dict | None = None
) -> UserFields:
    """Read a SCIM User document into directory fields.

    `mode` is "create" (POST), "replace" (PUT) or "patch" (the document a PATCH produced, whose
    read-only attributes are the server's own). `current` is the document before the change.
    Attributes the document leaves out are cleared, as PUT means (RFC 7644 §3.5.1).
    """
    if not isinstance(document, dict):
        raise invalid_value("A User must be a JSON object.")
    # `definitions` None: the request does not name the custom extension (it may still be in a
    # PATCH's document, rendered from the stored values, which the directory checks again).
    custom_known = definitions is None or bool(definitions)
    allowed = {USER_SCHEMA, ENTERPRISE_SCHEMA, CUSTOM_USER_SCHEMA} if custom_known else {USER_SCHEMA, ENTERPRISE_SCHEMA}
    check_schemas(document, allowed, USER_SCHEMA)
    core = attribute_defs(USER_SCHEMA)
    values: dict[str, Any] = {name: "" for name in (*CORE_TEXT.values(), *ENTERPRISE_TEXT.values())}
    values.update(manager=None, custom_attributes={}, phone_numbers=[], photos=[], addresses=[], emails=[])
    touched: set[str] = set()
    password = None
    active = None
    current_id = (current or {}).get("id")
    for key, value in document.items():
        lowered = key.lower()
        if lowered == "schemas":
            continue
        if lowered == ENTERPRISE_SCHEMA.lower():
            _read_enterprise(value, values)
            continue
        if lowered == CUSTOM_USER_SCHEMA.lower() and custom_known:
            _read_custom(value, definitions, values)
            continue
        definition = core.get(lowered) or COMMON_ATTRIBUTES.get(lowered)
        if definition is None and lowered == "password":
            raise mutability("Writing passwords over SCIM is disabled on this server.")
        if definition is None and lowered == "roles" and value in (None, []) and mode == "create":
            continue  # Entra ID sends an empty `roles` with each create; this server keeps none.
        if definition is None:
            raise invalid_path(f"Unknown attribute {key[:80]!r}.")
        if definition.mutability == "readOnly":
            if mode != "patch":
                check_read_only(key, value, mode, current_id)
            continue
        touched.add(definition.name)
        name = definition.name
        if name in ("userName", "displayName"):
            values[name.lower()] = string_value(value, name)
        elif name == "externalId":
            values["external_id"] = string_value(value, "externalId")
        elif name == "name":
            values.update(_read_name(value))
        elif name == "active":
            active = None if value is None else _boolean(value, "active")
        elif name == "emails":
            values["email"], values["email_type"], values["emails"] = _read_emails(value)
        elif name in MULTI_VALUED:
            field_name = MULTI_VALUED[name]
            values[field_name] = [_read_item(element, name, field_name) for element in _items(value, name)]
        elif name in CORE_TEXT:
            values[CORE_TEXT[name]] = string_value(value, name)
        elif name == "password":
            if not password_writable():
                raise mutability("Writing passwords over SCIM is disabled on this server.")
            password = string_value(value, "password") or None
    profile = {key: values[key] for key in (*CORE_TEXT.values(), *ENTERPRISE_TEXT.values()) if key in values}
    profile.update(
        {
            "username": values.get("username", "").strip(),
            "first_name": values.get("first_name", ""),
            "last_name": values.get("last_name", ""),
            "email": values.get("email", ""),
            "external_id": values.get("external_id", ""),
            "display_name": _choose_display_name(values, current),
            "emails": values["emails"],
            "phone_numbers": values["phone_numbers"],
            "photos": values["photos"],
            "addresses": values["addresses"],
            "manager": values["manager"],
        }
    )
    profile["custom_attributes"] = values["custom_attributes"]
    if "email_type" in values:
        # "work" is what a company email without a stored type reads as: storing it would change
        # (and write) every user on their first PATCH.
        profile["email_type"] = "" if values["email_type"] == "work" else values["email_type"]
    if not profile["username"]:
        raise invalid_value("userName is required.")
    return UserFields(profile=profile, active=active, password=password, touched=touched)


def _choose_display_name(values: dict, current: dict | None) -> str:
    """displayName and name.formatted are one field; whichever the request changed wins."""
    display = values.get("displayname")
    formatted = values.get("formatted")
    if current is not None:
        current_display = current.get("displayName")
        current_formatted = (current.get("name") or {}).get("formatted")
        display_changed = display is not None and display != current_display
        formatted_changed = formatted is not None and formatted != current_formatted
        if display_changed:
            return display
        if formatted_changed:
            return formatted
        if formatted is None and current_formatted:
            return ""  # name.formatted was removed: the display name goes back to being derived
        return formatted or ""
    return display or formatted or ""
