"""The attribute definitions /Schemas publishes for Users and Groups, and that requests are checked
against: django-scim2's copies of the RFC 7643 schemas, cut down to what the directory keeps, with
the characteristics that hold here, plus the custom extension built from the admin-defined custom
attributes (apps.directory.attributes).
"""

import copy
import zoneinfo
from collections.abc import Iterable

from django.conf import global_settings
from django_scim import schemas as stock_schemas
from django_scim.constants import SchemaURI

from apps.directory.attributes import CUSTOM_SCHEMA
from apps.directory.models import CustomAttribute, CustomAttributeType

USER_SCHEMA = SchemaURI.USER
ENTERPRISE_SCHEMA = SchemaURI.ENTERPRISE_USER
GROUP_SCHEMA = SchemaURI.GROUP
CUSTOM_USER_SCHEMA = CUSTOM_SCHEMA

_STOCK = {document["id"]: document for document in stock_schemas.ALL}

# IANA names: a client that offers a picker (and scim2-tester, which picks from canonicalValues)
# sends one the directory accepts.
TIMEZONES = sorted(zoneinfo.available_timezones() - {"Factory", "localtime"})


def _language_tag(code: str) -> str:
    """Django's `en-au` as BCP 47 writes it: `en-AU`, `zh-Hans`."""
    language, *subtags = code.split("-")
    return "-".join([language, *(tag.upper() if len(tag) == 2 else tag.title() for tag in subtags)])


# Suggested language tags (those Django knows, and en-US): any BCP 47 tag is accepted.
LANGUAGE_TAGS = sorted({_language_tag(code) for code, _ in global_settings.LANGUAGES} | {"en-US"})


def stock_document(schema_id: str) -> dict:
    return copy.deepcopy(_STOCK[schema_id])


def _stock_attribute(schema_id: str, name: str) -> dict:
    for attribute in _STOCK[schema_id]["attributes"]:
        if attribute["name"] == name:
            return copy.deepcopy(attribute)
    raise KeyError(name)


def _keep_sub_attributes(attribute: dict, names: list[str], **overrides: dict) -> dict:
    by_name = {sub["name"]: sub for sub in attribute.get("subAttributes", [])}
    attribute["subAttributes"] = [{**by_name[name], **overrides.get(name, {})} for name in names]
    return attribute


def _string(name: str, description: str, **characteristics) -> dict:
    return {
        "name": name,
        "type": "string",
        "multiValued": False,
        "description": description,
        "required": False,
        "caseExact": False,
        "mutability": "readWrite",
        "returned": "default",
        "uniqueness": "none",
        **characteristics,
    }


_PRIMARY = {
    "description": "Whether this is the preferred value. At most one value is primary: setting a new "
    "primary (PATCH) clears the others; a request naming two is refused.",
    "mutability": "readWrite",
    "returned": "default",
}


def _multi_valued(name: str, subs: list[str], description: str, **overrides: dict) -> dict:
    attribute = _keep_sub_attributes(_stock_attribute(USER_SCHEMA, name), subs, primary=_PRIMARY, **overrides)
    attribute.update(description=description, uniqueness="none", returned="default")
    return attribute


def user_attributes(*, with_password: bool) -> list[dict]:
    user_name = _stock_attribute(USER_SCHEMA, "userName")
    user_name["description"] = "Unique identifier for the User, case-insensitive. REQUIRED."
    name = _keep_sub_attributes(
        _stock_attribute(USER_SCHEMA, "name"),
        ["formatted", "familyName", "givenName"],
        formatted={
            "description": "The full name as displayed; the same value as displayName, which wins if both "
            "change at once."
        },
    )
    display_name = _stock_attribute(USER_SCHEMA, "displayName")
    display_name.update(
        required=True,
        description="The name as displayed. Always has a value: derived from the given and family name, or the "
        "userName, when not set.",
    )
    simple = [_stock_attribute(USER_SCHEMA, attr) for attr in ("nickName", "profileUrl", "title", "userType")]
    preferred_language = _stock_attribute(USER_SCHEMA, "preferredLanguage")
    preferred_language.update(
        canonicalValues=LANGUAGE_TAGS,
        description="The preferred language, as an Accept-Language value such as 'en-US' or 'fr-CA, fr;q=0.8'.",
    )
    locale = _stock_attribute(USER_SCHEMA, "locale")
    locale.update(canonicalValues=LANGUAGE_TAGS, description="The default location, as a language tag such as 'en-US'.")
    timezone = _stock_attribute(USER_SCHEMA, "timezone")
    timezone.update(canonicalValues=TIMEZONES, description="An IANA time zone name such as 'Europe/Paris'.")
    active = _stock_attribute(USER_SCHEMA, "active")
    active.update(
        required=True,
        caseExact=False,
        uniqueness="none",
        description="true for an active user, false for a suspended (or not yet started) one. Defaults to true.",
    )
    # No `display` for emails: the company email keeps none.
    emails = _multi_valued(
        "emails",
        ["value", "type", "primary"],
        "Email addresses. The primary one is the company email, unique in the directory (case-insensitively).",
        type={"canonicalValues": ["work", "home", "other"]},
    )
    phone_numbers = _multi_valued(
        "phoneNumbers",
        ["value", "display", "type", "primary"],
        "Phone numbers, as written (RFC 3966 'tel:' URIs or E.164 numbers are best).",
    )
    photos = _multi_valued("photos", ["value", "display", "type", "primary"], "URLs of photos of the User.")
    addresses = _stock_attribute(USER_SCHEMA, "addresses")
    addresses["subAttributes"].append(
        {
            "name": "primary",
            "type": "boolean",
            "multiValued": False,
            "required": False,
            "caseExact": False,
            "uniqueness": "none",
            **_PRIMARY,
        }
    )
    addresses.update(description="Physical mailing addresses.", uniqueness="none", returned="default")
    groups = _keep_sub_attributes(
        _stock_attribute(USER_SCHEMA, "groups"),
        ["value", "$ref", "display", "type"],
        type={"canonicalValues": ["direct"]},
    )
    attributes = [
        user_name,
        name,
        display_name,
        *simple,
        preferred_language,
        locale,
        timezone,
        active,
        emails,
        phone_numbers,
        photos,
        addresses,
        groups,
    ]
    if with_password:
        password = _stock_attribute(USER_SCHEMA, "password")
        password["description"] = "Write-only; never returned."
        attributes.insert(attributes.index(active) + 1, password)
    return attributes


def enterprise_attributes() -> list[dict]:
    employee_number = _stock_attribute(ENTERPRISE_SCHEMA, "employeeNumber")
    employee_number["description"] = "The employee ID."
    others = [_stock_attribute(ENTERPRISE_SCHEMA, name) for name in ("costCenter", "organization", "division")]
    department = _stock_attribute(ENTERPRISE_SCHEMA, "department")
    manager = _stock_attribute(ENTERPRISE_SCHEMA, "manager")
    manager["uniqueness"] = "none"
    manager["description"] = (
        "The User's manager, another User of this directory: write `value` (its id) or `$ref`; "
        "`displayName` is read-only."
    )
    for sub in manager["subAttributes"]:
        if sub["name"] == "value":
            sub.update(caseExact=True, description="The id of the manager's User.")
    return [employee_number, *others, department, manager]


_CUSTOM_SCIM_TYPES = {
    CustomAttributeType.STRING: "string",
    CustomAttributeType.NUMBER: "decimal",
    CustomAttributeType.BOOLEAN: "boolean",
    # A date, not a point in time: SCIM's dateTime would need a time of day and a zone that the
    # directory does not keep, and would not read back as sent.
    CustomAttributeType.DATE: "string",
    CustomAttributeType.ENUM: "string",
}


def custom_attribute_document(definition: CustomAttribute) -> dict:
    description = definition.description or definition.label or definition.name
    if definition.type == CustomAttributeType.DATE:
        description += " (an ISO 8601 date: YYYY-MM-DD)"
    document = {
        "name": definition.name,
        "type": _CUSTOM_SCIM_TYPES[CustomAttributeType(definition.type)],
        "multiValued": bool(definition.multi_valued),
        "description": description,
        "required": bool(definition.required),
        "caseExact": False,
        "mutability": "readWrite",
        "returned": "default",
        "uniqueness": "none",
    }
    if definition.type == CustomAttributeType.ENUM:
        document["canonicalValues"] = list(definition.choices or [])
    return document


def custom_attributes(definitions: Iterable[CustomAttribute]) -> list[dict]:
    return [custom_attribute_document(definition) for definition in definitions]


def group_attributes() -> list[dict]:
    display_name = _stock_attribute(GROUP_SCHEMA, "displayName")
    display_name.update(required=True, uniqueness="server", description="The group's name, unique case-insensitively.")
    members = _keep_sub_attributes(
        _stock_attribute(GROUP_SCHEMA, "members"),
        ["value", "$ref", "type"],
        value={"caseExact": True, "description": "The member's SCIM id (a User id)."},
        **{"$ref": {"referenceTypes": ["User"]}},
        type={"canonicalValues": ["User"], "description": "Always 'User': groups hold users only."},
    )
    members["subAttributes"].append(
        _string("display", "The member's userName.", mutability="readOnly", returned="request")
    )
    return [display_name, members]
