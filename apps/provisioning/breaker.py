"""The deprovisioning circuit breaker: too many users losing access at once pauses the connector and
opens a hold that an admin approves or cancels.
"""

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection, transaction
from django.db.models import BooleanField, Case, Exists, Max, OuterRef, Q, QuerySet, Value, When

from apps.audit.services import audit_record
from apps.connectors.models import Connector
from apps.connectors.pausing import provisioning_pause
from apps.connectors.selectors import assigned_condition
from apps.directory.models import User, UserStatus
from apps.provisioning.claims import hash_joins, pending_event_object_ids
from apps.provisioning.counts import linked_user_count
from apps.provisioning.models import DeprovisionHold, ObjectType, OutboxEvent, RemoteObject, SyncStatus


def _linked_users(connector: Connector) -> QuerySet[RemoteObject]:
    return (
        RemoteObject.objects.filter(connector=connector, object_type=ObjectType.USER)
        .exclude(remote_id="")
        .exclude(status=SyncStatus.DEPROVISIONED)
    )


def _losing_access(connector: Connector, linked: QuerySet[RemoteObject]) -> QuerySet[RemoteObject]:
    """Of these linked users, those a pass would deactivate or delete: out of scope, or in scope but
    no longer active, unless the app was already told they are inactive (nothing new would be
    deactivated). A query, so that a million linked users are never read into Python; scope and
    status are tested per link by index probes (building the whole scope of a million users to
    anti-join it cost more than the probes of a sync's pending links)."""
    in_scope = assigned_condition(connector, "object_id")
    active = Q(Exists(User.objects.filter(pk=OuterRef("object_id"), status=UserStatus.ACTIVE)))
    told_inactive = Case(
        When(Q(last_sent__active=False) | Q(last_sent__active=None), then=Value(True)),
        default=Value(False),
        output_field=BooleanField(),
    )
    # Every term is EXISTS or a CASE: never NULL, so the negations are exact.
    return linked.alias(told_inactive=told_inactive).filter(~in_scope | (~active & ~Q(told_inactive=True)))


def pending_deprovisions(connector: Connector) -> QuerySet[RemoteObject]:
    """Linked users with pending changes who would be deactivated or deleted now (evaluate within
    claims.hash_joins: the pending outbox can be a million events)."""
    pending = _linked_users(connector).filter(object_id__in=pending_event_object_ids(connector, ObjectType.USER))
    return _losing_access(connector, pending)


def full_sync_deprovision_count(connector: Connector) -> int:
    """How many users a full sync would deactivate or delete at once: it records a change for every
    linked user (so no earlier approval covers them)."""
    return _losing_access(connector, _linked_users(connector)).count()


def deprovision_threshold(connector: Connector) -> int:
    """The most users one batch may deprovision before the breaker holds it: a count, or a share of
    the users the app has (read from the links counter, not a COUNT of every link)."""
    provisioning = connector.provisioning
    linked_users = linked_user_count(connector.pk)
    by_percent = math.ceil(linked_users * provisioning.deprovision_threshold_percent / 100)
    return max(provisioning.deprovision_threshold_count, by_percent)


def _covered_by_approval(remotes: list[RemoteObject], approved: dict[str, Any]) -> set[str]:
    """Objects whose pending changes all predate their approval: the batch the admin approved.

    A later change (the same users removed again a month on) is a new batch and trips the breaker again.
    """
    candidates = [remote.object_id for remote in remotes if str(remote.object_id) in approved]
    if not candidates:
        return set()
    latest = dict(
        OutboxEvent.objects.filter(object_id__in=candidates, processed_at__isnull=True, object_type=ObjectType.USER)
        .filter(connector_id=remotes[0].connector_id)
        .values("object_id")
        .annotate(last=Max("created"))
        .values_list("object_id", "last")
    )
    return {
        str(object_id)
        for object_id in candidates
        if latest.get(object_id) is not None and latest[object_id] <= approved[str(object_id)]
    }


# Connector id -> (its latest pending user event, how many users were losing access) at a check that
# found them within the threshold. Every batch of a sync asks; without a newer event nobody can
# start losing access (a suspension, a removal from scope or a deletion records one), and processed
# events only take objects away, so the answer stands while no newer event exists and the threshold
# is not below that count. A memo of a verdict the database re-validates (the newest event id), so
# each process may keep its own.
_within_threshold: dict[Any, tuple[int, int]] = {}


@contextmanager
def _index_probes() -> Iterator[None]:
    """Within claims.hash_joins (which may turn nested loops off for the claim's semi-join): the
    breaker's test of each pending link is index probes, a nested loop (4 s at 400,000 pending
    events, against 45 s hashed)."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('enable_nestloop')")
        before = cursor.fetchone()[0]
        cursor.execute("SET LOCAL enable_nestloop = on")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('enable_nestloop', %s, true)", [before])


def _latest_pending_user_event(connector: Connector) -> int | None:
    """One probe of the pending-events index."""
    pending = OutboxEvent.objects.filter(connector=connector, object_type=ObjectType.USER, processed_at__isnull=True)
    return pending.order_by("-id").values_list("id", flat=True).first()


def check_circuit_breaker(
    connector: Connector, approved: dict[str, Any], *, pending_hold: DeprovisionHold | None
) -> DeprovisionHold | None:
    """Pause the connector and open a hold when too many users would lose access at once.

    `pending_hold` is the waiting hold, read for this batch just before.
    """
    if pending_hold is not None:
        return pending_hold
    latest = _latest_pending_user_event(connector)
    if latest is None:
        return None
    threshold = deprovision_threshold(connector)
    checked = _within_threshold.get(connector.pk)
    if checked is not None and checked[0] >= latest and checked[1] <= threshold:
        return None
    with hash_joins(connector.pk), _index_probes():
        found = pending_deprovisions(connector)
        # At most threshold + 1 rows counted: within the threshold nothing trips, whatever the
        # approvals, and nothing is read into Python.
        losing_now = found[: threshold + 1].count()
        if losing_now <= threshold:
            _within_threshold[connector.pk] = (latest, losing_now)
            return None
        candidates = list(found.only("id", "connector_id", "object_id", "label"))
    covered = _covered_by_approval(candidates, approved)
    losing = [remote for remote in candidates if str(remote.object_id) not in covered]
    if len(losing) <= threshold:
        return None
    return hold_open(connector=connector, remotes=losing, threshold=threshold)


def _open_hold(
    *, connector: Connector, threshold: int, reason: str, labels: list[str], audited_as: str, **targets: list[str]
) -> DeprovisionHold:
    """Pause the connector with `reason` and keep what it would deprovision (`targets`) for an admin."""
    hold = DeprovisionHold.objects.create(connector=connector, labels=labels, threshold=threshold, **targets)
    provisioning_pause(connector=connector, reason=reason)
    audit_record(
        actor=None,
        action="provisioning.hold",
        target=connector,
        after={audited_as: hold.labels[:200], "count": len(labels), "threshold": threshold},
    )
    return hold


@transaction.atomic
def hold_open(*, connector: Connector, remotes: list[RemoteObject], threshold: int) -> DeprovisionHold:
    hold = _open_hold(
        connector=connector,
        threshold=threshold,
        reason=f"{len(remotes)} users would be deprovisioned at once (threshold {threshold})",
        labels=[remote.label or str(remote.object_id) for remote in remotes],
        audited_as="users",
        object_ids=[str(remote.object_id) for remote in remotes],
    )
    RemoteObject.objects.filter(pk__in=[remote.pk for remote in remotes]).update(status=SyncStatus.HELD)
    return hold


@transaction.atomic
def hold_open_remote(*, connector: Connector, remote_users: list[dict], threshold: int) -> DeprovisionHold:
    """A hold for users the app has that the directory does not manage (found by a full sync)."""
    return _open_hold(
        connector=connector,
        threshold=threshold,
        reason=f"A full sync would deprovision {len(remote_users)} users the directory does not manage "
        f"(threshold {threshold})",
        labels=[user["userName"] or user["id"] for user in remote_users],
        audited_as="unmanaged_users",
        remote_ids=[user["id"] for user in remote_users],
    )
