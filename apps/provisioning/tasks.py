"""Thin Celery wrappers: take ids, call the engine.

Each task is registered under the name `dispatch` sends it by.
"""

import logging

from celery import shared_task
from django.conf import settings
from django.db import close_old_connections, connection

from apps.provisioning import batch, claims, dispatch, outbox, unmanaged

logger = logging.getLogger(__name__)


@shared_task(name=dispatch.PROCESS_CONNECTOR, ignore_result=True)
def process_connector(connector_id: str, slot: int | None = 0) -> None:
    """Slot 0 is the connector's main task (the one `kick` enqueues), 1.. its helpers, None a
    delayed retry that holds no flag."""
    if not connection.in_atomic_block:
        close_old_connections()  # the connection is kept between tasks (CELERY_DB_REUSE_MAX)
    dispatch.task_started(connector_id, slot)
    try:
        result = batch.process_connector(
            connector_id,
            on_full_batch=lambda: dispatch.start_helpers(connector_id),
            wait_for_changes=(lambda seconds: dispatch.wait_for_changes(connector_id, seconds)) if slot == 0 else None,
        )
    finally:
        dispatch.task_finished(connector_id, slot)
    if not result.blocked and claims.has_due_work(connector_id):
        dispatch.kick(connector_id)
    if result.next_retry_in is not None and result.next_retry_in < settings.PROVISIONING_MAX_COUNTDOWN_SECONDS:
        # Short waits ride on a countdown; anything longer stays parked in the database for the sweep,
        # because a countdown past the broker's visibility timeout would run twice.
        dispatch.kick(connector_id, countdown=max(result.next_retry_in, 0.1))


@shared_task(name=dispatch.RECORD_FULL_SYNC, ignore_result=True)
def record_full_sync(connector_id: str) -> None:
    """Half the task budget of chunks, then a new task for the rest (other connectors' tasks run
    between them)."""
    if not connection.in_atomic_block:
        close_old_connections()
    if outbox.continue_full_sync(connector_id, seconds=settings.PROVISIONING_TASK_BUDGET_SECONDS / 2):
        dispatch.continue_in_background(connector_id)


@shared_task(name=dispatch.SWEEP, ignore_result=True)
def sweep() -> None:
    claims.sweep()


@shared_task(name=dispatch.RECONCILE_UNMANAGED, ignore_result=True, acks_late=True)
def reconcile_unmanaged(connector_id: str) -> None:
    unmanaged.reconcile_unmanaged(connector_id)


@shared_task(name=dispatch.DEPROVISION_HELD_REMOTE_USERS, ignore_result=True)
def deprovision_held_remote_users(hold_id: int) -> None:
    unmanaged.deprovision_approved_remote_users(hold_id)
