"""Getting a worker onto a connector: Celery tasks enqueued by name, and the Redis flags that keep a
burst of changes to one task.

The bottom of the provisioning layers: the outbox, the engine and the admin operations call it, it
calls none of them. Tasks are sent by their registered name (the names below, which tasks.py
registers), so this module never imports the task module that imports the engine.
"""

import logging
from typing import Any

from django.conf import settings
from django.db import transaction

from apps.common.queue import registered_task
from apps.common.redis import redis_client

logger = logging.getLogger(__name__)

PROCESS_CONNECTOR = "provisioning.process_connector"
SWEEP = "provisioning.sweep"
RECONCILE_UNMANAGED = "provisioning.reconcile_unmanaged"
DEPROVISION_HELD_REMOTE_USERS = "provisioning.deprovision_held_remote_users"
RECORD_FULL_SYNC = "provisioning.record_full_sync"


def _redis():
    return redis_client(timeout=2)


def _kick_key(connector_id: Any, slot: int = 0) -> str:
    return f"idp:prov:kick:{connector_id}" + (f":{slot}" if slot else "")


def _wake_key(connector_id: Any) -> str:
    return f"idp:prov:wake:{connector_id}"


def kick(connector_id: Any, *, countdown: float | None = None) -> None:
    """Ask a worker to process the connector after this transaction commits.

    With Redis, a flag held from the enqueue until the task ends makes a burst of changes enqueue
    one task, not one each: while the flag is up, a change only wakes the running task (see
    `wait_for_changes`). The task clears the flag when it ends and kicks again if work is left, so
    a change that arrives as it ends is not stranded; the flag also expires on its own
    (PROVISIONING_KICK_TTL, at least the task's time budget) if its worker dies. The outbox stays
    the source of truth: a lost task only delays work until the periodic sweep.
    """

    def enqueue() -> None:
        client = _redis()
        if countdown is None and client is not None:
            try:
                if not client.set(_kick_key(connector_id), "1", nx=True, ex=settings.PROVISIONING_KICK_TTL):
                    with client.pipeline() as pipe:
                        pipe.rpush(_wake_key(connector_id), "1")
                        pipe.expire(_wake_key(connector_id), settings.PROVISIONING_KICK_TTL)
                        pipe.execute()
                    return
            except Exception:  # noqa: BLE001 - Redis down: the sweep will pick the work up
                return
        try:
            registered_task(PROCESS_CONNECTOR).apply_async(
                args=[str(connector_id)], kwargs={"slot": None} if countdown is not None else None,
                countdown=countdown, retry=False,
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - a broker outage must not fail the directory change
            logger.warning("could not enqueue provisioning of %s (%s); the sweep will retry", connector_id, exc)

    transaction.on_commit(enqueue)


def continue_in_background(connector_id: Any) -> None:
    """After this transaction commits, a task records the rest of the connector's full sync. A
    broker outage does not fail the admin's change: the sweep resumes recordings left standing."""

    def enqueue() -> None:
        try:
            registered_task(RECORD_FULL_SYNC).apply_async(args=[str(connector_id)], retry=False)
        except Exception as exc:  # noqa: BLE001 - the sweep resumes it
            logger.warning("could not enqueue the full sync of %s (%s); the sweep will resume it", connector_id, exc)

    transaction.on_commit(enqueue)


def start_helpers(connector_id: Any) -> int:
    """More work than one task should do alone: enqueue helper tasks, up to
    PROVISIONING_TASKS_PER_CONNECTOR in all, each holding a flag of its own. Returns how many."""
    client = _redis()
    if client is None:
        return 0
    started = 0
    for slot in range(1, settings.PROVISIONING_TASKS_PER_CONNECTOR):
        try:
            if not client.set(_kick_key(connector_id, slot), "1", nx=True, ex=settings.PROVISIONING_KICK_TTL):
                continue
            registered_task(PROCESS_CONNECTOR).apply_async(args=[str(connector_id)], kwargs={"slot": slot}, retry=False)
        except Exception as exc:  # noqa: BLE001 - helpers only speed things up
            logger.debug("could not start a helper for %s: %s", connector_id, exc)
            break
        started += 1
    return started


def task_started(connector_id: Any, slot: int | None) -> None:
    """A task holds its flag from now for PROVISIONING_KICK_TTL, as this worker is configured."""
    client = _redis()
    if client is None or slot is None:
        return
    try:
        client.set(_kick_key(connector_id, slot), "1", ex=settings.PROVISIONING_KICK_TTL)
        if slot == 0:
            client.delete(_wake_key(connector_id))  # the task reads the outbox anyway
    except Exception:  # noqa: BLE001 - only an optimisation
        logger.debug("could not refresh the kick flag of %s", connector_id)


def task_finished(connector_id: Any, slot: int | None) -> None:
    """Clear the task's flag, before the task looks for work left (see `kick`)."""
    client = _redis()
    if client is not None and slot is not None:
        try:
            client.delete(_kick_key(connector_id, slot))
        except Exception:  # noqa: BLE001 - the flag expires on its own
            logger.debug("could not clear the kick flag of %s", connector_id)


def wait_for_changes(connector_id: Any, seconds: float) -> bool:
    """Wait up to PROVISIONING_LINGER_SECONDS (and `seconds`) for a change to this connector.

    Only with Redis, and only while no other task waits in the queue: a lingering task holds a
    worker, which must not delay other connectors.
    """
    client = _redis()
    linger = min(settings.PROVISIONING_LINGER_SECONDS, seconds)
    if client is None or linger <= 0:
        return False
    try:
        if client.llen(settings.CELERY_TASK_DEFAULT_QUEUE):
            return False
        woke = client.blpop([_wake_key(connector_id)], timeout=linger)
        if woke is not None:
            client.delete(_wake_key(connector_id))  # the next pass reads every pending change
        return woke is not None
    except Exception:  # noqa: BLE001 - Redis gone: end the task, the sweep carries on
        return False
