"""Password resets: the emailed link a person asks for, and the one an admin sends them.

The throttle counts from the audit trail (shared by every web process); completing a reset ends
every session of the account and lifts its lockout.
"""

import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import password_validation
from django.db import transaction
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.services import audit_record
from apps.common.errors import ApplicationError
from apps.directory.models import User
from apps.directory.roles import require_reach
from apps.portal.lockout import account_lockout_clear
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
    password_validation.validate_password(password, user)
    with transaction.atomic():
        user.set_password(password)
        user.save(update_fields=["password", "updated"])
        audit_record(actor=user, action="portal.password_reset", target=user)
    sign_out_everywhere(actor=user, user=user)
    account_lockout_clear(user)


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
