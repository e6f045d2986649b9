"""Errors that services raise and the edges (API, forms, SCIM) turn into responses."""

from django.core.exceptions import ValidationError


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


def field_error(field: str, message: str, code: str = "invalid") -> ValidationError:
    """A ValidationError that names the field it is about."""
    return ValidationError({field: ValidationError(message, code=code)})
