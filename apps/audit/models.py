from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """One change to the directory or configuration: who, what, to what, before and after."""

    created = models.DateTimeField(auto_now_add=True, db_index=True)
    # No index of its own: audit_actor_created_idx (actor, -created) serves every lookup by actor,
    # and each index is one more write on every audited change.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    # Kept as text too, so the trail still names the actor after the account is deleted.
    actor_label = models.CharField(max_length=255)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=255, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [
            models.Index(fields=["target_type", "target_id"], name="audit_target_idx"),
            models.Index(fields=["actor", "-created"], name="audit_actor_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.created:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action} {self.target_label}"
