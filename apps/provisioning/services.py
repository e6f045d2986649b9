"""Recording lifecycle changes for the connectors that must hear of them, and admin operations.

`record_*` functions are called by the directory and connector services inside their own
transaction: the outbox rows commit or roll back with the change, and the Celery task is only
enqueued after commit.
"""

import logging
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.audit.services import Actor, audit_record
from apps.common.db import hot_path_cursor
from apps.connectors.models import Assignment, Connector, ConnectorKind, ProvisioningSettings
from apps.connectors.selectors import users_in_scope
from apps.directory.models import Group, Membership, User
from apps.provisioning import dispatch
from apps.provisioning.dispatch import kick
from apps.provisioning.models import (
    DeprovisionHold,
    HoldStatus,
    ObjectType,
    OutboxEvent,
    RemoteObject,
    SyncStatus,
)

logger = logging.getLogger(__name__)
_PROVISIONING_KINDS = (ConnectorKind.SCIM, ConnectorKind.SAML_SCIM)


def _active_connector_sql() -> str:
    connectors = Connector._meta.db_table
    settings_table = ProvisioningSettings._meta.db_table
    # Table names come from the models; the only values are bound parameters.
    return (
        f'SELECT c."id" FROM "{connectors}" c JOIN "{settings_table}" p ON p."connector_id" = c."id" '  # noqa: S608
        'WHERE c."enabled" AND p."enabled" AND c."kind" IN (%s, %s)'
    )


def _active_connectors() -> list[Connector]:
    """Connectors that provision now. Every directory write asks, and most deployments have none
    or few: the question is written-out SQL (the ORM's compile of the same join cost about 0.6 ms
    of each SCIM write, bench/scim_server.py), and the rows are loaded only when there are some."""
    with hot_path_cursor() as cursor:
        cursor.execute(_active_connector_sql(), list(_PROVISIONING_KINDS))
        ids = [row[0] for row in cursor.fetchall()]
    if not ids:
        return []
    return list(Connector.objects.filter(pk__in=ids).select_related("provisioning"))


# --- Recording changes ------------------------------------------------------------------------


def record_events(connector: Connector, object_type: str, object_ids: Iterable[Any], reason: str) -> int:
    """Outbox rows (and the RemoteObject rows they point at) for these objects on one connector."""
    ids = list(dict.fromkeys(str(object_id) for object_id in object_ids))
    if not ids:
        return 0
    RemoteObject.objects.bulk_create(
        [RemoteObject(connector=connector, object_type=object_type, object_id=object_id) for object_id in ids],
        ignore_conflicts=True,
    )
    OutboxEvent.objects.bulk_create(
        [
            OutboxEvent(connector=connector, object_type=object_type, object_id=object_id, reason=reason)
            for object_id in ids
        ],
        batch_size=1000,
    )
    kick(connector.pk)
    return len(ids)


def _linked_connector_ids(object_type: str, object_ids: list[str]) -> set:
    return set(
        RemoteObject.objects.filter(object_type=object_type, object_id__in=object_ids)
        .exclude(remote_id="")
        .values_list("connector_id", flat=True)
    )


def record_user_change(user_ids: Iterable[Any], reason: str) -> None:
    """Users changed (profile, status, deleted): tell every connector that has them or should."""
    ids = [str(user_id) for user_id in user_ids]
    connectors = _active_connectors() if ids else []
    if not connectors:
        return  # the common case of a directory without provisioning costs one query
    linked = _linked_connector_ids(ObjectType.USER, ids)
    for connector in connectors:
        if connector.pk in linked:
            record_events(connector, ObjectType.USER, ids, reason)
            continue
        in_scope = list(users_in_scope(connector).filter(pk__in=ids).values_list("pk", flat=True))
        if in_scope:
            record_events(connector, ObjectType.USER, in_scope, reason)


def record_group_change(group: Group, reason: str, *, member_ids: Iterable[Any] = ()) -> None:
    """A group changed (renamed, members added or removed, deleted) on the connectors it is pushed to."""
    connectors = _active_connectors()
    if not connectors:
        return
    members = [str(member_id) for member_id in member_ids]
    assigned = set(Assignment.objects.filter(group=group).values_list("connector_id", flat=True))
    linked = _linked_connector_ids(ObjectType.GROUP, [str(group.pk)])
    for connector in connectors:
        if connector.pk not in assigned and connector.pk not in linked:
            continue
        record_events(connector, ObjectType.GROUP, [group.pk], reason)
        if members:
            record_events(connector, ObjectType.USER, members, reason)


def record_user_deletion(user: User) -> None:
    """Before a user row is deleted: every connector that has or should have the user deprovisions it."""
    record_user_change([user.pk], "user.delete")
    for membership in Membership.objects.filter(user=user).select_related("group"):
        record_group_change(membership.group, "group.member_deleted")


def record_group_deletion(group: Group) -> None:
    """Before a group is deleted: its assignments go with it, so its members' access is re-evaluated."""
    member_ids = list(Membership.objects.filter(group=group).values_list("user_id", flat=True))
    record_group_change(group, "group.delete", member_ids=member_ids)


def record_assignment_change(assignment: Assignment, reason: str) -> None:
    connector = assignment.connector
    if connector not in _active_connectors():
        return
    if assignment.user_id:
        record_events(connector, ObjectType.USER, [assignment.user_id], reason)
    else:
        member_ids = Membership.objects.filter(group_id=assignment.group_id).values_list("user_id", flat=True)
        record_events(connector, ObjectType.USER, list(member_ids), reason)
        record_events(connector, ObjectType.GROUP, [assignment.group_id], reason)


def record_full_sync(connector: Connector, reason: str = "sync") -> int:
    """Every object the connector has or should have: users in scope, assigned groups, linked objects."""
    if not (connector.enabled and connector.has_provisioning and connector.provisioning.enabled):
        return 0
    user_ids = set(users_in_scope(connector).values_list("pk", flat=True))
    group_ids = set(
        Assignment.objects.filter(connector=connector, group__isnull=False).values_list("group_id", flat=True)
    )
    for object_type, object_id in RemoteObject.objects.filter(connector=connector).values_list(
        "object_type", "object_id"
    ):
        (user_ids if object_type == ObjectType.USER else group_ids).add(object_id)
    return record_events(connector, ObjectType.USER, user_ids, reason) + record_events(
        connector, ObjectType.GROUP, group_ids, reason
    )


# --- Admin operations ---------------------------------------------------------------------------


@transaction.atomic
def connector_sync(*, actor: Actor, connector: Connector) -> int:
    """Re-send everything that differs, and (if allowed) deprovision what the app should not have."""
    count = record_full_sync(connector, "sync.manual")
    audit_record(actor=actor, action="provisioning.sync", target=connector, after={"objects": count})
    if connector.provisioning.deprovision_unmanaged:
        dispatch.enqueue_on_commit(dispatch.RECONCILE_UNMANAGED, str(connector.pk))
    return count


@transaction.atomic
def connector_retry_failed(*, actor: Actor, connector: Connector) -> int:
    failed = RemoteObject.objects.filter(connector=connector, status__in=[SyncStatus.FAILED, SyncStatus.PENDING])
    by_type: dict[str, list] = {}
    for object_type, object_id in failed.values_list("object_type", "object_id"):
        by_type.setdefault(object_type, []).append(object_id)
    failed.update(attempts=0, next_attempt_at=None)
    count = sum(record_events(connector, object_type, ids, "retry") for object_type, ids in by_type.items())
    audit_record(actor=actor, action="provisioning.retry", target=connector, after={"objects": count})
    return count


@transaction.atomic
def connector_pause(*, actor: Actor, connector: Connector, reason: str = "Paused by an admin") -> None:
    provisioning = connector.provisioning
    provisioning.paused, provisioning.paused_reason = True, reason[:255]
    provisioning.save(update_fields=["paused", "paused_reason"])
    audit_record(actor=actor, action="provisioning.pause", target=connector, after={"reason": reason})


@transaction.atomic
def connector_resume(*, actor: Actor, connector: Connector) -> None:
    if DeprovisionHold.objects.filter(connector=connector, status=HoldStatus.PENDING).exists():
        from apps.common.errors import ApplicationError

        raise ApplicationError(
            "A deprovisioning batch is waiting for approval: approve or cancel it first.", code="hold_pending"
        )
    provisioning = connector.provisioning
    provisioning.paused, provisioning.paused_reason = False, ""
    provisioning.save(update_fields=["paused", "paused_reason"])
    audit_record(actor=actor, action="provisioning.resume", target=connector)
    kick(connector.pk)


@transaction.atomic
def hold_open(*, connector: Connector, remotes: list[RemoteObject], threshold: int) -> DeprovisionHold:
    hold = DeprovisionHold.objects.create(
        connector=connector,
        object_ids=[str(remote.object_id) for remote in remotes],
        labels=[remote.label or str(remote.object_id) for remote in remotes],
        threshold=threshold,
    )
    provisioning = connector.provisioning
    provisioning.paused = True
    provisioning.paused_reason = f"{len(remotes)} users would be deprovisioned at once (threshold {threshold})"
    provisioning.save(update_fields=["paused", "paused_reason"])
    RemoteObject.objects.filter(pk__in=[remote.pk for remote in remotes]).update(status=SyncStatus.HELD)
    audit_record(
        actor=None,
        action="provisioning.hold",
        target=connector,
        after={"users": hold.labels[:200], "count": len(remotes), "threshold": threshold},
    )
    return hold


@transaction.atomic
def hold_approve(*, actor: Actor, hold: DeprovisionHold) -> DeprovisionHold:
    hold = DeprovisionHold.objects.select_for_update().get(pk=hold.pk)
    if hold.status != HoldStatus.PENDING:
        return hold
    hold.status, hold.decided_by, hold.decided_at = HoldStatus.APPROVED, _user_of(actor), timezone.now()
    hold.save(update_fields=["status", "decided_by", "decided_at"])
    _unpause(hold.connector)
    audit_record(
        actor=actor,
        action="provisioning.hold.approve",
        target=hold.connector,
        after={"count": len(hold.object_ids) + len(hold.remote_ids)},
    )
    kick(hold.connector_id)
    if hold.remote_ids:
        dispatch.enqueue_on_commit(dispatch.DEPROVISION_HELD_REMOTE_USERS, hold.pk)
    return hold


@transaction.atomic
def hold_cancel(*, actor: Actor, hold: DeprovisionHold) -> DeprovisionHold:
    """Keep the users in the app: their pending deprovisioning is dropped, not sent."""
    hold = DeprovisionHold.objects.select_for_update().get(pk=hold.pk)
    if hold.status != HoldStatus.PENDING:
        return hold
    hold.status, hold.decided_by, hold.decided_at = HoldStatus.CANCELLED, _user_of(actor), timezone.now()
    hold.save(update_fields=["status", "decided_by", "decided_at"])
    OutboxEvent.objects.filter(
        connector=hold.connector, object_type=ObjectType.USER, object_id__in=hold.object_ids, processed_at__isnull=True
    ).update(processed_at=timezone.now())
    RemoteObject.objects.filter(
        connector=hold.connector, object_type=ObjectType.USER, object_id__in=hold.object_ids
    ).update(status=SyncStatus.SKIPPED, last_error="Deprovisioning cancelled by an admin; the user stays in the app.")
    _unpause(hold.connector)
    audit_record(
        actor=actor, action="provisioning.hold.cancel", target=hold.connector, after={"count": len(hold.object_ids)}
    )
    kick(hold.connector_id)
    return hold


def _unpause(connector: Connector) -> None:
    provisioning = connector.provisioning
    provisioning.paused, provisioning.paused_reason = False, ""
    provisioning.save(update_fields=["paused", "paused_reason"])


def _user_of(actor: Actor) -> User | None:
    return actor if isinstance(actor, User) else getattr(actor, "user", None)


def sweep() -> int:
    """Re-enqueue connectors whose work is still pending (a lost task, a parked retry, a dead worker)."""
    now = timezone.now()
    RemoteObject.objects.filter(lease_expires_at__lt=now).update(lease_owner="", lease_expires_at=None)
    from apps.provisioning.engine import hash_joins

    connector_ids = set()
    pending = OutboxEvent.objects.filter(processed_at__isnull=True)
    for connector_id in set(pending.values_list("connector_id", flat=True).distinct()):
        with hash_joins(connector_id):
            due = (
                RemoteObject.objects.filter(
                    connector_id=connector_id,
                    object_id__in=pending.filter(connector_id=connector_id).values("object_id"),
                )
                .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
                .exists()
            )
        if due:
            connector_ids.add(connector_id)
    for connector_id in connector_ids:
        with transaction.atomic():
            kick(connector_id)
    return len(connector_ids)


@transaction.atomic
def hold_open_remote(*, connector: Connector, remote_users: list[dict], threshold: int) -> DeprovisionHold:
    """A hold for users the app has that the directory does not manage (found by a full sync)."""
    hold = DeprovisionHold.objects.create(
        connector=connector,
        remote_ids=[user["id"] for user in remote_users],
        labels=[user["userName"] or user["id"] for user in remote_users],
        threshold=threshold,
    )
    provisioning = connector.provisioning
    provisioning.paused = True
    provisioning.paused_reason = (
        f"A full sync would deprovision {len(remote_users)} users the directory does not manage (threshold {threshold})"
    )
    provisioning.save(update_fields=["paused", "paused_reason"])
    audit_record(
        actor=None,
        action="provisioning.hold",
        target=connector,
        after={"unmanaged_users": hold.labels[:200], "count": len(remote_users), "threshold": threshold},
    )
    return hold


def deprovision_approved_remote_users(hold_id: int) -> int:
    from apps.provisioning.engine import ConnectorRun, deprovision_remote_ids

    hold = DeprovisionHold.objects.select_related("connector__provisioning").filter(pk=hold_id).first()
    if hold is None or hold.status != HoldStatus.APPROVED or not hold.remote_ids:
        return 0
    return deprovision_remote_ids(ConnectorRun(hold.connector), list(hold.remote_ids))
