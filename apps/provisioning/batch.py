"""Push a connector's pending changes downstream: claim objects, reconcile each, record the outcome.

Level-triggered: for every object with unprocessed outbox events the engine computes what the app
should hold now and sends the difference from what it last sent. Several quick changes collapse into
one delivery, a delayed retry can never send an older state, and running twice sends nothing more.

The loop of a task: `process_connector` runs batches until its time budget is spent; a batch checks
the circuit breaker, claims due objects (users first: groups need their ids) and reconciles each.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from apps.common.memory import return_freed_memory
from apps.connectors.models import Connector
from apps.directory.models import UserStatus
from apps.provisioning import mapping
from apps.provisioning.breaker import check_circuit_breaker
from apps.provisioning.claims import (
    claim_batch,
    defer_pending,
    has_pending_events,
    pending_event_ids,
    release,
)
from apps.provisioning.client import RateLimitedError, ScimError
from apps.provisioning.creates_lock import CREATES_LOCK_SECONDS
from apps.provisioning.groups import GroupPushIncomplete, reconcile_group
from apps.provisioning.models import ObjectType, RemoteObject, SyncStatus
from apps.provisioning.outcomes import FLUSH_SECONDS, Outcome, backoff_seconds, fail, flush
from apps.provisioning.run import ConnectorRun
from apps.provisioning.users import reconcile_user

logger = logging.getLogger(__name__)


@dataclass
class BatchResult:
    claimed: int = 0
    synced: int = 0
    failed: int = 0
    retrying: int = 0
    next_retry_in: float | None = None
    more: bool = False
    held: bool = False
    # Nothing can be sent now (paused, held, disabled, unusable settings): do not ask again at once.
    blocked: bool = False


def process_object(run: ConnectorRun, remote: RemoteObject, event_ids: list[int]) -> tuple[str, Outcome]:
    """Reconcile one claimed object; returns "synced", "failed", "retry" or "rate_limited", and the
    outcome to write."""
    run.current_object = remote
    try:
        if remote.object_type == ObjectType.USER:
            reconcile_user(run, remote)
        else:
            reconcile_group(run, remote)
    except mapping.MappingFailure as exc:
        fail(remote, f"Mapping error: {exc}")
        return "failed", Outcome(remote, event_ids)
    except GroupPushIncomplete:
        # Due again at once, its events pending: the next pass sends the members not yet acknowledged.
        remote.status, remote.next_attempt_at = SyncStatus.PENDING, None
        return "unfinished", Outcome(remote, None)
    except ScimError as exc:
        if exc.retryable and remote.attempts + 1 < settings.PROVISIONING_MAX_ATTEMPTS:
            delay = backoff_seconds(remote.attempts)
            if isinstance(exc, RateLimitedError) and exc.retry_after is not None:
                delay = max(exc.retry_after, 0.5)
            remote.attempts += 1
            remote.status = SyncStatus.PENDING  # the app is behind the directory until the retry succeeds
            remote.last_error = exc.message
            remote.next_attempt_at = timezone.now() + timedelta(seconds=delay)
            # The events stay pending: the retry sends the then-current state.
            return ("rate_limited" if isinstance(exc, RateLimitedError) else "retry"), Outcome(remote, None)
        reason = exc.message if not exc.retryable else f"Gave up after {remote.attempts + 1} attempts: {exc.message}"
        fail(remote, reason)
        return "failed", Outcome(remote, event_ids)
    finally:
        run.current_object = None
    return "synced", Outcome(remote, event_ids)


def _may_deprovision(run: ConnectorRun, claimed: list[RemoteObject]) -> bool:
    """Whether a claimed user is linked and out of scope or not active: one the breaker may count
    (it decides); the others of a batch are created or updated, never deprovisioned."""
    for remote in claimed:
        if remote.object_type != ObjectType.USER or not remote.remote_id or remote.status == SyncStatus.DEPROVISIONED:
            continue
        user = run.users.get(str(remote.object_id))
        if user is None or str(user.pk) not in run.in_scope or user.status != UserStatus.ACTIVE:
            return True
    return False


def process_batch(connector_id: Any, *, deadline: float, limit: int | None = None) -> BatchResult:
    limit = limit or settings.PROVISIONING_BATCH_SIZE
    result = BatchResult()
    connector = Connector.objects.select_related("provisioning").filter(pk=connector_id).first()
    if connector is None or not connector.has_provisioning:
        result.blocked = True
        return result
    provisioning = connector.provisioning
    if not (connector.enabled and provisioning.enabled) or provisioning.paused:
        result.blocked = True
        return result
    if not has_pending_events(connector):
        return result
    try:
        run = ConnectorRun(connector)
    except ScimError as exc:
        logger.warning("connector %s cannot be provisioned: %s", connector.slug, exc.message)
        result.blocked = True
        return result
    if run.pending_hold is not None:  # a hold waits for an admin's decision: nothing is sent
        result.held = result.blocked = True
        return result
    claimed = claim_batch(connector, limit)
    if not claimed:
        return result
    events = pending_event_ids(connector, claimed)
    run.preload(claimed)
    # The breaker reads every linked user with pending changes (half a second a batch at a million
    # users): asked only when this batch could deprovision someone, before anything is sent.
    if _may_deprovision(run, claimed):
        hold = check_circuit_breaker(connector, run.approved_deprovisions, pending_hold=None)
        if hold is not None:
            for remote in claimed:
                release(remote)
            result.held = result.blocked = True
            return result
    result.claimed = len(claimed)
    result.more = len(claimed) >= limit
    outcomes: list[Outcome] = []
    first_unwritten = time.monotonic()
    backing_off = False
    run.deadline = deadline
    try:
        for remote in claimed:
            if backing_off or time.monotonic() > deadline:
                # The app asked us to slow down: the rest of the batch waits instead of collecting 429s.
                release(remote)
                result.more = result.more or not backing_off
                continue
            if remote.object_type == ObjectType.GROUP and outcomes:
                flush(run, outcomes)  # a group's members are the users synced before it
            if not outcomes:
                first_unwritten = time.monotonic()
            outcome, written = process_object(run, remote, events.get((remote.object_type, str(remote.object_id)), []))
            outcomes.append(written)
            if outcome == "synced":
                result.synced += 1
            elif outcome == "failed":
                result.failed += 1
            elif outcome == "unfinished":
                result.more = True
            else:
                result.retrying += 1
                delay = (remote.next_attempt_at - timezone.now()).total_seconds()
                result.next_retry_in = delay if result.next_retry_in is None else min(result.next_retry_in, delay)
                if outcome == "rate_limited":
                    backing_off = True
                    flush(run, outcomes)
                    defer_pending(connector, remote.next_attempt_at, limit=limit)
            if (
                time.monotonic() - first_unwritten >= FLUSH_SECONDS
                or run.creates_lock.held_for() >= CREATES_LOCK_SECONDS
            ):
                flush(run, outcomes)
    finally:
        flush(run, outcomes)
    return result


# While batches stay full, how often the connector's task asks for helpers again.
HELP_AGAIN_SECONDS = 1.0


def process_connector(
    connector_id: Any,
    *,
    budget_seconds: float | None = None,
    on_full_batch: Callable[[], None] | None = None,
    wait_for_changes: Callable[[float], bool] | None = None,
) -> BatchResult:
    """Work through the connector's pending objects for at most `budget_seconds`.

    `on_full_batch` is called when a batch comes back full (there is more work than one worker
    should do alone), and again at most every HELP_AGAIN_SECONDS while batches stay full: a helper
    that found every due object locked (by a transaction recording a sync, say) ends at once, and
    asking only once left the rest of a sync to one worker. `wait_for_changes(seconds)` lets the
    task stay a little once the work is done, and go on when it says a change arrived: a burst of
    changes is handled by one task.
    """
    budget = budget_seconds if budget_seconds is not None else settings.PROVISIONING_TASK_BUDGET_SECONDS
    deadline = time.monotonic() + budget
    total = BatchResult()
    asked_for_help_at: float | None = None
    while True:
        batch = process_batch(connector_id, deadline=deadline)
        # A batch with a large group grows the heap by tens of MiB, which the worker kept for the
        # rest of its 45 s task (a 1,000,000-user sync ended with a pool process at +31 %).
        return_freed_memory()
        total.claimed += batch.claimed
        total.synced += batch.synced
        total.failed += batch.failed
        total.retrying += batch.retrying
        total.held = total.held or batch.held
        total.blocked = batch.blocked
        if batch.next_retry_in is not None:
            total.next_retry_in = (
                batch.next_retry_in if total.next_retry_in is None else min(total.next_retry_in, batch.next_retry_in)
            )
        if batch.more and on_full_batch is not None:
            now = time.monotonic()
            if asked_for_help_at is None or now - asked_for_help_at >= HELP_AGAIN_SECONDS:
                asked_for_help_at = now
                on_full_batch()  # a helper still at work holds its flag: nothing is enqueued twice
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            total.more = batch.claimed > 0 or batch.more
            return total
        # A batch that was not full took everything due: wait for news rather than ask again at once
        # (changes committed meanwhile have woken the wait already).
        if not batch.more or batch.blocked:
            total.more = False
            if batch.blocked or wait_for_changes is None:
                return total
            if not wait_for_changes(remaining):
                return total
