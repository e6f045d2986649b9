"""Template helpers shared by every console page."""

import re
from dataclasses import dataclass

from django import template
from django.forms import BaseForm, BoundField
from django.forms.formsets import BaseFormSet
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe

from apps.directory.roles import has_capability

register = template.Library()


@register.filter
def can(user, capability: str) -> bool:
    """`{% if user|can:"manage_connectors" %}`: show an action only to roles that may take it."""
    return has_capability(user, capability)


@register.inclusion_tag("console/_field.html")
def field(bound_field: BoundField, *, wide: bool = False) -> dict:
    """A labelled form field with its help text and inline errors, wired up for screen readers."""
    return {"field": bound_field, "wide": wide}


@dataclass(frozen=True)
class FormError:
    message: str
    label: str = ""
    anchor: str = ""  # the id of the field to go to; "" for an error of the whole form


def _anchor(bound_field: BoundField) -> str:
    if bound_field.is_hidden:
        return ""
    # A group of radio buttons or checkboxes has no id of its own: go to its first choice.
    return bound_field.id_for_label or f"{bound_field.auto_id}_0"


def _form_entries(form: BaseForm, row: int | None = None) -> list[FormError]:
    entries = []
    visible = form.visible_fields()
    first = _anchor(visible[0]) if visible else ""
    where = f" (row {row})" if row is not None else ""
    for message in form.non_field_errors():
        entries.append(FormError(message, f"Row {row}" if row is not None else "", first if row is not None else ""))
    for name in form.errors:
        if name not in form.fields:
            continue
        bound = form[name]
        for message in bound.errors:
            entries.append(FormError(message, f"{bound.label or name}{where}", _anchor(bound) or first))
    return entries


def _formset_entries(formset: BaseFormSet, title: str) -> list[FormError]:
    forms = [form for form in formset.forms if form.visible_fields()]
    first = _anchor(forms[0].visible_fields()[0]) if forms else ""
    entries = [FormError(message, title, first) for message in formset.non_form_errors()]
    for row, form in enumerate(formset.forms, start=1):
        entries.extend(
            FormError(entry.message, f"{title}: {entry.label}" if title else entry.label, entry.anchor)
            for entry in _form_entries(form, row)
        )
    return entries


@register.inclusion_tag("console/_form_errors.html")
def form_errors(*forms: BaseForm | BaseFormSet | None, title: str = "") -> dict:
    """The error summary at the top of a page (`{% form_errors form acs_formset %}`): every error of
    the given forms and formsets, each a link to the field it is about (by the field's id), so a
    failed save says what is wrong where the page opens, however far down the field sits.

    `title` (or a formset's own `title` attribute) names the rows of a formset, e.g. "ACS URLs"."""
    entries: list[FormError] = []
    for item in forms:
        if isinstance(item, BaseFormSet):
            entries.extend(_formset_entries(item, getattr(item, "title", "") or title))
        elif isinstance(item, BaseForm):
            entries.extend(_form_entries(item))
    return {"errors": entries}


_STATUS_TONES = {
    "active": "ok",
    "synced": "ok",
    "succeeded": "ok",
    "enabled": "ok",
    "suspended": "warn",
    "staged": "info",
    "pending": "info",
    "retrying": "warn",
    "paused": "warn",
    "up_to_date": "ok",
    "syncing": "info",
    "failing": "bad",
    "off": "muted",
    "held": "warn",
    "failed": "bad",
    "error": "bad",
    "disabled": "muted",
    "revoked": "muted",
    "deprovisioned": "muted",
}


@register.inclusion_tag("console/_badge.html")
def badge(value: str, label: str = "") -> dict:
    """A coloured status pill; the text always says the status, the colour only repeats it."""
    key = str(value).lower()
    return {"tone": _STATUS_TONES.get(key, "muted"), "label": label or str(value).replace("_", " ").capitalize()}


# A URL breaks after a slash, or before its query and each parameter: nowhere inside a name.
_URL_PIECES = re.compile(r"[^/?&]*/+|[?&][^/?&]*|[^/?&]+")


@register.filter(needs_autoescape=True)
def url_text(value: object, autoescape: bool = True) -> SafeString:
    """A URL to read and copy (`{{ connector.sso_url|url_text }}`): monospace, each piece between
    slashes kept whole, so that a narrow screen wraps it after a slash and never mid-word. Copying
    it (or its `textContent`) gives the URL unchanged."""
    escape = conditional_escape if autoescape else str
    pieces = _URL_PIECES.findall(str(value) if value is not None else "")
    inner = "<wbr>".join(f"<span>{escape(piece)}</span>" for piece in pieces)
    return mark_safe(f'<span class="c-url">{inner}</span>')  # noqa: S308 - every piece is escaped above


@register.filter(needs_autoescape=True)
def breakable(value: object, after: str = ".", autoescape: bool = True) -> SafeString:
    """Text that may wrap after any of the characters `after` and nowhere else inside a word:
    `{{ event.action|breakable }}` (user.admin_role.update), `{{ user.email|breakable:"@." }}`."""
    escape = conditional_escape if autoescape else str
    text = str(escape(str(value) if value is not None else ""))
    for character in after:
        text = text.replace(character, f"{character}<wbr>")
    return mark_safe(text)  # noqa: S308 - escaped above; only <wbr> is added
