"""Template helpers shared by every console page."""

from django import template
from django.forms import BoundField

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
