"""Errors that services raise and the edges (API, forms, SCIM) turn into responses."""

from django.core.exceptions import PermissionDenied, ValidationError


class ApplicationError(Exception):
    """A rule of the domain was broken; the message is safe to show to the caller."""

    def __init__(self, message: str, *, code: str = "invalid", extra: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.extra = extra or {}


class NotFoundError(ApplicationError):
    def __init__(self, message: str = "Not found.") -> None:
        super().__init__(message, code="not_found")


class PermissionRefused(ApplicationError, PermissionDenied):
    """The caller (a person's role, a token's scope) may not do this: 403 at every edge.

    Also Django's PermissionDenied, so a console view that does not catch it answers 403."""


class ConflictError(ApplicationError):
    """The change would break something that depends on the object (409 at the edges)."""


def field_error(field: str, message: str, code: str = "invalid") -> ValidationError:
    """A ValidationError that names the field it is about."""
    return ValidationError({field: ValidationError(message, code=code)})
