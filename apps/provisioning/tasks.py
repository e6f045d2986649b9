"""Thin Celery wrappers: take ids, call the engine or a service."""

import logging

from celery import shared_task
from django.conf import settings

from apps.provisioning import engine, services

logger = logging.getLogger(__name__)


@shared_task(name="provisioning.process_connector", ignore_result=True)
def process_connector(connector_id: str) -> None:
    services.clear_kick_flag(connector_id)
    result = engine.process_connector(connector_id)
    if result.more:
        services.kick(connector_id)
    if result.next_retry_in is not None and result.next_retry_in < settings.PROVISIONING_MAX_COUNTDOWN_SECONDS:
        # Short waits ride on a countdown; anything longer stays parked in the database for the sweep,
        # because a countdown past the broker's visibility timeout would run twice.
        services.kick(connector_id, countdown=max(result.next_retry_in, 0.1))


@shared_task(name="provisioning.sweep", ignore_result=True)
def sweep() -> None:
    services.sweep()


@shared_task(name="provisioning.reconcile_unmanaged", ignore_result=True, acks_late=True)
def reconcile_unmanaged(connector_id: str) -> None:
    engine.reconcile_unmanaged(connector_id)


@shared_task(name="provisioning.deprovision_held_remote_users", ignore_result=True)
def deprovision_held_remote_users(hold_id: int) -> None:
    services.deprovision_approved_remote_users(hold_id)
