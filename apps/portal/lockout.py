"""django-axes hooks: which account an attempt counts against, and what a locked-out client sees."""

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.directory.selectors import user_get_by_email

# Longest value kept as the attempted username (a password pasted into the wrong field stays short).
_MAX_USERNAME = 150


def attempted_username(request: HttpRequest, credentials: dict[str, Any] | None) -> str:
    """The account an attempt is counted against: case-folded, and an email resolves to its owner.

    So "Jane.Doe", "jane.doe" and "jane@example.com" share one failure counter. The lookup is the
    same for known and unknown names (one indexed query), so it tells nothing about existence.
    """
    value = ""
    if credentials:
        value = credentials.get("username") or ""
    if not value and request is not None:
        value = request.POST.get("username", "") if request.method == "POST" else ""
    value = str(value).strip().lower()[:_MAX_USERNAME]
    if "@" in value:
        owner = user_get_by_email(value)
        if owner is not None:
            return owner.username.lower()
    return value


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: Any = None
) -> HttpResponse:
    """The page a locked-out client gets instead of the sign-in form (HTTP 429)."""
    from apps.portal.policy import lockout_cooloff_text

    return render(request, "portal/locked.html", {"cooloff": lockout_cooloff_text()}, status=429)
