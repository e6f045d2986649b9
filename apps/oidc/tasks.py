"""Periodic housekeeping of the OpenID Connect provider (a thin task calling the services)."""

from celery import shared_task
from oauth2_provider.models import clear_expired

from apps.oidc import tracer


@shared_task(name="oidc.housekeeping", acks_late=True, task_reject_on_worker_lost=True)
def housekeeping() -> int:
    """Delete expired grants and tokens (django-oauth-toolkit's own sweep; revoked refresh tokens
    stay until they expire, for reuse detection) and tracer records past their retention."""
    clear_expired()
    return tracer.trace_expire()
