from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from apps.api.models import ApiToken
from apps.audit.services import audit_record
from apps.common.errors import ApplicationError
from apps.common.tokens import hash_secret, issue_secret
from apps.directory.models import User

# Writing last-used on every request would turn every API read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@transaction.atomic
def api_token_create(
    *, actor: User | None, user: User, name: str, expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """Create a token for `user`. Returns the row and the secret, which is never available again."""
    if not user.is_staff:
        raise ApplicationError(f"{user.username} is not staff; only staff may use the admin API.", code="not_staff")
    if not user.is_active:
        raise ApplicationError(f"{user.username} is not active.", code="inactive")
    issued = issue_secret("api")
    token = ApiToken.objects.create(
        user=user,
        name=(name or "api token").strip()[:100],
        prefix=issued.prefix,
        secret_hash=issued.secret_hash,
        expires_at=expires_at,
    )
    audit_record(
        actor=actor, action="api_token.create", target=token, after={"name": token.name, "user": user.username}
    )
    return token, issued.secret


@transaction.atomic
def api_token_revoke(*, actor: User | None, token: ApiToken) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(actor=actor, action="api_token.revoke", target=token)
    return token


def api_token_authenticate(*, secret: str, ip: str | None) -> ApiToken | None:
    """The live token for `secret`, with its last use recorded; None if unknown, revoked or expired."""
    token = (
        ApiToken.objects.select_related("user").filter(secret_hash=hash_secret(secret), revoked_at__isnull=True).first()
    )
    if token is None:
        return None
    now = timezone.now()
    if token.expires_at is not None and token.expires_at <= now:
        return None
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION or token.last_used_ip != ip:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now, last_used_ip=ip)
        token.last_used_at, token.last_used_ip = now, ip
    return token
