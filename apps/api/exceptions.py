"""One place where domain errors become API responses."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from apps.common.errors import ApplicationError, ConflictError, NotFoundError, PermissionRefused


def _django_validation_detail(exc: DjangoValidationError) -> dict | list:
    """Field errors keyed by field; dotted names (`sso.acs_urls`) become nested objects."""
    if not hasattr(exc, "error_dict"):
        return {"non_field_errors": exc.messages}
    detail: dict = {}
    for field, errors in exc.error_dict.items():
        messages = [str(message) for error in errors for message in error.messages]
        *parents, leaf = field.split(".")
        node = detail
        for part in parents:
            node = node.setdefault(part, {})
        node.setdefault(leaf, []).extend(messages)
    return detail


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, DjangoValidationError):
        return Response(_django_validation_detail(exc), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, NotFoundError):
        return Response({"detail": exc.message}, status=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, ApplicationError):
        body = {"detail": exc.message, "code": exc.code, **exc.extra}
        code = status.HTTP_400_BAD_REQUEST
        if isinstance(exc, PermissionRefused):
            code = status.HTTP_403_FORBIDDEN
        elif isinstance(exc, ConflictError):
            code = status.HTTP_409_CONFLICT
        return Response(body, status=code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    return exception_handler(exc, context)
