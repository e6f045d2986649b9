"""Lockouts after failed sign-ins: django-axes hooks (which account an attempt counts against,
what a locked-out client sees), the audit row when one starts, and the admin unlock."""

from typing import Any

from axes.helpers import get_failure_limit
from axes.utils import reset as axes_reset
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.audit.services import audit_record
from apps.directory.models import User
from apps.directory.selectors import user_get_by_username
from apps.portal.selectors import sign_in_account

# Longest value kept as the attempted username (a password pasted into the wrong field stays short).
_MAX_USERNAME = 150


def attempted_username(request: HttpRequest, credentials: dict[str, Any] | None) -> str:
    """The account an attempt is counted against: the one the password check resolved
    (`sign_in_account`: username first, then email), case-folded; an unknown name counts as typed.

    So "Jane.Doe", "jane.doe" and "jane@example.com" share one failure counter, and failures
    typed as a string that is one user's username and another's email are charged to the first,
    whose password was checked. Known and unknown names cost the same lookups.
    """
    value = ""
    if credentials:
        value = credentials.get("username") or ""
    if not value and request is not None:
        value = request.POST.get("username", "") if request.method == "POST" else ""
    value = str(value).strip()[:_MAX_USERNAME]
    account = sign_in_account(value)
    return account.username.lower() if account is not None else value.lower()


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: Any = None
) -> HttpResponse:
    """The page a locked-out client gets instead of the sign-in form (HTTP 429)."""
    from apps.portal.policy import lockout_cooloff_text

    return render(request, "portal/locked.html", {"cooloff": lockout_cooloff_text()}, status=429)


# --- Lifting and recording lockouts -------------------------------------------------------------


def account_lockout_clear(user: User) -> int:
    """Forget the account's failed attempts (from every address); returns how many were removed."""
    return axes_reset(username=user.username.lower())


def portal_unlock(*, actor: Any | None, user: User) -> int:
    """Lift a lockout of the user's account (the admin unlock); returns attempts removed."""
    removed = account_lockout_clear(user)
    with transaction.atomic():
        audit_record(actor=actor, action="portal.unlock", target=user, after={"attempts_removed": removed})
    return removed


def portal_unlock_ip(*, actor: Any | None, ip: str) -> int:
    removed = axes_reset(ip=ip)
    with transaction.atomic():
        audit_record(
            actor=actor, action="portal.unlock", target_label=ip, after={"attempts_removed": removed, "ip": ip}
        )
    return removed


def record_lockout(*, request: HttpRequest | None, username: str | None, ip_address: str | None) -> None:
    """`user_locked_out` receiver body: audit the moment a lockout starts."""
    user = user_get_by_username(username) if username else None
    with transaction.atomic():
        audit_record(
            actor=None,
            action="portal.lockout",
            target=user,
            target_label="" if user else (username or ip_address or "")[:150],
            after={"username": username, "ip": ip_address, "limit": get_failure_limit(request, {"username": username})},
            actor_label="axes",
        )
