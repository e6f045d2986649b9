"""What leaving a connector's scope sets off in its app: for a user being deleted, and for a group
taken off connectors (deleted, or unassigned), each connector's step (deactivate or delete, or
nothing while the operation is off) and who it reaches; and each app's record of a user."""

import datetime
from dataclasses import dataclass

from django.db.models import QuerySet

from apps.connectors.models import Connector, Deprovision, ProvisioningOperation
from apps.connectors.selectors import group_assignments, group_removal_impact
from apps.directory.models import Group, User
from apps.provisioning.models import ObjectType, RemoteObject, SyncStatus

IMPACT_SAMPLE_SIZE = 20


def _provisioning_active(connector: Connector) -> bool:
    settings_ = getattr(connector, "provisioning", None)
    return bool(connector.enabled and connector.has_provisioning and settings_ is not None and settings_.enabled)


@dataclass(frozen=True)
class DeprovisionStep:
    """What one connector's app will be told when a user leaves its scope."""

    connector: Connector
    action: str  # a Deprovision value: "deactivate" or "delete"
    operation_on: bool  # False: the operation is turned off, nothing is sent
    paused: bool

    @property
    def deletes(self) -> bool:
        return self.action == Deprovision.DELETE

    @property
    def operation_label(self) -> str:
        operation = ProvisioningOperation.DELETE_USERS if self.deletes else ProvisioningOperation.DEACTIVATE_USERS
        return operation.label


def _step(connector: Connector) -> DeprovisionStep:
    settings_ = connector.provisioning
    action = settings_.deprovision
    operation = (
        ProvisioningOperation.DELETE_USERS if action == Deprovision.DELETE else ProvisioningOperation.DEACTIVATE_USERS
    )
    return DeprovisionStep(
        connector=connector, action=action, operation_on=operation in settings_.operations, paused=settings_.paused
    )


@dataclass(frozen=True)
class UserDeprovisioning:
    step: DeprovisionStep
    remote: RemoteObject


def user_deprovision_plan(user: User) -> list[UserDeprovisioning]:
    """Each connector with Identity Management on where the user is provisioned (one query)."""
    remotes = (
        RemoteObject.objects.filter(object_type=ObjectType.USER, object_id=user.pk)
        .exclude(remote_id="")
        .exclude(status=SyncStatus.DEPROVISIONED)
        .select_related("connector", "connector__provisioning")
        .order_by("connector__name")
    )
    return [
        UserDeprovisioning(_step(remote.connector), remote)
        for remote in remotes
        if _provisioning_active(remote.connector)
    ]


@dataclass(frozen=True)
class AppRecord:
    """What one app holds of a user, from what it was last told: for a person reading the user's page."""

    remote: RemoteObject
    label: str  # Active, Deactivated, Deleted, Waiting, Failed, Held, Not sent
    detail: str  # a sentence naming the app
    badge: str  # a status pill tone key
    at: datetime.datetime | None  # when the app was last told

    @property
    def connector(self) -> Connector:
        return self.remote.connector


def _told_active(remote: RemoteObject) -> bool | None:
    sent = remote.last_sent or {}
    return sent.get("active") if isinstance(sent.get("active"), bool) else None


def app_record(remote: RemoteObject) -> AppRecord:
    name, at = remote.connector.name, remote.last_synced_at
    status, active = remote.status, _told_active(remote)
    if status == SyncStatus.DEPROVISIONED:
        if active is False:
            return AppRecord(remote, "Deactivated", f"Deactivated in {name} (active=false)", "suspended", at)
        return AppRecord(remote, "Deleted", f"Deleted in {name}", "failed", at)
    if status == SyncStatus.SYNCED:
        if active is False:
            return AppRecord(remote, "Deactivated", f"Deactivated in {name} (active=false)", "suspended", at)
        return AppRecord(remote, "Active", f"Active in {name}", "synced", at)
    held_since = "" if active is None else f"; the app still has it {'active' if active else 'deactivated'}"
    if status == SyncStatus.FAILED:
        return AppRecord(remote, "Failed", f"The last change failed to reach {name}{held_since}", "failed", at)
    if status == SyncStatus.HELD:
        return AppRecord(remote, "Held", f"A deprovisioning waits for approval{held_since}", "held", at)
    if status == SyncStatus.SKIPPED:
        return AppRecord(remote, "Not sent", f"Not sent to {name}: {remote.last_error or 'turned off'}", "skipped", at)
    return AppRecord(remote, "Waiting", f"A change waits to be sent to {name}{held_since}", "pending", at)


def user_remote_objects(user: User) -> QuerySet[RemoteObject]:
    """The user's provisioning state on every connector that has heard of them."""
    return (
        RemoteObject.objects.filter(object_type=ObjectType.USER, object_id=user.pk)
        .select_related("connector")
        .order_by("connector__name")
    )


def user_app_records(user: User) -> list[AppRecord]:
    """What each app that has heard of the user holds now, in words (one query)."""
    return [app_record(remote) for remote in user_remote_objects(user)]


@dataclass(frozen=True)
class GroupRemovalImpact:
    """What taking a group off one connector would take away."""

    connector: Connector
    losing_access_count: int
    losing_access_sample: list[User]
    step: DeprovisionStep | None  # None: Identity Management is off, only SSO and the tile go
    deprovisioned_count: int  # of those losing access, the ones provisioned in the app
    group_pushed: bool  # the group exists in the app and will be deleted there

    @property
    def never_provisioned_count(self) -> int:
        """Of those losing access, the ones the app has no account for: nothing is sent about them."""
        return self.losing_access_count - self.deprovisioned_count


def group_removal_impacts(group: Group) -> list[GroupRemovalImpact]:
    """For each connector the group is assigned to: who loses it, and what the app is told.

    A few queries per assigned connector (a group is assigned to a handful), none per member.
    """
    impacts = []
    for assignment in group_assignments(group):
        connector = assignment.connector
        losing = group_removal_impact(group, connector)
        step = _step(connector) if _provisioning_active(connector) else None
        deprovisioned = 0
        pushed = False
        if step is not None:
            deprovisioned = (
                RemoteObject.objects.filter(
                    connector=connector, object_type=ObjectType.USER, object_id__in=losing.values("pk")
                )
                .exclude(remote_id="")
                .exclude(status=SyncStatus.DEPROVISIONED)
                .count()
            )
            pushed = (
                ProvisioningOperation.PUSH_GROUPS in connector.provisioning.operations
                and RemoteObject.objects.filter(connector=connector, object_type=ObjectType.GROUP, object_id=group.pk)
                .exclude(remote_id="")
                .exists()
            )
        impacts.append(
            GroupRemovalImpact(
                connector=connector,
                losing_access_count=losing.count(),
                losing_access_sample=list(losing.only("id", "username")[:IMPACT_SAMPLE_SIZE]),
                step=step,
                deprovisioned_count=deprovisioned,
                group_pushed=pushed,
            )
        )
    return impacts
