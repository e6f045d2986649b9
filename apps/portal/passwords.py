"""Passwords a person sets themselves: the emailed reset link they ask for (or an admin sends them),
and changing their own, which a temporary password set by an admin requires at the next sign-in.

The reset throttle counts from the audit trail (shared by every web process); completing a reset
ends every session of the account and lifts its lockout. Every password is stored through
apps.directory.services.user_set_password, which owns the rule of what is temporary.
"""

import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import update_session_auth_hash
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.services import audit_record
from apps.common.errors import ApplicationError
from apps.directory import services as directory
from apps.directory.models import User
from apps.directory.roles import require_reach
from apps.portal.lockout import account_lockout_clear, count_failure, is_locked_out
from apps.portal.services import sign_out_everywhere


def password_reset_allowed(*, user: User | None, ip: str | None) -> bool:
    """At most PASSWORD_RESET_MAX_PER_ACCOUNT emails per account and PASSWORD_RESET_MAX_PER_IP
    requests per client address in PASSWORD_RESET_WINDOW_SECONDS, counted from the audit trail
    (shared by every web process, unlike a per-process cache), so the form cannot flood a mailbox."""
    since = timezone.now() - datetime.timedelta(seconds=settings.PASSWORD_RESET_WINDOW_SECONDS)
    attempts = AuditEvent.objects.filter(
        action__in=("portal.password_reset.request", "portal.password_reset.throttled"), created__gte=since
    )
    if user is not None:
        sent = attempts.filter(
            action="portal.password_reset.request", target_type=user._meta.label_lower, target_id=str(user.pk)
        )
        if sent.count() >= settings.PASSWORD_RESET_MAX_PER_ACCOUNT:
            return False
    return not (ip and attempts.filter(ip=ip).count() >= settings.PASSWORD_RESET_MAX_PER_IP)


@transaction.atomic
def password_reset_record(*, user: User | None, throttled: bool) -> None:
    """A reset was asked for (`user` None for an unknown email); the throttle counts these rows."""
    audit_record(
        actor=user,
        action="portal.password_reset.throttled" if throttled else "portal.password_reset.request",
        target=user,
        target_label="" if user else "unknown email",
        actor_label=user.username if user else "anonymous",
    )


def password_reset_complete(*, user: User, password: str) -> None:
    """Set the new password (the policy in AUTH_PASSWORD_VALIDATORS applies), end every session
    and clear the account's lockout: whoever holds the mailbox has proved it is theirs."""
    with transaction.atomic():
        directory.user_set_password(actor=user, user=user, password=password)
        audit_record(actor=user, action="portal.password_reset", target=user)
    sign_out_everywhere(actor=user, user=user)
    account_lockout_clear(user)


class PasswordChangeError(ApplicationError):
    """A refused change, with the form field it is about."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message, code="password_change")
        self.field = field


def password_change(request: HttpRequest, *, current: str, new: str, again: str) -> User:
    """The signed-in person chooses a new password. The current one is asked unless an admin set a
    temporary one that this sign-in just used (it must then be replaced, and by something else).
    Wrong current passwords count towards the lockout, as at the sign-in page."""
    user = request.user
    if not user.must_change_password:
        if is_locked_out(request, user):
            raise PasswordChangeError("Too many failed attempts: try again later.", field="current")
        if not user.check_password(current):
            count_failure(request, user)
            raise PasswordChangeError("That is not your current password.", field="current")
    if new != again:
        raise PasswordChangeError("The two new passwords differ.", field="again")
    if user.check_password(new):
        raise PasswordChangeError("Choose a password other than the one you have now.", field="new")
    try:
        directory.user_set_password(actor=user, user=user, password=new)
    except ValidationError as exc:
        raise PasswordChangeError(" ".join(exc.message_dict.get("password", exc.messages)), field="new") from exc
    # The session stays signed in: its hash follows the new password.
    update_session_auth_hash(request, user)
    return user


class PasswordResetUnavailable(ApplicationError):
    pass


def password_reset_send(*, actor: Any | None, user: User) -> None:
    """Email `user` the portal's own password-reset link (the same token, templates and expiry)."""
    from django.contrib.auth.tokens import default_token_generator
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    from apps.portal.forms import PortalPasswordResetForm

    require_reach(actor, [user])
    if not user.email:
        raise PasswordResetUnavailable("This user has no email address: set a temporary password instead.")
    if not user.is_active:
        raise PasswordResetUnavailable("This account is not active: reactivate it first.")
    scheme, _, host = settings.PORTAL_BASE_URL.partition("://")
    context = {
        "email": user.email,
        "domain": host,
        "site_name": host,
        "uid": urlsafe_base64_encode(force_bytes(user.pk)),
        "user": user,
        "token": default_token_generator.make_token(user),
        "protocol": scheme,
        "portal_base_url": settings.PORTAL_BASE_URL,
        "timeout_minutes": settings.PASSWORD_RESET_TIMEOUT // 60,
    }
    PortalPasswordResetForm().send_mail(
        "portal/email/password_reset_subject.txt",
        "portal/email/password_reset.txt",
        context,
        settings.DEFAULT_FROM_EMAIL,
        user.email,
    )
    with transaction.atomic():
        audit_record(actor=actor, action="portal.password_reset.sent", target=user, after={"email": user.email})
