"""Lockouts after failed sign-ins: how django-axes judges them (per account and per address,
each with its own limit and cool-off), which account an attempt counts against, what a
locked-out client sees, the audit row when one starts, and the admin unlock.

Every failure reaches axes as Django's `user_login_failed` signal: wrong passwords (the sign-in
page, the SSO sign-in page), wrong second-factor codes and passkeys, wrong answers at the
re-authentication prompts, refused delegated sign-ins. Each is one AccessAttempt row per
(attempted account, client address, user agent), counting up, stamped with its latest failure.
"""

from datetime import timedelta
from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_client_username, get_failure_limit
from axes.models import AccessAttempt
from axes.signals import user_locked_out
from axes.utils import reset as axes_reset
from django.contrib.auth.signals import user_login_failed
from django.db import transaction
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.audit.services import audit_record
from apps.directory.models import User
from apps.directory.roles import require_reach
from apps.directory.selectors import user_get_by_username
from apps.portal.policy import duration_text, sign_in_policy
from apps.portal.selectors import sign_in_account

# Longest value kept as the attempted username (a password pasted into the wrong field stays short).
_MAX_USERNAME = 150

# Which lock holds, on the request (the locked page and the audit row say which).
SCOPE_ATTRIBUTE = "portal_lockout_scope"
ACCOUNT = "account"
ADDRESS = "address"


class PortalLockoutHandler(AxesDatabaseHandler):
    """axes' database handler, judging an account's failures and an address's failures apart.

    The account lock counts failures against one account from any address, up to the policy's
    `lockout_failure_limit` (AXES_FAILURE_LIMIT reads it) within `lockout_cooloff_seconds` (0:
    until an admin unlocks). The address lock counts failures from one client address whatever
    the accounts, up to the much higher `lockout_address_failure_limit` within the short
    `lockout_address_cooloff_seconds`: it stops one address spraying many accounts without
    letting a few typos (or made-up names) lock out everyone behind an office NAT. A cool-off
    runs from the latest failure of each attempt row, as in axes. Either lock refuses the right
    password too.
    """

    def lockout_scope(self, request: HttpRequest, credentials: dict | None = None) -> str | None:
        """ACCOUNT or ADDRESS when that lock holds for this request, else None."""
        policy = sign_in_policy()
        # An attempt that names no account (a refused upstream assertion) counts for its address only.
        if self.get_failures(request, credentials) >= get_failure_limit(request, credentials):
            return ACCOUNT
        address = request.axes_ip_address
        if not address:
            return None
        failures = self._failures(request, {"ip_address": address}, policy.lockout_address_cooloff_seconds)
        return ADDRESS if failures >= policy.lockout_address_failure_limit else None

    @staticmethod
    def _failures(request: HttpRequest, match: dict[str, str], cooloff_seconds: int) -> int:
        attempts = AccessAttempt.objects.filter(**match)
        if cooloff_seconds:
            attempts = attempts.filter(attempt_time__gte=request.axes_attempt_time - timedelta(seconds=cooloff_seconds))
        return attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0

    def get_failures(self, request: HttpRequest, credentials: dict | None = None) -> int:
        """The account's failures (axes keeps the number on the request)."""
        username = get_client_username(request, credentials)
        if not username:
            return 0
        return self._failures(request, {"username": username}, sign_in_policy().lockout_cooloff_seconds)

    def is_locked(self, request: HttpRequest, credentials: dict | None = None) -> bool:
        scope = self.lockout_scope(request, credentials)
        if scope is not None:
            setattr(request, SCOPE_ATTRIBUTE, scope)
        return scope is not None

    def user_login_failed(self, sender: Any, credentials: dict, request: HttpRequest | None = None, **kwargs) -> None:
        """axes records the failure (AXES_LOCK_OUT_AT_FAILURE is off); then this judges both locks."""
        super().user_login_failed(sender, credentials, request, **kwargs)
        if request is None or self.is_whitelisted(request, credentials) or not self.is_locked(request, credentials):
            return
        request.axes_locked_out = True
        request.axes_credentials = credentials
        user_locked_out.send(
            "axes",
            request=request,
            username=get_client_username(request, credentials),
            ip_address=request.axes_ip_address,
        )

    def reset_user_attempts(self, request: HttpRequest, credentials: dict | None = None) -> int:
        """After a successful sign-in: forget that account's failures (from every address) and no
        others. axes would also forget every failure from the address, so that holding one
        working account would reset the address lock for whoever sprays from behind it."""
        username = get_client_username(request, credentials)
        if not username:
            return 0
        removed, _ = AccessAttempt.objects.filter(username=username).delete()
        return removed


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
    """The page a locked-out client gets instead of the sign-in form (HTTP 429): which lock, and
    for how long (the same words whether or not the account exists)."""
    policy = sign_in_policy()
    scope = getattr(request, SCOPE_ATTRIBUTE, ACCOUNT)
    seconds = policy.lockout_address_cooloff_seconds if scope == ADDRESS else policy.lockout_cooloff_seconds
    return render(request, "portal/locked.html", {"scope": scope, "cooloff": duration_text(seconds)}, status=429)


# --- Secrets checked outside the sign-in form ----------------------------------------------------


def is_locked_out(request: HttpRequest, user: User) -> bool:
    """Does a lock hold for this signed-in or half-signed-in user (their account, or this address)?"""
    return not AxesProxyHandler.is_allowed(request, {"username": user.username})


def count_failure(request: HttpRequest, user: User) -> None:
    """A wrong second-factor code or re-authentication answer: counted like a wrong password."""
    user_login_failed.send(sender=__name__, credentials={"username": user.username}, request=request)


# --- Lifting and recording lockouts -------------------------------------------------------------


def account_lockout_clear(user: User) -> int:
    """Forget the account's failed attempts (from every address); returns how many were removed."""
    return axes_reset(username=user.username.lower())


def portal_unlock(*, actor: Any | None, user: User) -> int:
    """Lift a lockout of the user's account (the admin unlock); returns attempts removed."""
    require_reach(actor, [user])
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
    """`user_locked_out` receiver body: audit a failure that meets a lock (the one that starts it,
    and each one refused while it holds), naming the account or the address locked."""
    scope = getattr(request, SCOPE_ATTRIBUTE, ACCOUNT)
    policy = sign_in_policy()
    user = user_get_by_username(username) if username and scope == ACCOUNT else None
    limit = (
        policy.lockout_address_failure_limit if scope == ADDRESS else get_failure_limit(request, {"username": username})
    )
    label = ip_address if scope == ADDRESS else username
    with transaction.atomic():
        audit_record(
            actor=None,
            action="portal.lockout",
            target=user,
            target_label="" if user else (label or "")[:150],
            after={"scope": scope, "username": username, "ip": ip_address, "limit": limit},
            actor_label="axes",
        )
