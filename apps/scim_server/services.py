"""SCIM bearer tokens: create (secret shown once), revoke, authenticate."""

from datetime import timedelta
from functools import cache

from django.db import transaction
from django.utils import timezone

from apps.audit.services import Actor, audit_record
from apps.common.db import hot_path_cursor, model_columns, model_from_row
from apps.common.errors import ApplicationError, PermissionRefused
from apps.common.tokens import hash_secret, issue_secret
from apps.directory.models import Group
from apps.directory.roles import is_super_admin
from apps.scim_server.models import ScimToken, ScimTokenScope

# Writing last-used on every request would turn every SCIM read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@cache
def _unrevoked_by_hash_sql() -> str:
    """The unrevoked token with a given hash (unique). Written out and prepared: compiling the same
    query through the ORM cost about 0.2 ms of every SCIM request, and planning it as much again."""
    columns = model_columns(ScimToken, '"scim_server_scimtoken"')
    return f'SELECT {columns} FROM "scim_server_scimtoken" WHERE "secret_hash" = %s AND "revoked_at" IS NULL'  # noqa: S608


@transaction.atomic
def scim_token_create(
    *,
    actor: Actor,
    name: str,
    scope: str = ScimTokenScope.READ_WRITE,
    scope_group: Group | None = None,
    manages_staff: bool = False,
) -> tuple[ScimToken, str]:
    """Create a token. Returns the row and the secret, which is never available again.

    `manages_staff`: the token may change staff accounts; only a super-admin (or the portal itself,
    from the command line) grants that, since a token has no rank of its own."""
    if manages_staff and not (actor is None or is_super_admin(actor)):
        raise PermissionRefused(
            "Only a super-admin may create a SCIM token that may change staff accounts.", code="manages_staff"
        )
    if manages_staff and scope != ScimTokenScope.READ_WRITE:
        raise ApplicationError("A read-only token cannot change staff accounts.", code="invalid_choice")
    name = (name or "").strip()
    if not name:
        raise ApplicationError("A SCIM token needs a name.", code="required")
    if scope not in ScimTokenScope.values:
        raise ApplicationError(f"Choose a scope among {', '.join(ScimTokenScope.values)}.", code="invalid_choice")
    issued = issue_secret("scim")
    token = ScimToken.objects.create(
        name=name[:100],
        prefix=issued.prefix,
        secret_hash=issued.secret_hash,
        scope=scope,
        scope_group=scope_group,
        manages_staff=manages_staff,
    )
    audit_record(
        actor=actor,
        action="scim_token.create",
        target=token,
        after={
            "name": token.name,
            "scope": token.scope,
            "scope_group": str(scope_group.pk) if scope_group else None,
            "manages_staff": token.manages_staff,
        },
    )
    return token, issued.secret


@transaction.atomic
def scim_token_revoke(*, actor: Actor, token: ScimToken) -> ScimToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(actor=actor, action="scim_token.revoke", target=token)
    return token


def scim_token_authenticate(*, secret: str, ip: str | None) -> ScimToken | None:
    """The live token for `secret`, with its last use recorded; None if unknown or revoked.

    Looked up on every request (no cache), so a revoked token fails at once.
    """
    with hot_path_cursor() as cursor:
        cursor.execute(_unrevoked_by_hash_sql(), [hash_secret(secret)])
        row = cursor.fetchone()
    if row is None:
        return None
    token = model_from_row(ScimToken, row)
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION or token.last_used_ip != ip:
        ScimToken.objects.filter(pk=token.pk).update(last_used_at=now, last_used_ip=ip)
        token.last_used_at, token.last_used_ip = now, ip
    return token
