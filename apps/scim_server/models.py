from django.db import models


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
        "directory.Group", null=True, blank=True, on_delete=models.PROTECT, related_name="scim_tokens"
    )

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def can_write(self) -> bool:
        return self.scope == ScimTokenScope.READ_WRITE
