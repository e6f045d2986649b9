"""The deprovisioning circuit breaker: too many users losing access at once pauses the connector and
opens a hold that an admin approves or cancels.
"""

import math
from typing import Any

from django.db import transaction
from django.db.models import Max

from apps.audit.services import audit_record
from apps.connectors.models import Connector
from apps.connectors.pausing import provisioning_pause
from apps.connectors.selectors import users_in_scope
from apps.directory.models import UserStatus
from apps.provisioning.claims import hash_joins, pending_event_object_ids
from apps.provisioning.models import DeprovisionHold, ObjectType, OutboxEvent, RemoteObject, SyncStatus


def _linked_users(connector: Connector):
    return (
        RemoteObject.objects.filter(connector=connector, object_type=ObjectType.USER)
        .exclude(remote_id="")
        .exclude(status=SyncStatus.DEPROVISIONED)
    )


def _losing_access(connector: Connector, linked: list[RemoteObject], ids: Any) -> list[RemoteObject]:
    """Of these linked users (`ids`: their object ids, or a query of them), those a pass would
    deactivate or delete: out of scope, or in scope but no longer active."""
    in_scope = dict(users_in_scope(connector).filter(pk__in=ids).values_list("pk", "status"))
    losing = []
    for remote in linked:
        status = in_scope.get(remote.object_id)
        if status == UserStatus.ACTIVE:
            continue
        if status is not None and not (remote.last_sent or {}).get("active", True):
            continue  # already inactive in the app: nothing new would be deactivated
        losing.append(remote)
    return losing


def pending_deprovisions(connector: Connector) -> list[RemoteObject]:
    """Linked users with pending changes who would be deactivated or deleted now."""
    with hash_joins(connector.pk):
        linked = list(
            _linked_users(connector).filter(object_id__in=pending_event_object_ids(connector, ObjectType.USER))
        )
    if not linked:
        return []
    return _losing_access(connector, linked, [remote.object_id for remote in linked])


def full_sync_deprovisions(connector: Connector) -> list[RemoteObject]:
    """Whom a full sync would deactivate or delete at once: it records a change for every linked user
    (so no earlier approval covers them)."""
    linked = _linked_users(connector)
    rows = list(linked.only("id", "connector_id", "object_id", "label", "last_sent"))
    return _losing_access(connector, rows, linked.values("object_id")) if rows else []


def deprovision_threshold(connector: Connector) -> int:
    provisioning = connector.provisioning
    linked_users = (
        RemoteObject.objects.filter(connector=connector, object_type=ObjectType.USER).exclude(remote_id="").count()
    )
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


def check_circuit_breaker(
    connector: Connector, approved: dict[str, Any], *, pending_hold: DeprovisionHold | None
) -> DeprovisionHold | None:
    """Pause the connector and open a hold when too many users would lose access at once.

    `pending_hold` is the waiting hold, read for this batch just before.
    """
    if pending_hold is not None:
        return pending_hold
    candidates = pending_deprovisions(connector)
    if not candidates:
        return None
    covered = _covered_by_approval(candidates, approved)
    losing = [remote for remote in candidates if str(remote.object_id) not in covered]
    if not losing:
        return None
    threshold = deprovision_threshold(connector)
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
