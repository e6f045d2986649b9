"""Thin Celery wrappers for connectors."""

from celery import shared_task

from apps.connectors import metadata_refresh


@shared_task(name="connectors.refresh_sp_metadata", ignore_result=True)
def refresh_sp_metadata() -> None:
    """Fetch again the SP metadata of every connector whose copy is older than the refresh interval."""
    metadata_refresh.refresh_due_sp_metadata()
