"""What became of each object of a batch, and writing it: the objects, their settled events, the
delivery log and the groups to re-send, together in one transaction.
"""

import functools
import logging
import random
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from apps.common.db import hot_path_cursor, insert_rows
from apps.connectors.selectors import users_in_scope
from apps.directory.models import Membership
from apps.provisioning import waiting
from apps.provisioning.models import ObjectType, OutboxEvent, RemoteObject, SyncStatus
from apps.provisioning.outbox import record_events
from apps.provisioning.run import ConnectorRun

logger = logging.getLogger(__name__)


def sent(remote: RemoteObject, resource: dict, digest: str) -> None:
    remote.last_sent = resource
    remote.last_sent_hash = digest
    finish(remote, SyncStatus.SYNCED)


def finish(remote: RemoteObject, status: str, note: str = "") -> None:
    remote.status = status
    remote.last_error = note
    remote.attempts = 0
    remote.next_attempt_at = None
    remote.last_synced_at = timezone.now()


def fail(remote: RemoteObject, reason: str) -> None:
    remote.status = SyncStatus.FAILED
    remote.last_error = reason[:2000]
    remote.next_attempt_at = None
    remote.attempts += 1


def backoff_seconds(attempts: int) -> float:
    """Exponential backoff with full jitter, capped."""
    base = settings.PROVISIONING_RETRY_BASE_SECONDS
    cap = settings.PROVISIONING_RETRY_MAX_SECONDS
    return random.uniform(base, min(cap, base * (2 ** min(attempts, 20))))


def mark_groups_dirty_for_member(run: ConnectorRun, user_id: Any, reason: str) -> None:
    """A member became (un)provisioned: the connector's groups that include it must be re-sent.

    Collected for the batch and recorded with its outcomes (`flush`). Groups a user left, or was
    deleted from, were recorded by the directory change itself.
    """
    run.dirty_members.setdefault(reason, set()).add(str(user_id))


def _record_dirty_groups(run: ConnectorRun) -> None:
    for reason, user_ids in run.dirty_members.items():
        group_ids = set(
            Membership.objects.filter(
                user_id__in=user_ids, group__connector_assignments__connector=run.connector
            ).values_list("group_id", flat=True)
        )
        group_ids -= _groups_waiting(run, group_ids)
        if group_ids:
            record_events(run.connector, ObjectType.GROUP, group_ids, reason)
        _record_reports(run, user_ids)


def _groups_waiting(run: ConnectorRun, group_ids: set) -> set:
    """Of these groups, those whose next pass has not begun: an unprocessed event and no lease. That
    pass reads the members once this transaction has committed, so another event would only be one
    more to settle: an initial sync recorded one per group per batch of its members (780,000 for a
    million users, all read and settled by the groups' passes at the end).

    Their links stay locked until the commit: a claim skips them meanwhile (SKIP LOCKED), so none
    begins before it could see the members provisioned here. A group whose pass has begun (leased),
    or whose link another transaction holds (never waited for: no deadlock with a group's outcome
    being written), gets its event and is sent again."""
    if not group_ids:
        return set()
    now = timezone.now()
    links = (
        RemoteObject.objects.select_for_update(skip_locked=connection.features.has_select_for_update_skip_locked)
        .filter(connector=run.connector, object_type=ObjectType.GROUP, object_id__in=group_ids)
        .order_by("id")
        .values_list("object_id", "lease_expires_at")
    )
    free = [object_id for object_id, lease_expires_at in links if lease_expires_at is None or lease_expires_at < now]
    if not free:
        return set()
    pending = OutboxEvent.objects.filter(
        connector=run.connector, object_type=ObjectType.GROUP, object_id__in=free, processed_at__isnull=True
    )
    return set(pending.values_list("object_id", flat=True).distinct())


def _record_reports(run: ConnectorRun, manager_ids: set[str]) -> None:
    """Managers were linked or deprovisioned: the people reporting to them are re-sent when the
    connector sends the manager's id in the app (which has just appeared or gone)."""
    if not run.plan.sends_manager_app_id:
        return
    report_ids = list(users_in_scope(run.connector).filter(manager_id__in=manager_ids).values_list("pk", flat=True))
    if report_ids:
        record_events(run.connector, ObjectType.USER, report_ids, "manager.linked")


_OUTCOME_FIELDS = [
    "label", "remote_id", "status", "last_sent", "last_sent_hash", "remote_members", "last_error",
    "attempts", "next_attempt_at", "last_synced_at", "lease_owner", "lease_expires_at", "updated",
]  # fmt: skip
# Outcomes are written together, at most this long after the first of them.
FLUSH_SECONDS = 1.0


@dataclass
class Outcome:
    remote: RemoteObject
    # The pending events this outcome settles (None: they stay pending, as for a retry).
    event_ids: list[int] | None


def flush(run: ConnectorRun, outcomes: list[Outcome]) -> None:
    """Write a run of outcomes in one transaction: the objects, their settled events, the delivery
    log, and the groups to re-send for members that were provisioned or deprovisioned.

    Until then the objects stay leased, so no other worker sends them meanwhile; if this worker is
    killed first, the leases expire and the events, still pending, are delivered again (a user it
    created is then in the app but not linked: the app holds more users than links, so the next
    attempt looks it up before creating). The creates lock is released once the links are committed,
    or once writing them has failed: a lock left held on the worker's connection kept every other
    worker's count of the app's users waiting, and so looking up before each create, to the end of
    an initial sync (three times slower, measured).

    Two workers' flushes can deadlock on the links of groups both re-send (each locks the groups
    it read as free, then records events for the others, whose trigger waits for their locks):
    PostgreSQL then aborts one, which writes everything again, up to FLUSH_ATTEMPTS times, instead
    of losing a batch of outcomes for users already created in the app.
    """
    if not outcomes and not run.deliveries and not run.dirty_members:
        run.creates_lock.release()
        return
    now = timezone.now()
    for outcome in outcomes:
        outcome.remote.lease_owner, outcome.remote.lease_expires_at, outcome.remote.updated = "", None, now
    try:
        for attempt in range(1, FLUSH_ATTEMPTS + 1):
            try:
                with transaction.atomic():
                    _write_outcomes(run, outcomes, now)
                break
            except OperationalError as exc:
                if attempt == FLUSH_ATTEMPTS or not _lost_to_another_transaction(exc):
                    raise
                logger.info(
                    "%s: outcomes lost a deadlock (attempt %s); writing them again", run.connector.slug, attempt
                )
    except Exception:
        run.app_has_unlinked_users()  # what this batch created may not be linked: look up first
        raise
    finally:
        run.creates_lock.release()
    run.deliveries = []
    run.dirty_members = {}
    outcomes.clear()


def write_deliveries(run: ConnectorRun) -> None:
    """The requests logged so far, written now rather than with the batch's outcomes: a large group's
    PATCH bodies (a thousand members each) would otherwise stay in memory until its pass ends."""
    if run.deliveries:
        insert_rows(run.deliveries)
        run.deliveries = []


# Times a flush that lost a deadlock (or a serialization failure) is written again.
FLUSH_ATTEMPTS = 5


def _lost_to_another_transaction(exc: OperationalError) -> bool:
    # deadlock_detected, serialization_failure: the transaction was rolled back; running it again is safe.
    return getattr(exc.__cause__, "sqlstate", None) in {"40P01", "40001"}


def _write_outcomes(run: ConnectorRun, outcomes: list[Outcome], now: Any) -> None:
    settled = [event_id for outcome in outcomes for event_id in outcome.event_ids or ()]
    if connection.vendor == "postgresql":
        settled_per_link = _settle_counted(outcomes, settled, now) if settled else {}
        if outcomes:
            _save_outcomes([outcome.remote for outcome in outcomes], settled_per_link)
    else:
        if outcomes:
            _save_outcomes([outcome.remote for outcome in outcomes])
        if settled:
            OutboxEvent.objects.filter(id__any=settled, processed_at__isnull=True).update(processed_at=now)
    if run.deliveries:
        insert_rows(run.deliveries)
    if run.dirty_members:
        _record_dirty_groups(run)


def _settle_counted(outcomes: list[Outcome], settled: list[int], now: Any) -> dict[Any, int]:
    """Mark the events processed without the outbox's trigger counting them (PostgreSQL): link pk ->
    how many of its events this settled, taken off its waiting count by the outcomes' own UPDATE.
    The trigger's lock pass and second UPDATE of every link was the one write of a link per user
    that the outcome did not need."""
    links = {(outcome.remote.object_type, str(outcome.remote.object_id)): outcome.remote.pk for outcome in outcomes}
    per_link: dict[Any, int] = {}
    with hot_path_cursor() as cursor, waiting.counted_by_the_caller(cursor):
        cursor.execute(_SETTLE_RETURNING, [now, settled])
        for object_type, object_id in cursor.fetchall():
            pk = links[(object_type, str(object_id))]
            per_link[pk] = per_link.get(pk, 0) + 1
    return per_link


_SETTLE_RETURNING = (
    f'UPDATE "{OutboxEvent._meta.db_table}" SET processed_at = %s '  # noqa: S608 - the model's table
    "WHERE id = ANY(%s) AND processed_at IS NULL RETURNING object_type, object_id"
)


def _save_outcomes(remotes: list[RemoteObject], settled_per_link: dict[Any, int] | None = None) -> None:
    """The objects' outcomes in one statement on PostgreSQL: an UPDATE from one array per column
    (unnest), prepared once per connection (apps.common.db.hot_path_cursor). One UPDATE per object
    fired the links counter's statement trigger once per object: half the database's time for the
    outcomes, and about 200 counter deltas per batch for the console's progress to add up (its poll
    went from 77 to 152 ms median during an initial sync of 100,000 users). Elsewhere one UPDATE per
    object, in one executemany.

    Not `bulk_update`: building its CASE WHEN expressions took more of the worker's CPU than all
    the HTTP requests of the sync (9.6 of 17 CPU seconds for 1,000 users, profiled).
    """
    fields = [RemoteObject._meta.get_field(name) for name in _OUTCOME_FIELDS]
    columns = [[field.get_db_prep_save(getattr(remote, field.attname), connection) for remote in remotes]
               for field in fields]  # fmt: skip
    keys = [remote.pk for remote in remotes]
    with hot_path_cursor() as cursor:
        if connection.vendor == "postgresql":
            settled = [(settled_per_link or {}).get(key, 0) for key in keys]
            cursor.execute(_outcomes_from_arrays(), [keys, *columns, settled])
        else:
            cursor.executemany(
                _outcome_per_row(), [[*values, key] for key, *values in zip(keys, *columns, strict=True)]
            )


@functools.cache
def _outcomes_from_arrays() -> str:
    fields = [RemoteObject._meta.pk] + [RemoteObject._meta.get_field(name) for name in _OUTCOME_FIELDS]
    quote = connection.ops.quote_name
    arrays = ", ".join(f"%s::{field.cast_db_type(connection)}[]" for field in fields) + ", %s::integer[]"
    names = ", ".join(quote(field.column) for field in fields) + ", settled"
    assignments = ", ".join(f"{quote(field.column)} = o.{quote(field.column)}" for field in fields[1:])
    waiting_column = quote(RemoteObject._meta.get_field("waiting_events").column)
    assignments += f", {waiting_column} = l.{waiting_column} - o.settled"  # see _settle_counted
    key = quote(RemoteObject._meta.pk.column)
    # Names and types from the model; the values are bound parameters.
    return (
        f"UPDATE {quote(RemoteObject._meta.db_table)} AS l SET {assignments} "  # noqa: S608
        f"FROM unnest({arrays}) AS o({names}) WHERE l.{key} = o.{key}"
    )


@functools.cache
def _outcome_per_row() -> str:
    fields = [RemoteObject._meta.get_field(name) for name in _OUTCOME_FIELDS]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
    key = quote(RemoteObject._meta.pk.column)
    return f"UPDATE {quote(RemoteObject._meta.db_table)} SET {assignments} WHERE {key} = %s"  # noqa: S608
