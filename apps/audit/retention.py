"""Audit log retention: events older than AUDIT_RETENTION_DAYS are deleted in small batches.

Each batch is one `DELETE ... WHERE id IN (SELECT id ... ORDER BY created LIMIT n)` in its own
transaction: it locks only the old rows it deletes, never the table, so the services that write
new events (every sign-in, every change) do not wait on a prune (bench/scale_audit.py measures
their latency during one). A run stops after AUDIT_PRUNE_BUDGET_SECONDS and the next run goes on,
so no task outlives its time limit however large the backlog. What a run deleted is itself
recorded, as an event of the system.

Between batches the prune rests for AUDIT_PRUNE_PAUSE_RATIO times the batch's own duration. No
lock is shared with writers, but a batch's deletes fill the write-ahead log and the buffer pool
and keep a core busy: a writer's commit flushes the log behind them and, on a small machine,
waits for the CPU. Resting as long as it works keeps the prune to half of one core and half of
the log's bandwidth whatever the backlog, so a sign-in's audit row is never stuck behind it.
"""

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.services import audit_record

PRUNE_ACTION = "audit.prune"


@dataclass(frozen=True)
class PruneResult:
    deleted: int
    batches: int
    cutoff: datetime | None  # None: retention is off
    complete: bool  # False: the budget ran out with old events left (the next run goes on)


def retention_cutoff(*, days: int | None = None, now: datetime | None = None) -> datetime | None:
    """Events created before this instant are past retention; None when retention is off."""
    days = settings.AUDIT_RETENTION_DAYS if days is None else days
    if days <= 0:
        return None
    return (now or timezone.now()) - timedelta(days=days)


def audit_prune(
    *,
    days: int | None = None,
    batch_size: int | None = None,
    budget_seconds: float | None = None,
    pause_ratio: float | None = None,
    now: datetime | None = None,
) -> PruneResult:
    """Delete events older than the retention (settings unless given), oldest first, a batch per transaction."""
    cutoff = retention_cutoff(days=days, now=now)
    if cutoff is None:
        return PruneResult(0, 0, None, True)
    batch_size = max(1, batch_size or settings.AUDIT_PRUNE_BATCH_SIZE)
    budget = settings.AUDIT_PRUNE_BUDGET_SECONDS if budget_seconds is None else budget_seconds
    pause_ratio = max(0.0, settings.AUDIT_PRUNE_PAUSE_RATIO if pause_ratio is None else pause_ratio)
    deadline = time.monotonic() + budget
    deleted = batches = 0
    complete = False
    while True:
        started = time.monotonic()
        # The created index finds the oldest rows; the id list keeps the DELETE to exactly them.
        oldest = AuditEvent.objects.filter(created__lt=cutoff).order_by("created", "id").values("id")[:batch_size]
        with transaction.atomic():
            count, _ = AuditEvent.objects.filter(id__in=oldest).delete()
        if count:
            deleted += count
            batches += 1
        if count < batch_size:
            complete = True
            break
        finished = time.monotonic()
        time.sleep(min((finished - started) * pause_ratio, max(0.0, deadline - finished)))
        if time.monotonic() >= deadline:
            break
    if deleted:
        with transaction.atomic():
            audit_record(
                actor=None,
                action=PRUNE_ACTION,
                target_label="audit log",
                after={
                    "deleted": deleted,
                    "older_than": cutoff.isoformat(),
                    "retention_days": days if days is not None else settings.AUDIT_RETENTION_DAYS,
                    "complete": complete,
                },
            )
    return PruneResult(deleted, batches, cutoff, complete)
