"""Admin operations on a connector's provisioning: full sync, retry, pause and resume, and the
decisions on deprovisioning holds. Each is audited with the acting admin.

Recording directory changes is `apps.provisioning.outbox`; reaching a worker, `dispatch`.
"""

from django.db import transaction
from django.utils import timezone

from apps.audit.services import Actor, audit_record
from apps.common.errors import ApplicationError
from apps.common.queue import enqueue_on_commit
from apps.connectors.models import Connector
from apps.connectors.pausing import provisioning_pause, provisioning_resume
from apps.directory.models import User
from apps.provisioning import dispatch, selectors
from apps.provisioning.models import (
    DeprovisionHold,
    HoldStatus,
    ObjectType,
    OutboxEvent,
    RemoteObject,
    SyncStatus,
)
from apps.provisioning.outbox import record_events, record_full_sync


@transaction.atomic
def connector_sync(*, actor: Actor, connector: Connector) -> int:
    """Re-send everything that differs, and (if allowed) deprovision what the app should not have."""
    count = record_full_sync(connector, "sync.manual")
    after = {"objects": count, "more_to_queue": selectors.full_sync_still_queuing(connector)}
    audit_record(actor=actor, action="provisioning.sync", target=connector, after=after)
    if connector.provisioning.deprovision_unmanaged:
        enqueue_on_commit(dispatch.RECONCILE_UNMANAGED, str(connector.pk))
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
    provisioning_pause(connector=connector, reason=reason)
    audit_record(actor=actor, action="provisioning.pause", target=connector, after={"reason": reason})


@transaction.atomic
def connector_resume(*, actor: Actor, connector: Connector) -> None:
    if DeprovisionHold.objects.filter(connector=connector, status=HoldStatus.PENDING).exists():
        raise ApplicationError(
            "A deprovisioning batch is waiting for approval: approve or cancel it first.", code="hold_pending"
        )
    provisioning_resume(connector=connector)
    audit_record(actor=actor, action="provisioning.resume", target=connector)
    dispatch.kick(connector.pk)


@transaction.atomic
def hold_approve(*, actor: Actor, hold: DeprovisionHold) -> DeprovisionHold:
    hold = DeprovisionHold.objects.select_for_update().get(pk=hold.pk)
    if hold.status != HoldStatus.PENDING:
        return hold
    hold.status, hold.decided_by, hold.decided_at = HoldStatus.APPROVED, _user_of(actor), timezone.now()
    hold.save(update_fields=["status", "decided_by", "decided_at"])
    provisioning_resume(connector=hold.connector)
    audit_record(
        actor=actor,
        action="provisioning.hold.approve",
        target=hold.connector,
        after={"count": len(hold.object_ids) + len(hold.remote_ids)},
    )
    dispatch.kick(hold.connector_id)
    if hold.remote_ids:
        enqueue_on_commit(dispatch.DEPROVISION_HELD_REMOTE_USERS, hold.pk)
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
    provisioning_resume(connector=hold.connector)
    audit_record(
        actor=actor, action="provisioning.hold.cancel", target=hold.connector, after={"count": len(hold.object_ids)}
    )
    dispatch.kick(hold.connector_id)
    return hold


def _user_of(actor: Actor) -> User | None:
    return actor if isinstance(actor, User) else getattr(actor, "user", None)
