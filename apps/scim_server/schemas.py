"""What /Schemas, /ResourceTypes and /ServiceProviderConfig publish: only what this server does.

The documents start from django-scim2's copies of the RFC 7643 schemas and keep just the attributes
the directory stores, with the characteristics that hold here (for example `name.formatted` is the
display name, `emails.primary` is always true and only returned on request). The same documents
drive request validation, so what is published and what is accepted cannot drift apart.
"""

import copy
import functools
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlunsplit

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from django_scim import schemas as stock_schemas
from django_scim.constants import SchemaURI
from django_scim.models import SCIMServiceProviderConfig

USER_SCHEMA = SchemaURI.USER
ENTERPRISE_SCHEMA = SchemaURI.ENTERPRISE_USER
GROUP_SCHEMA = SchemaURI.GROUP
LIST_RESPONSE = SchemaURI.LIST_RESPONSE
PATCH_OP = SchemaURI.PATCH_OP
SEARCH_REQUEST = SchemaURI.SERACH_REQUEST
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"

_STOCK = {document["id"]: document for document in stock_schemas.ALL}


def base_location(request: HttpRequest | None = None, *args: Any, **kwargs: Any) -> str:
    """django-scim2's BASE_LOCATION_GETTER: the scheme and host the client called."""
    if request is not None:
        cached = getattr(request, "_scim_base_location", None)
        if cached is None:
            cached = request._scim_base_location = f"{request.scheme}://{request.get_host()}"
        return cached
    provider = settings.SCIM_SERVICE_PROVIDER
    return urlunsplit((provider["SCHEME"], provider["NETLOC"], "", "", ""))


def _stock_attribute(schema_id: str, name: str) -> dict:
    for attribute in _STOCK[schema_id]["attributes"]:
        if attribute["name"] == name:
            return copy.deepcopy(attribute)
    raise KeyError(name)


def _keep_sub_attributes(attribute: dict, names: list[str], **overrides: dict) -> dict:
    by_name = {sub["name"]: sub for sub in attribute.get("subAttributes", [])}
    attribute["subAttributes"] = [{**by_name[name], **overrides.get(name, {})} for name in names]
    return attribute


def _user_attributes(*, with_password: bool) -> list[dict]:
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
    active = _stock_attribute(USER_SCHEMA, "active")
    active.update(
        required=True,
        caseExact=False,
        uniqueness="none",
        description="true for an active user, false for a suspended (or not yet started) one. Defaults to true.",
    )
    emails = _keep_sub_attributes(
        _stock_attribute(USER_SCHEMA, "emails"),
        ["value", "type", "primary"],
        value={"description": "The company email address; the directory keeps one per user."},
        type={"canonicalValues": ["work"], "description": "Always 'work'."},
        primary={
            "mutability": "readOnly",
            "returned": "request",
            "description": "Always true: the directory keeps one email per user.",
        },
    )
    emails["description"] = "The user's email; the directory keeps one, so at most one value is stored."
    groups = _keep_sub_attributes(
        _stock_attribute(USER_SCHEMA, "groups"),
        ["value", "$ref", "display", "type"],
        type={"canonicalValues": ["direct"]},
    )
    attributes = [user_name, name, display_name, active, emails, groups]
    if with_password:
        password = _stock_attribute(USER_SCHEMA, "password")
        password["description"] = "Write-only; never returned."
        attributes.insert(4, password)
    return attributes


def _enterprise_attributes() -> list[dict]:
    employee_number = _stock_attribute(ENTERPRISE_SCHEMA, "employeeNumber")
    employee_number["description"] = "The employee ID."
    return [employee_number]


def _group_attributes() -> list[dict]:
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
        {
            "name": "display",
            "type": "string",
            "multiValued": False,
            "description": "The member's userName.",
            "required": False,
            "caseExact": False,
            "mutability": "readOnly",
            "returned": "request",
            "uniqueness": "none",
        }
    )
    return [display_name, members]


def _schema(schema_id: str, name: str, description: str, attributes: list[dict], request: HttpRequest | None) -> dict:
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": schema_id,
        "name": name,
        "description": description,
        "attributes": attributes,
        "meta": {"resourceType": "Schema", "location": schema_location(schema_id, request)},
    }


def schema_location(schema_id: str, request: HttpRequest | None = None) -> str:
    return base_location(request) + reverse("scim_server:schema", kwargs={"schema_id": schema_id})


def _discovery_schema(schema_id: str, request: HttpRequest | None) -> dict:
    stock = copy.deepcopy(_STOCK[schema_id])
    return _schema(stock["id"], stock["name"], stock.get("description", ""), stock["attributes"], request)


def schema_documents(request: HttpRequest | None = None) -> list[dict]:
    """Every schema this server publishes (django-scim2's SCHEMAS_GETTER)."""
    return [
        _schema(USER_SCHEMA, "User", "User Account", _user_attributes(with_password=password_writable()), request),
        _schema(ENTERPRISE_SCHEMA, "EnterpriseUser", "Enterprise User", _enterprise_attributes(), request),
        _schema(GROUP_SCHEMA, "Group", "Group", _group_attributes(), request),
        _discovery_schema(SchemaURI.SERVICE_PROVIDER_CONFIG, request),
        _discovery_schema(SchemaURI.RESOURCE_TYPE, request),
        _discovery_schema("urn:ietf:params:scim:schemas:core:2.0:Schema", request),
    ]


def password_writable() -> bool:
    return bool(settings.SCIM_ALLOW_PASSWORD_WRITE)


def resource_type_documents(request: HttpRequest | None = None) -> list[dict]:
    base = base_location(request)
    documents = [
        {
            "schemas": [SchemaURI.RESOURCE_TYPE],
            "id": "User",
            "name": "User",
            "endpoint": "/Users",
            "description": "User Account",
            "schema": USER_SCHEMA,
            "schemaExtensions": [{"schema": ENTERPRISE_SCHEMA, "required": False}],
        },
        {
            "schemas": [SchemaURI.RESOURCE_TYPE],
            "id": "Group",
            "name": "Group",
            "endpoint": "/Groups",
            "description": "Group",
            "schema": GROUP_SCHEMA,
            "schemaExtensions": [],
        },
    ]
    for document in documents:
        path = reverse("scim_server:resource-type", kwargs={"type_id": document["id"]})
        document["meta"] = {"resourceType": "ResourceType", "location": base + path}
    return documents


class ServiceProviderConfig(SCIMServiceProviderConfig):
    """django-scim2's SERVICE_PROVIDER_CONFIG_MODEL, stating what is supported and the limits."""

    @property
    def location(self) -> str:
        return base_location(self.request) + reverse("scim_server:service-provider-config")

    def to_dict(self) -> dict:
        document = super().to_dict()
        document.update(
            {
                "patch": {"supported": True},
                "bulk": {
                    "supported": True,
                    "maxOperations": settings.SCIM_BULK_MAX_OPERATIONS,
                    "maxPayloadSize": settings.SCIM_MAX_PAYLOAD_BYTES,
                },
                "filter": {"supported": True, "maxResults": settings.SCIM_MAX_PAGE_SIZE},
                "changePassword": {"supported": password_writable()},
                "sort": {"supported": True},
                "etag": {"supported": True},
            }
        )
        if not document.get("documentationUri"):
            document.pop("documentationUri", None)
        return document


# --- Attribute definitions used to validate requests -------------------------------------------


@dataclass
class AttributeDef:
    name: str
    type: str
    multi_valued: bool = False
    mutability: str = "readWrite"
    returned: str = "default"
    required: bool = False
    case_exact: bool = False
    sub_attributes: dict[str, "AttributeDef"] = field(default_factory=dict)

    @property
    def writable(self) -> bool:
        return self.mutability in ("readWrite", "writeOnly", "immutable")


def _attribute_def(document: dict) -> AttributeDef:
    return AttributeDef(
        name=document["name"],
        type=document["type"],
        multi_valued=bool(document.get("multiValued")),
        mutability=document.get("mutability", "readWrite"),
        returned=document.get("returned", "default"),
        required=bool(document.get("required")),
        case_exact=bool(document.get("caseExact")),
        sub_attributes={sub["name"].lower(): _attribute_def(sub) for sub in document.get("subAttributes", [])},
    )


# Common attributes (RFC 7643 §3.1), part of every resource but of no schema document.
COMMON_ATTRIBUTES = {
    "id": AttributeDef("id", "string", mutability="readOnly", returned="always", case_exact=True),
    "externalid": AttributeDef("externalId", "string", case_exact=True),
    "meta": AttributeDef("meta", "complex", mutability="readOnly"),
    "schemas": AttributeDef("schemas", "reference", multi_valued=True, mutability="readOnly"),
}


def attribute_defs(schema_id: str) -> dict[str, AttributeDef]:
    """The attributes of one schema, by lower-cased name."""
    return _attribute_defs(schema_id, password_writable())


@functools.lru_cache(maxsize=16)
def _attribute_defs(schema_id: str, with_password: bool) -> dict[str, AttributeDef]:
    attributes = {
        USER_SCHEMA: lambda: _user_attributes(with_password=with_password),
        ENTERPRISE_SCHEMA: _enterprise_attributes,
        GROUP_SCHEMA: _group_attributes,
    }[schema_id]()
    return {attribute["name"].lower(): _attribute_def(attribute) for attribute in attributes}
