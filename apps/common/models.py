import uuid

from django.db import models


class TimeStampedModel(models.Model):
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class KeyPairModel(models.Model):
    """An RSA key pair the portal generated: the private half as Fernet ciphertext (apps.common.crypto)
    of its PKCS#8 PEM, the certificate in clear, and its life (active, next, retired)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    private_key_ciphertext = models.TextField()
    certificate_pem = models.TextField()
    fingerprint_sha256 = models.CharField(max_length=95)
    key_size = models.PositiveIntegerField()
    created = models.DateTimeField(auto_now_add=True)
    not_after = models.DateTimeField()
    activated = models.DateTimeField(null=True, blank=True)
    retired = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created"]


class WorkerHeartbeat(models.Model):
    """Last time each Celery worker ran the periodic heartbeat task; /healthz reads it."""

    worker = models.CharField(max_length=255, unique=True)
    seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.worker} @ {self.seen_at:%Y-%m-%d %H:%M:%S}"


class CacheGeneration(models.Model):
    """The token of one cache of rarely changed settings, replaced by database triggers whenever a
    table that cache reads changes (apps.common.generations)."""

    name = models.CharField(max_length=40, primary_key=True)
    token = models.CharField(max_length=32)

    def __str__(self) -> str:
        return f"{self.name}: {self.token}"


class RowCount(models.Model):
    """One delta of an exact row count, appended by database triggers in the writing transaction and
    summed by readers (apps.common.rowcounts)."""

    name = models.CharField(max_length=30)
    scope = models.CharField(max_length=64, blank=True)
    part = models.CharField(max_length=64, blank=True)
    n = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["name", "scope"], name="common_rowcount_bucket_idx")]

    def __str__(self) -> str:
        return f"{self.name}[{self.scope}:{self.part}] {self.n:+d}"


class RowCountBound(models.Model):
    """The lowest value of one range of a ranked counter's column, chosen at its last recount
    (apps.common.rowcounts.seek)."""

    name = models.CharField(max_length=30)
    position = models.PositiveIntegerField()
    bound = models.CharField(max_length=255)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "position"], name="common_rowcountbound_unique")]
        indexes = [models.Index(fields=["name", "bound"], name="common_rowcountbound_bound_idx")]

    def __str__(self) -> str:
        return f"{self.name}[{self.position}] >= {self.bound}"
