"""What /Schemas, /ResourceTypes and /ServiceProviderConfig publish: only what this server does.

The documents start from django-scim2's copies of the RFC 7643 schemas and keep just the attributes
the directory stores, with the characteristics that hold here (for example `name.formatted` is the
display name, `emails.primary` is always true and only returned on request). The same documents
drive request validation, so what is published and what is accepted cannot drift apart.
"""

import functools
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlunsplit

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from django_scim.constants import SchemaURI
from django_scim.models import SCIMServiceProviderConfig

from apps.directory.attributes import custom_attribute_definitions
from apps.directory.models import CustomAttribute
from apps.scim_server.schema_attributes import (
    CUSTOM_USER_SCHEMA,
    ENTERPRISE_SCHEMA,
    GROUP_SCHEMA,
    USER_SCHEMA,
    custom_attributes,
    enterprise_attributes,
    group_attributes,
    stock_document,
    user_attributes,
)

LIST_RESPONSE = SchemaURI.LIST_RESPONSE
PATCH_OP = SchemaURI.PATCH_OP
SEARCH_REQUEST = SchemaURI.SERACH_REQUEST
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"


def base_location(request: HttpRequest | None = None, *args: Any, **kwargs: Any) -> str:
    """django-scim2's BASE_LOCATION_GETTER: the scheme and host the client called."""
    if request is not None:
        cached = getattr(request, "_scim_base_location", None)
        if cached is None:
            cached = request._scim_base_location = f"{request.scheme}://{request.get_host()}"
        return cached
    provider = settings.SCIM_SERVICE_PROVIDER
    return urlunsplit((provider["SCHEME"], provider["NETLOC"], "", "", ""))


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
    stock = stock_document(schema_id)
    return _schema(stock["id"], stock["name"], stock.get("description", ""), stock["attributes"], request)


def custom_definitions() -> list[CustomAttribute]:
    """The admin-defined custom attributes, read afresh on each request (another process may have
    just added one), by name."""
    return custom_attribute_definitions()


def schema_documents(request: HttpRequest | None = None) -> list[dict]:
    """Every schema this server publishes (django-scim2's SCHEMAS_GETTER). The custom extension is
    published once an admin has defined a custom attribute."""
    documents = [
        _schema(USER_SCHEMA, "User", "User Account", user_attributes(with_password=password_writable()), request),
        _schema(ENTERPRISE_SCHEMA, "EnterpriseUser", "Enterprise User", enterprise_attributes(), request),
    ]
    definitions = custom_definitions()
    if definitions:
        documents.append(
            _schema(
                CUSTOM_USER_SCHEMA,
                "CustomUser",
                "Attributes defined by this directory's administrators",
                custom_attributes(definitions),
                request,
            )
        )
    return [
        *documents,
        _schema(GROUP_SCHEMA, "Group", "Group", group_attributes(), request),
        _discovery_schema(SchemaURI.SERVICE_PROVIDER_CONFIG, request),
        _discovery_schema(SchemaURI.RESOURCE_TYPE, request),
        _discovery_schema("urn:ietf:params:scim:schemas:core:2.0:Schema", request),
    ]


def password_writable() -> bool:
    return bool(settings.SCIM_ALLOW_PASSWORD_WRITE)


def resource_type_documents(request: HttpRequest | None = None) -> list[dict]:
    base = base_location(request)
    user_extensions = [{"schema": ENTERPRISE_SCHEMA, "required": False}]
    definitions = custom_definitions()
    if definitions:
        # Required when an admin made one of its attributes required: a User must carry it.
        required = any(definition.required for definition in definitions)
        user_extensions.append({"schema": CUSTOM_USER_SCHEMA, "required": required})
    documents = [
        {
            "schemas": [SchemaURI.RESOURCE_TYPE],
            "id": "User",
            "name": "User",
            "endpoint": "/Users",
            "description": "User Account",
            "schema": USER_SCHEMA,
            "schemaExtensions": user_extensions,
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
        USER_SCHEMA: lambda: user_attributes(with_password=with_password),
        ENTERPRISE_SCHEMA: enterprise_attributes,
        GROUP_SCHEMA: group_attributes,
    }[schema_id]()
    return {attribute["name"].lower(): _attribute_def(attribute) for attribute in attributes}


def custom_attribute_defs(definitions: list[CustomAttribute]) -> dict[str, AttributeDef]:
    """The custom extension's attributes, by lower-cased name."""
    return {
        definition.name.lower(): _attribute_def(document)
        for definition, document in zip(definitions, custom_attributes(definitions), strict=True)
    }
