"""Form helpers shared by the console's pages."""

from collections.abc import Callable, Mapping
from typing import Any

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from apps.common.errors import ApplicationError


def add_service_errors(form: forms.Form, error: Exception, *, field_for: Callable[[str], str] | None = None) -> None:
    """Show a service's ValidationError or ApplicationError on the form.

    Each message goes on the field it names (`field_for` turns a service's field name, such as
    "sso.acs_urls", into the form's); a message for a field the form lacks is shown above the form,
    prefixed with that name.
    """
    if not (isinstance(error, ValidationError) and hasattr(error, "error_dict")):
        texts = getattr(error, "messages", None) if isinstance(error, ValidationError) else None
        form.add_error(None, texts or getattr(error, "message", None) or str(error))
        return
    for name, texts in error.message_dict.items():
        field = field_for(name) if field_for else name
        if field in form.fields:
            form.add_error(field, texts)
        else:
            named = field and field != NON_FIELD_ERRORS
            form.add_error(None, [f"{field}: {text}" if named else text for text in texts])


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
