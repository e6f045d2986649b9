"""Thin Celery wrappers for the audit log."""

from celery import shared_task

from apps.audit.retention import audit_prune


@shared_task(name="audit.prune", ignore_result=True, acks_late=True, task_reject_on_worker_lost=True)
def prune() -> int:
    """Delete events past AUDIT_RETENTION_DAYS (hourly, from beat); returns how many."""
    return audit_prune().deleted
