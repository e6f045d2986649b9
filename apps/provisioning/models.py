"""The outbox of lifecycle changes, the link to each remote object, and a row for every attempt."""

from django.conf import settings
from django.db import models

from apps.connectors.models import Connector


class ObjectType(models.TextChoices):
    USER = "user", "User"
    GROUP = "group", "Group"


class OutboxEvent(models.Model):
    """A directory change that a connector must hear of, written in the change's own transaction.

    Delivery is level-triggered: the worker pushes the object's current state, so several events
    for one object collapse into one delivery and the last state always wins.
    """

    connector = models.ForeignKey(Connector, on_delete=models.CASCADE, related_name="outbox_events")
    object_type = models.CharField(max_length=8, choices=ObjectType.choices)
    # Not a foreign key: the event outlives a deleted user or group, which must be deprovisioned.
    object_id = models.UUIDField()
    reason = models.CharField(max_length=64)
    created = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["connector", "processed_at", "id"], name="prov_outbox_pending_idx"),
            models.Index(fields=["connector", "object_type", "object_id"], name="prov_outbox_object_idx"),
            # The engine reads the pending events of a connector many times a second; once processed,
            # events only make the full index larger.
            models.Index(
                fields=["connector", "object_type", "object_id"],
                condition=models.Q(processed_at__isnull=True),
                name="prov_outbox_unprocessed_idx",
            ),
            # Claims read the pending events of a connector in the order they were recorded, users
            # first (claims.due_candidates): an index range scan whatever the backlog.
            models.Index(
                fields=["connector", "object_type", "id"],
                condition=models.Q(processed_at__isnull=True),
                name="prov_outbox_claim_order_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reason} {self.object_type}:{self.object_id} -> {self.connector_id}"


class SyncStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SYNCED = "synced", "Synced"
    FAILED = "failed", "Failed"
    DEPROVISIONED = "deprovisioned", "Deprovisioned"
    SKIPPED = "skipped", "Not sent"
    HELD = "held", "Held for approval"


class RemoteObject(models.Model):
    """One directory object as a connector's app knows it: its remote id and what was last sent."""

    connector = models.ForeignKey(Connector, on_delete=models.CASCADE, related_name="remote_objects")
    object_type = models.CharField(max_length=8, choices=ObjectType.choices)
    object_id = models.UUIDField()
    label = models.CharField(max_length=255, blank=True, help_text="Username or group name when last seen.")
    remote_id = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=16, choices=SyncStatus.choices, default=SyncStatus.PENDING)
    last_sent = models.JSONField(null=True, blank=True)
    last_sent_hash = models.CharField(max_length=64, blank=True)
    # For groups: the directory ids of the members the app has, so a change is sent as a delta.
    remote_members = models.JSONField(default=list, blank=True)
    last_error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=128, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    updated = models.DateTimeField(auto_now=True)
    # How many of the object's outbox events are not processed yet, kept by database triggers on the
    # outbox in the writing transaction (apps.provisioning.waiting): "waiting" is counted and listed
    # from the link alone, without a DISTINCT over the whole pending outbox.
    waiting_events = models.IntegerField(default=0, db_default=0, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connector", "object_type", "object_id"], name="prov_remote_object_unique")
        ]
        indexes = [
            models.Index(fields=["connector", "status"], name="prov_remote_status_idx"),
            # The rate of a sync (selectors.sync_progress) counts the objects settled in the last seconds.
            models.Index(fields=["connector", "last_synced_at"], name="prov_remote_synced_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.object_type}:{self.label or self.object_id} @ {self.connector_id} ({self.status})"


class FullSyncRecording(models.Model):
    """A full sync whose events are still being recorded, a chunk of objects per transaction.

    Recording a million events in the admin's own transaction held a million links locked for a
    minute and more: every worker's flush, and any directory change to those objects, waited for
    it. The objects of `object_type` with ids up to `after_id` have their events; the rest follow
    in the background (outbox.continue_full_sync), resumed by the sweep if its task is lost.
    """

    connector = models.OneToOneField(Connector, on_delete=models.CASCADE, related_name="full_sync_recording")
    reason = models.CharField(max_length=64)
    object_type = models.CharField(max_length=8, choices=ObjectType.choices, default=ObjectType.USER)
    after_id = models.UUIDField(null=True, blank=True)
    recorded = models.PositiveBigIntegerField(default=0)
    started = models.DateTimeField()
    updated = models.DateTimeField()

    def __str__(self) -> str:
        return f"full sync of {self.connector_id}: {self.recorded} recorded, {self.object_type} after {self.after_id}"


class Delivery(models.Model):
    """One HTTP request sent downstream and its outcome; bearer tokens are never recorded."""

    connector = models.ForeignKey(Connector, on_delete=models.CASCADE, related_name="deliveries")
    object_type = models.CharField(max_length=8, choices=ObjectType.choices, blank=True)
    object_id = models.UUIDField(null=True, blank=True)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=1000)
    request_body = models.JSONField(null=True, blank=True)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.FloatField(default=0)
    error = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["connector", "-created"], name="prov_delivery_recent_idx")]

    def __str__(self) -> str:
        return f"{self.method} {self.path} -> {self.status_code}"


class HoldStatus(models.TextChoices):
    PENDING = "pending", "Waiting for approval"
    APPROVED = "approved", "Approved"
    CANCELLED = "cancelled", "Cancelled"


class DeprovisionHold(models.Model):
    """The circuit breaker: a batch of deprovisionings too large to send without an admin's approval."""

    connector = models.ForeignKey(Connector, on_delete=models.CASCADE, related_name="deprovision_holds")
    status = models.CharField(max_length=16, choices=HoldStatus.choices, default=HoldStatus.PENDING)
    object_ids = models.JSONField(default=list)
    # Users the app has that no directory user is linked to (found by a full sync).
    remote_ids = models.JSONField(default=list)
    labels = models.JSONField(default=list)
    threshold = models.PositiveIntegerField()
    created = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"hold of {len(self.object_ids)} on {self.connector_id} ({self.status})"
