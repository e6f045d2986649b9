"""Recording lifecycle changes for the connectors that must hear of them: the provisioning outbox.

The public entry of provisioning for other apps: the directory and connector services call the
`record_*` functions inside their own transaction, so the outbox rows commit or roll back with the
change, and a worker is asked for only after commit (`dispatch.kick`).
"""

from collections.abc import Collection, Iterable
from typing import Any

from apps.common.db import hot_path_cursor
from apps.connectors.models import Assignment, Connector, ConnectorKind, ProvisioningSettings
from apps.connectors.selectors import users_in_scope
from apps.directory.models import Group, Membership, User
from apps.provisioning.dispatch import kick
from apps.provisioning.models import ObjectType, OutboxEvent, RemoteObject

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


def record_user_change(user_ids: Iterable[Any], reason: str, *, attributes: Collection[str] | None = None) -> None:
    """Users changed (profile, status, deleted): tell every connector that has them or should.

    `attributes`: the profile keys that changed (None: not a profile change); every connector hears
    of it for now."""
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


def record_groups_change(groups: list[Group], reason: str, *, member_ids: Iterable[Any] = ()) -> None:
    """record_group_change for several groups and the same members, with one question of which
    connectors provision and one of where the groups are assigned or linked (group rules moving one
    user between groups: a few queries whatever the number of groups)."""
    connectors = _active_connectors() if groups else []
    if not connectors:
        return
    members = [str(member_id) for member_id in member_ids]
    group_ids = [group.pk for group in groups]
    pushed = set(Assignment.objects.filter(group_id__in=group_ids).values_list("connector_id", "group_id"))
    pushed |= set(
        RemoteObject.objects.filter(object_type=ObjectType.GROUP, object_id__in=group_ids)
        .exclude(remote_id="")
        .values_list("connector_id", "object_id")
    )
    for connector in connectors:
        touched = [group_id for group_id in group_ids if (connector.pk, group_id) in pushed]
        if not touched:
            continue
        record_events(connector, ObjectType.GROUP, touched, reason)
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
