"""Which objects of a connector are due, and leasing them to one worker at a time.

An object is due when it has unprocessed outbox events and no retry waits for later; a worker leases
up to a batch of them with one conditional UPDATE, so two workers never send the same object. The
sweep frees expired leases and re-enqueues connectors whose work is still pending.
"""

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from apps.connectors.models import Connector
from apps.provisioning.dispatch import continue_in_background, kick
from apps.provisioning.models import FullSyncRecording, ObjectType, OutboxEvent, RemoteObject

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


def _lease_seconds() -> int:
    return settings.PROVISIONING_LEASE_SECONDS


# From this many pending events on, joins with the pending outbox are done by hashing.
HASH_JOIN_BACKLOG = 20


@contextlib.contextmanager
def hash_joins(connector_id: Any) -> Iterator[None]:
    """A transaction in which PostgreSQL joins a large pending outbox by hashing, not nested loops.

    The outbox and RemoteObject tables often grow from nothing in one transaction (a group
    assignment, a full sync); until (auto)ANALYZE has run, PostgreSQL estimates them at a row or
    two and joins "object_id IN (pending events)" with nested loops whose cost grows with the
    square of the backlog: 12 s per claim at 10,000 users, measured. A hash semi-join costs about
    8 ms there whatever the statistics (and 5 ms with them). A small backlog keeps the planner's
    choice: a hash join would read every RemoteObject of the connector to send one change.
    Nested uses share the transaction.
    """
    if getattr(connection, "_provisioning_hash_joins", False):
        yield
        return
    with transaction.atomic():
        if connection.vendor == "postgresql":
            backlog = OutboxEvent.objects.filter(connector_id=connector_id, processed_at__isnull=True)
            if backlog[:HASH_JOIN_BACKLOG].count() >= HASH_JOIN_BACKLOG:
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL enable_nestloop = off")
        connection._provisioning_hash_joins = True
        try:
            yield
        finally:
            connection._provisioning_hash_joins = False


def pending_event_object_ids(connector: Connector, object_type: str | None = None):
    events = OutboxEvent.objects.filter(connector=connector, processed_at__isnull=True)
    if object_type is not None:
        events = events.filter(object_type=object_type)
    return events.values("object_id")


def pending_objects(connector: Connector):
    """RemoteObjects with unprocessed events, due now, not leased: users first (groups need their ids).

    Evaluate within `hash_joins`. Reads every pending object: for a count or a list, not to claim
    (see `due_candidates`).
    """
    now = timezone.now()
    return (
        RemoteObject.objects.filter(connector=connector, object_id__in=pending_event_object_ids(connector))
        .filter(_due(now) & _free(now))
        .order_by("-object_type", "updated")  # "user" sorts after "group": descending puts users first
    )


def _due(now: Any) -> Q:
    return Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)


def _free(now: Any) -> Q:
    return Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)


def due_candidates(connector: Connector, limit: int) -> list[tuple[str, Any]]:
    """(object type, object id) of up to `limit` due, unleased objects: users first, then groups,
    each in the order their changes were recorded.

    Reads the pending outbox a page at a time in id order (an index of its own), and the pages'
    objects by their unique key, and stops once it has `limit`: the cost of a batch whatever the
    backlog or the table statistics. Ordering every due object first read the whole backlog per
    claim (a million pending users during an initial sync), and a join of the two tables planned
    on stale statistics (right after a bulk insert) compared every event with every object.
    """
    now = timezone.now()
    found: list[tuple[str, Any]] = []
    for object_type in (ObjectType.USER, ObjectType.GROUP):
        pending = OutboxEvent.objects.filter(connector=connector, object_type=object_type, processed_at__isnull=True)
        after = _scan_start(connector, object_type)
        for page_number in range(CANDIDATE_PAGES):
            page = list(pending.filter(id__gt=after).order_by("id").values_list("id", "object_id")[: limit * 2])
            if page_number == 0:
                if not page and after:  # nothing past the head: look again from the start
                    after = _scan_start(connector, object_type, rescan=True)
                    page = list(pending.filter(id__gt=after).order_by("id").values_list("id", "object_id")[: limit * 2])
                _note_head(connector, object_type, page[0][0] if page else None, full=not after)
            if not page:
                break
            after = page[-1][0]
            ids = list(dict.fromkeys(object_id for _event_id, object_id in page))
            ready = set(
                RemoteObject.objects.filter(connector=connector, object_type=object_type, object_id__any=ids)
                .filter(_due(now) & _free(now))
                .values_list("object_id", flat=True)
            )
            for object_id in ids:
                if object_id in ready and (object_type, object_id) not in found:
                    found.append((object_type, object_id))
                    if len(found) >= limit:
                        return found
    return found


# Pages of pending events a claim reads past objects that are leased or wait for a retry: work
# further back waits for the retries at the head while that many objects are retrying.
CANDIDATE_PAGES = 10

# (connector id, object type) -> (the earliest pending event this worker's last claim read, when it
# last read the pending events from the start). Settled events leave dead entries at the start of
# the outbox's index until VACUUM; without autovacuum (or between two of its runs) each claim walked
# past all of them: 35 ms a claim with 1,500,000 settled, growing through an initial sync. A claim
# reads from the head instead, and from the start again every HEAD_RESCAN_SECONDS, or when nothing
# is pending past the head: an event committed after a later one (its transaction took longer)
# waits that long at most. A hint of where to read, not a record of work: never shared, never
# needed for what is due.
_heads: dict[tuple[str, str], tuple[int, float]] = {}
HEAD_RESCAN_SECONDS = 30.0


def _scan_start(connector: Connector, object_type: str, *, rescan: bool = False) -> int:
    """The id after which a claim reads the pending events of this type (0: from the start)."""
    head = _heads.get((str(connector.pk), object_type))
    if rescan or head is None or time.monotonic() - head[1] > HEAD_RESCAN_SECONDS:
        return 0
    return head[0] - 1


def _note_head(connector: Connector, object_type: str, first_pending: int | None, *, full: bool) -> None:
    key = (str(connector.pk), object_type)
    if first_pending is None:
        _heads.pop(key, None)
    elif full:
        _heads[key] = (first_pending, time.monotonic())
    elif key in _heads:
        _heads[key] = (first_pending, _heads[key][1])


def claimable(connector: Connector, candidates: list[tuple[str, Any]]):
    """The RemoteObjects of these `due_candidates` still due and unleased, users first."""
    now = timezone.now()
    by_type: dict[str, list] = {}
    for object_type, object_id in candidates:
        by_type.setdefault(object_type, []).append(object_id)
    which = Q()
    for object_type, ids in by_type.items():
        which |= Q(object_type=object_type, object_id__any=ids)
    return (
        RemoteObject.objects.filter(connector=connector)
        .filter(which)
        .filter(_due(now) & _free(now))
        .order_by("-object_type", "updated")
    )


def has_pending_events(connector: Connector) -> bool:
    return OutboxEvent.objects.filter(connector=connector, processed_at__isnull=True).exists()


def has_due_work(connector_id: Any) -> bool:
    """Whether a worker could claim something of this connector now (it is active and not paused)."""
    connector = Connector.objects.select_related("provisioning").filter(pk=connector_id).first()
    if connector is None or not connector.has_provisioning:
        return False
    provisioning = connector.provisioning
    if not (connector.enabled and provisioning.enabled) or provisioning.paused:
        return False
    if not has_pending_events(connector):
        return False
    return bool(due_candidates(connector, 1))


def claim_batch(connector: Connector, limit: int | None = None) -> list[RemoteObject]:
    """Lease up to `limit` due objects for this worker.

    One conditional UPDATE stamps a token of this claim on rows whose lease is free, so claims
    stay exclusive; on PostgreSQL the candidates are locked with SKIP LOCKED, so two workers
    claiming at once take different objects instead of colliding on the same ones. Without it
    (SQLite), a claim that lost every row to another worker tries the next candidates.
    """
    limit = limit or settings.PROVISIONING_BATCH_SIZE
    for attempt in range(CLAIM_ATTEMPTS):
        rows, leased, ids, token = _claim_once(connector, limit)
        if rows is None:
            # Another worker was leasing these very candidates: once it commits, they are skipped.
            time.sleep(0.01 * (attempt + 1))
            continue
        if not rows:
            return []
        if leased == len(rows):  # always so under SKIP LOCKED: the rows were locked for this UPDATE
            return rows
        if leased:
            return list(RemoteObject.objects.filter(pk__any=ids, lease_owner=token).order_by("-object_type", "updated"))
    return []


# Claims that find their candidates locked by another worker's claim try again this many times.
CLAIM_ATTEMPTS = 5


def claim_spread() -> int:
    """Candidates a claim reads per object it may lease (see _claim_once): one batch for each task
    that may claim for the connector at the same moment, and at least two. Four whatever the
    number of tasks made each claim read 800 pending events and check 400 objects for a batch of
    100: a fifth of a worker's CPU during an initial sync."""
    return max(2, settings.PROVISIONING_TASKS_PER_CONNECTOR)


def _claim_once(connector: Connector, limit: int) -> tuple[list[RemoteObject] | None, int, list, str]:
    """Rows leased by this claim ([] when nothing is due; None when every candidate was locked by
    another worker's claim in progress)."""
    now = timezone.now()
    token = f"{WORKER_ID}:{uuid.uuid4().hex[:8]}"
    free = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)
    expires = now + timedelta(seconds=_lease_seconds())
    with hash_joins(connector.pk):
        # More candidates than the batch: workers claiming at the same moment read the same head of
        # the outbox, and SKIP LOCKED then hands each of them a different part of it instead of
        # leaving all but one with nothing to lease.
        due = due_candidates(connector, limit * claim_spread())
        if not due:
            return [], 0, [], token
        candidates = claimable(connector, due)
        if connection.features.has_select_for_update_skip_locked:
            candidates = candidates.select_for_update(skip_locked=True, of=("self",))
        rows = list(candidates[:limit])
        if not rows:
            return None, 0, [], token
        ids = [remote.pk for remote in rows]
        leased = RemoteObject.objects.filter(pk__any=ids).filter(free)
        leased = leased.update(lease_owner=token, lease_expires_at=expires)
    for remote in rows:
        remote.lease_owner, remote.lease_expires_at = token, expires
    return rows, leased, ids, token


def release(remote: RemoteObject) -> None:
    RemoteObject.objects.filter(pk=remote.pk, lease_owner=remote.lease_owner).update(
        lease_owner="", lease_expires_at=None
    )


def pending_event_ids(connector: Connector, claimed: list[RemoteObject]) -> dict[tuple[str, str], list[int]]:
    """The unprocessed events of the claimed objects, read before their state is loaded: an event
    committed later stays pending and is delivered by the next pass.

    Named by type and id, the key of the pending events' index: by id alone PostgreSQL read every
    pending event (a sequential scan of 2,000,000 rows, 170 ms a batch at a million users).
    """
    events: dict[tuple[str, str], list[int]] = {}
    if not claimed:
        return events
    by_type: dict[str, list] = {}
    for remote in claimed:
        by_type.setdefault(remote.object_type, []).append(remote.object_id)
    which = Q()
    for object_type, ids in by_type.items():
        which |= Q(object_type=object_type, object_id__any=ids)
    rows = (
        OutboxEvent.objects.filter(connector=connector, processed_at__isnull=True)
        .filter(which)
        .values_list("object_type", "object_id", "id")
    )
    for object_type, object_id, event_id in rows:
        events.setdefault((object_type, str(object_id)), []).append(event_id)
    return events


def defer_pending(connector: Connector, until: Any, *, limit: int | None = None) -> None:
    """Move the connector's due objects that a claim could take to `until` (a 429 applies to the
    whole app): those of the pending events a claim of `limit` objects reads at most, from the start
    of the outbox, per type. No claim reads further before these are due again; moving every pending
    object wrote a million rows per 429 during an initial sync of a million users."""
    window = (limit or settings.PROVISIONING_BATCH_SIZE) * claim_spread() * 2 * CANDIDATE_PAGES
    for object_type in (ObjectType.USER, ObjectType.GROUP):
        pending = OutboxEvent.objects.filter(connector=connector, object_type=object_type, processed_at__isnull=True)
        head = pending.order_by("id").values("object_id")[:window]
        RemoteObject.objects.filter(connector=connector, object_type=object_type, object_id__in=head).filter(
            Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lt=until)
        ).update(next_attempt_at=until)


def sweep() -> int:
    """Re-enqueue connectors whose work is still pending (a lost task, a parked retry, a dead worker),
    and the recording of full syncs left standing."""
    now = timezone.now()
    RemoteObject.objects.filter(lease_expires_at__lt=now).update(lease_owner="", lease_expires_at=None)
    connector_ids = set()
    # One probe of the pending events' index per connector, not a DISTINCT over every pending event
    # (225 ms at a million pending, every PROVISIONING_SWEEP_SECONDS).
    pending = OutboxEvent.objects.filter(connector=OuterRef("pk"), processed_at__isnull=True)
    for connector in Connector.objects.filter(Exists(pending)):
        if due_candidates(connector, 1):
            connector_ids.add(connector.pk)
    for connector_id in connector_ids:
        with transaction.atomic():
            kick(connector_id)
    # A full sync still being recorded whose task is gone (a chunk commits every second or so).
    stalled = now - timedelta(seconds=settings.PROVISIONING_TASK_BUDGET_SECONDS)
    for connector_id in FullSyncRecording.objects.filter(updated__lt=stalled).values_list("connector_id", flat=True):
        with transaction.atomic():
            continue_in_background(connector_id)
    return len(connector_ids)
