"""Thin Celery wrappers for directory work that runs in the background."""

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from apps.directory import imports


@shared_task(name=imports.GROUP_IMPORT_TASK, ignore_result=True)
def group_import_run(job_id: str) -> None:
    """Add a CSV import's rows to its group; a long file continues in a fresh task."""
    try:
        more = imports.group_import_process(job_id)
    except SoftTimeLimitExceeded:
        more = True  # the batches done so far are committed: carry on in a new task
    except Exception as exc:
        imports.group_import_fail(job_id, f"The import stopped: {exc}")
        raise
    if more:
        group_import_run.delay(job_id)
