"""SCIM errors (RFC 7644 §3.12): one exception type, turned into a response at the view edge."""

import json

from django.http import HttpResponse
from django_scim.constants import SCIM_CONTENT_TYPE, SchemaURI
from django_scim.exceptions import SCIMException


class ScimError(SCIMException):
    """A SCIM error response: HTTP status, optional scimType, and a detail safe to show."""

    def __init__(self, status: int, detail: str, scim_type: str | None = None, headers: dict | None = None) -> None:
        super().__init__(detail, status=status, scim_type=scim_type)
        self.headers = headers or {}

    def to_dict(self) -> dict:
        body = {"schemas": [SchemaURI.ERROR], "status": str(self.status), "detail": self.detail}
        if self.scim_type:
            body["scimType"] = self.scim_type
        return body

    def response(self) -> HttpResponse:
        return error_response(self)


def invalid_filter(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidFilter")


def invalid_syntax(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidSyntax")


def invalid_path(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidPath")


def invalid_value(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidValue")


def no_target(detail: str) -> ScimError:
    return ScimError(400, detail, "noTarget")


def mutability(detail: str) -> ScimError:
    return ScimError(400, detail, "mutability")


def uniqueness(detail: str) -> ScimError:
    return ScimError(409, detail, "uniqueness")


def not_found(detail: str = "Resource not found.") -> ScimError:
    return ScimError(404, detail)


def too_large(detail: str) -> ScimError:
    return ScimError(413, detail)


def error_response(error: ScimError) -> HttpResponse:
    response = HttpResponse(json.dumps(error.to_dict()), content_type=SCIM_CONTENT_TYPE, status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    return response
