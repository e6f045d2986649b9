from django.db import models
from django.db.models.deletion import SET_NULL, ProtectedError


def _protect_while_active(collector, field, sub_objs, using) -> None:
    """A group that a live token is scoped to cannot go (the token would see everyone); a revoked
    token only keeps a record of its scope, which is cleared."""
    active = [token for token in sub_objs if token.revoked_at is None]
    if active:
        names = ", ".join(f"SCIM token {token}" for token in active)
        raise ProtectedError(f"Cannot delete: {names} is scoped to it.", active)
    SET_NULL(collector, field, sub_objs, using)


class ScimTokenScope(models.TextChoices):
    READ_WRITE = "read_write", "Read and write"
    READ_ONLY = "read_only", "Read only"


class ScimToken(models.Model):
    """A bearer token for one SCIM client (an HR system, another IdP). Only a SHA-256 is stored."""

    name = models.CharField(max_length=100)
    # The first characters of the secret, kept to tell tokens apart in listings.
    prefix = models.CharField(max_length=16)
    secret_hash = models.CharField(max_length=64, unique=True)
    created = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)
    scope = models.CharField(max_length=16, choices=ScimTokenScope.choices, default=ScimTokenScope.READ_WRITE)
    # When set, the client sees and manages only the members of this group (and users it creates
    # join it); it cannot change groups.
    scope_group = models.ForeignKey(
        "directory.Group", null=True, blank=True, on_delete=_protect_while_active, related_name="scim_tokens"
    )
    # May change staff accounts. A token has no rank of its own: without this, staff accounts are
    # read-only to it (apps.directory.roles). Only a super-admin creates such a token.
    manages_staff = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def label(self) -> str:
        """How audit rows name the token's requests."""
        return f"scim:{self.name}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def can_write(self) -> bool:
        return self.scope == ScimTokenScope.READ_WRITE
