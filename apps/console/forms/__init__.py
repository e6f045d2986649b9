"""Form helpers shared by the console's pages."""

from collections.abc import Callable, Mapping
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from apps.common.errors import ApplicationError


def add_service_errors(form: forms.Form, error: Exception) -> None:
    """Show a service's ValidationError or ApplicationError on the form: on its field when it names one."""
    if isinstance(error, ValidationError) and hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            target = field if field in form.fields else None
            for item in errors:
                form.add_error(target, item.messages[0] if hasattr(item, "messages") else str(item))
        return
    message = getattr(error, "message", None) or "; ".join(getattr(error, "messages", [str(error)]))
    form.add_error(None, message)


def save_changed_fields(form: forms.Form, initial: Mapping[str, Any], update: Callable[..., Any]) -> bool | None:
    """Send only the fields that changed to `update(**changes)` (a service).

    True when something changed, False when nothing did, None when the service refused: then its
    errors are on the form, on the fields they name.
    """
    changes = {name: value for name, value in form.cleaned_data.items() if value != initial[name]}
    if not changes:
        return False
    try:
        update(**changes)
    except (ValidationError, ApplicationError) as error:
        add_service_errors(form, error)
        return None
    return True
