"""What a mapping row may say: directory properties, source templates, SCIM paths and SAML names.

Pure functions, shared by validation (here), provisioning (SCIM resources) and the SAML IdP
(attribute statements).
"""

import re
from collections.abc import Collection
from dataclasses import dataclass

from apps.connectors.models import MappingKind
from apps.connectors.properties import (
    NON_TEXT_PROPERTIES,
    SCIM_USER_PROPERTY_LABELS,
    USER_PROPERTY_LABELS,
    is_custom,
)

# Directory properties a mapping can read, per kind of object (apps.connectors.properties holds the
# user's: what each reads and its value). `status` reads as a boolean (active or not) so that it maps
# onto SCIM `active`; `groups` is the list of group names. Custom attributes are `custom.<name>`.
USER_PROPERTIES: dict[str, str] = USER_PROPERTY_LABELS
SCIM_USER_PROPERTIES: dict[str, str] = SCIM_USER_PROPERTY_LABELS
GROUP_PROPERTIES: dict[str, str] = {
    "id": "Directory id (UUID)",
    "name": "Group name",
    "description": "Description",
    "external_id": "External id from the upstream source",
    "members": "Members (provisioned users)",
}
# An OIDC claim may also say whether the email is verified: the directory owns its users' company
# addresses, so a user who has one has a verified one.
OIDC_CLAIM_PROPERTIES: dict[str, str] = {
    **USER_PROPERTIES,
    "email_verified": "Email verified (true when the user has a company email)",
}
# Claims the protocol sets itself; a mapping cannot name them.
OIDC_RESERVED_CLAIMS = frozenset(
    {"iss", "sub", "aud", "exp", "iat", "nbf", "auth_time", "nonce", "acr", "amr", "azp", "at_hash", "c_hash",
     "sid", "jti", "typ", "cnf"}
)  # fmt: skip
# Properties whose values are not text: they cannot be embedded in a template.
_NON_TEXT = {*NON_TEXT_PROPERTIES, "members", "email_verified"}

SCIM_USER_ATTRIBUTES: dict[str, set[str] | None] = {
    # attribute -> sub-attributes (None: a simple attribute)
    "username": None,
    "name": {"formatted", "familyname", "givenname", "middlename", "honorificprefix", "honorificsuffix"},
    "displayname": None,
    "nickname": None,
    "profileurl": None,
    "title": None,
    "usertype": None,
    "preferredlanguage": None,
    "locale": None,
    "timezone": None,
    "active": None,
    "externalid": None,
    "emails": {"value", "type", "primary", "display"},
    "phonenumbers": {"value", "type", "primary", "display"},
    "ims": {"value", "type", "primary", "display"},
    "photos": {"value", "type", "primary", "display"},
    "addresses": {
        "formatted", "streetaddress", "locality", "region", "postalcode", "country", "type", "primary",
    },
    "entitlements": {"value", "type", "primary", "display"},
    "roles": {"value", "type", "primary", "display"},
    "x509certificates": {"value", "type", "primary", "display"},
}  # fmt: skip
SCIM_GROUP_ATTRIBUTES: dict[str, set[str] | None] = {
    "displayname": None,
    "externalid": None,
    "members": {"value", "display", "type"},
}
ENTERPRISE_USER_URN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ENTERPRISE_USER_ATTRIBUTES: dict[str, set[str] | None] = {
    "employeenumber": None,
    "costcenter": None,
    "organization": None,
    "division": None,
    "department": None,
    # manager.displayName is readOnly (RFC 7643 4.3): the app fills it in from manager.value.
    "manager": {"value"},
}
_READ_ONLY_SUB_ATTRIBUTES = {("manager", "displayname")}
# Set by the server or never writable by a client.
SCIM_READ_ONLY = {"id", "meta", "schemas", "password", "groups"}

_ATTR = r"[A-Za-z][A-Za-z0-9_$-]*"
_VALUE = r'(?:"(?:[^"\\]|\\.)*"|true|false|null|-?\d+(?:\.\d+)?)'
_FILTER = rf"{_ATTR}\s+(?:eq|ne|co|sw|ew|gt|ge|lt|le)\s+{_VALUE}|{_ATTR}\s+pr"
_SCIM_PATH = re.compile(
    rf"^(?:(?P<urn>urn:[A-Za-z0-9._:-]+):)?(?P<attr>{_ATTR})(?:\[(?P<filter>{_FILTER})\])?(?:\.(?P<sub>{_ATTR}))?$"
)
_OIDC_CLAIM = re.compile(r"^[A-Za-z][A-Za-z0-9_.:/-]{0,99}$")
_SAML_NAME = re.compile(r"^[A-Za-z0-9_:./#@-]{1,255}$")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")

SAML_NAME_FORMATS = {
    "": "",
    "basic": "urn:oasis:names:tc:SAML:2.0:attrname-format:basic",
    "uri": "urn:oasis:names:tc:SAML:2.0:attrname-format:uri",
    "unspecified": "urn:oasis:names:tc:SAML:2.0:attrname-format:unspecified",
}


class MappingError(ValueError):
    """A mapping row is invalid; `field` is `source` or `target`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ScimPath:
    urn: str
    attribute: str
    value_filter: str
    sub_attribute: str

    def key(self) -> str:
        """Case-insensitive identity of the target, for duplicate detection."""
        value_filter = " ".join(self.value_filter.split())
        return f"{self.urn}:{self.attribute}[{value_filter}].{self.sub_attribute}".lower()


def properties_for(kind: str) -> dict[str, str]:
    if kind == MappingKind.OIDC:
        return OIDC_CLAIM_PROPERTIES
    if kind == MappingKind.SCIM_USER:
        return SCIM_USER_PROPERTIES
    return GROUP_PROPERTIES if kind == MappingKind.SCIM_GROUP else USER_PROPERTIES


def _known(kind: str, name: str, custom_names: Collection[str] | None) -> bool:
    """Whether `name` is a property of this kind: a fixed one, or `custom.<name>` of a defined custom
    attribute (any well-formed one when `custom_names` is None: the catalog is checked without a
    database)."""
    if name in properties_for(kind):
        return True
    if kind == MappingKind.SCIM_GROUP or not is_custom(name):
        return False
    return custom_names is None or name.removeprefix("custom.") in custom_names


def template_placeholders(source: str) -> list[str]:
    return _PLACEHOLDER.findall(source)


def validate_source(kind: str, source: str, custom_names: Collection[str] | None = None) -> None:
    source = source.strip()
    if not source:
        raise MappingError("source", "Choose a directory property.")
    if _known(kind, source, custom_names):
        return
    if is_custom(source):
        raise MappingError("source", f"There is no custom attribute {source.removeprefix('custom.')!r}.")
    if kind in (MappingKind.SAML, MappingKind.OIDC) and source in SCIM_USER_PROPERTIES:
        raise MappingError("source", f"{source} can only be sent over SCIM.")
    if "{" not in source and "}" not in source:
        raise MappingError(
            "source",
            f"Unknown directory property {source!r}; use one the picker offers (such as username, email, title, "
            "department, manager.email or custom.<name>) or a template such as {first_name}.{last_name}.",
        )
    if source.count("{") != source.count("}") or _PLACEHOLDER.sub("", source).count("{"):
        raise MappingError("source", "Unbalanced braces in the template.")
    names = template_placeholders(source)
    if not names:
        raise MappingError("source", "The template names no property.")
    for name in names:
        if not _known(kind, name, custom_names):
            raise MappingError("source", f"Unknown directory property {{{name}}} in the template.")
        if name in _NON_TEXT:
            raise MappingError("source", f"{{{name}}} is not text and cannot be part of a template.")


def parse_scim_path(target: str) -> ScimPath:
    match = _SCIM_PATH.match(target.strip())
    if not match:
        raise MappingError("target", f"{target!r} is not a valid SCIM attribute path.")
    return ScimPath(
        urn=match["urn"] or "",
        attribute=match["attr"],
        value_filter=match["filter"] or "",
        sub_attribute=match["sub"] or "",
    )


# Properties that are whole lists of SCIM entries, and the one attribute each is written to, whole.
ENTRY_LIST_TARGETS = {"emails": "emails", "phone_numbers": "phonenumbers", "addresses": "addresses", "photos": "photos"}


def _validate_entry_list(kind: str, source: str, target: str) -> bool:
    """Whether `source` is a list of entries (then `target` must be its attribute, with no sub-attribute)."""
    source = source.strip()
    if kind != MappingKind.SCIM_USER or source not in ENTRY_LIST_TARGETS:
        return False
    path = parse_scim_path(target)
    if path.urn or path.sub_attribute or path.value_filter or path.attribute.lower() != ENTRY_LIST_TARGETS[source]:
        raise MappingError("target", f"{source} is a list of entries with their type and primary: map it onto "
                                     f"{_ENTRY_LIST_NAMES[source]} itself.")  # fmt: skip
    return True


_ENTRY_LIST_NAMES = {"emails": "emails", "phone_numbers": "phoneNumbers", "addresses": "addresses", "photos": "photos"}


def validate_scim_target(kind: str, target: str, *, whole_list: bool = False) -> ScimPath:
    path = parse_scim_path(target)
    attribute = path.attribute.lower()
    if path.urn:
        if path.urn.lower() == ENTERPRISE_USER_URN.lower():
            if kind != MappingKind.SCIM_USER:
                raise MappingError("target", "The enterprise User extension applies to users, not groups.")
            schema = ENTERPRISE_USER_ATTRIBUTES
        elif path.urn.lower().startswith("urn:ietf:params:scim:schemas:core:"):
            raise MappingError("target", "Write core attributes without their schema URN.")
        else:
            return path  # an app's own extension: its attributes are the app's to define
    else:
        schema = SCIM_USER_ATTRIBUTES if kind == MappingKind.SCIM_USER else SCIM_GROUP_ATTRIBUTES
    if attribute in SCIM_READ_ONLY:
        raise MappingError("target", f"{path.attribute} is set by the app itself and cannot be mapped.")
    if attribute not in schema:
        raise MappingError("target", f"{path.attribute} is not an attribute of the SCIM {_kind_word(kind)} schema.")
    subs = schema[attribute]
    if (attribute, path.sub_attribute.lower()) in _READ_ONLY_SUB_ATTRIBUTES:
        named = f"{path.attribute}.{path.sub_attribute}"
        raise MappingError("target", f"{named} is read-only: the app fills it in from {path.attribute}.value.")
    if path.sub_attribute and (subs is None or path.sub_attribute.lower() not in subs):
        raise MappingError("target", f"{path.attribute} has no sub-attribute {path.sub_attribute}.")
    if path.value_filter and subs is None:
        raise MappingError("target", f"{path.attribute} is single-valued and takes no [filter].")
    if subs is not None and not path.sub_attribute and attribute != "members" and not whole_list:
        raise MappingError("target", f"Name a sub-attribute of {path.attribute}, e.g. {path.attribute}.value.")
    return path


def _kind_word(kind: str) -> str:
    return "Group" if kind == MappingKind.SCIM_GROUP else "User"


def validate_saml_target(target: str) -> None:
    if not _SAML_NAME.match(target.strip()):
        raise MappingError("target", "A SAML attribute name is 1-255 letters, digits and _ : . / # @ - (no spaces).")


def validate_oidc_target(target: str) -> None:
    target = target.strip()
    if not _OIDC_CLAIM.match(target):
        raise MappingError("target", "A claim name is 1-100 letters, digits and _ . : / - and starts with a letter.")
    if target in OIDC_RESERVED_CLAIMS:
        raise MappingError("target", f"{target} is set by the protocol itself and cannot be mapped.")


def target_key(kind: str, target: str) -> str:
    if kind in (MappingKind.SAML, MappingKind.OIDC):
        return target.strip()
    return parse_scim_path(target).key()


def validate_mapping(
    kind: str, source: str, target: str, name_format: str = "", *, custom_names: Collection[str] | None = None
) -> None:
    """`custom_names`: the custom attributes defined (None: any `custom.<name>` is accepted)."""
    if kind not in MappingKind.values:
        raise MappingError("kind", f"Choose one of {', '.join(MappingKind.values)}.")
    validate_source(kind, source, custom_names)
    if kind == MappingKind.OIDC:
        validate_oidc_target(target)
        if name_format:
            raise MappingError("name_format", "Only SAML attributes have a name format.")
    elif kind == MappingKind.SAML:
        validate_saml_target(target)
        if name_format not in SAML_NAME_FORMATS and name_format not in SAML_NAME_FORMATS.values():
            raise MappingError("name_format", "Choose basic, uri or unspecified.")
    else:
        if name_format:
            raise MappingError("name_format", "Only SAML attributes have a name format.")
        validate_scim_target(kind, target, whole_list=_validate_entry_list(kind, source, target))
        maps_active = kind == MappingKind.SCIM_USER and parse_scim_path(target).attribute.lower() == "active"
        if maps_active and source != "status":
            raise MappingError("source", "active takes the status property (true when the user is active).")


def render_source(source: str, values: dict[str, object]) -> object:
    """The value a mapping's source gives for one user or group (`values` holds its properties)."""
    if source in values:
        return values[source]
    if "{" not in source:
        return None  # a property this user has no value of (a custom attribute left empty)
    return _PLACEHOLDER.sub(lambda match: str(values.get(match.group(1)) or ""), source)
