"""Reconciling one group with the app: create or adopt it with its provisioned members, send the
difference of attributes and members, or delete it once it is no longer assigned.
"""

import contextlib

from apps.connectors.models import Assignment, ProvisioningOperation, UpdateMethod
from apps.directory.models import Group, Membership
from apps.provisioning import mapping
from apps.provisioning.client import ConflictError, RemoteNotFoundError
from apps.provisioning.models import ObjectType, RemoteObject, SyncStatus
from apps.provisioning.outcomes import finish
from apps.provisioning.run import ConnectorRun


def reconcile_group(run: ConnectorRun, remote: RemoteObject) -> None:
    group = Group.objects.filter(pk=remote.object_id).first()
    assigned = group is not None and Assignment.objects.filter(connector=run.connector, group=group).exists()
    if ProvisioningOperation.PUSH_GROUPS not in run.operations:
        finish(remote, SyncStatus.SKIPPED, "Pushing groups is turned off for this connector.")
        return
    if not assigned:
        if remote.remote_id:
            with contextlib.suppress(RemoteNotFoundError):
                run.client.delete("Groups", remote.remote_id)
            remote.remote_id, remote.remote_members, remote.last_sent, remote.last_sent_hash = "", [], None, ""
            finish(remote, SyncStatus.DEPROVISIONED)
        else:
            finish(remote, SyncStatus.SKIPPED)
        return

    remote.label = group.name
    member_ids = {str(pk) for pk in Membership.objects.filter(group=group).values_list("user_id", flat=True)}
    provisioned = dict(
        RemoteObject.objects.filter(
            connector=run.connector,
            object_type=ObjectType.USER,
            object_id__in=member_ids,
            status=SyncStatus.SYNCED,
        )
        .exclude(remote_id="")
        .values_list("object_id", "remote_id")
    )
    desired = {str(object_id): remote_id for object_id, remote_id in provisioned.items()}
    resource = mapping.build_group_resource(mapping.group_properties(group), run.group_mappings, [])

    if not remote.remote_id:
        if not desired:
            finish(remote, SyncStatus.SKIPPED, "Empty groups are not created in the app.")
            return
        quoted = group.name.replace("\\", "\\\\").replace('"', '\\"')
        existing = run.client.search("Groups", f'displayName eq "{quoted}"')
        if existing:
            adopted = existing[0]
            remote.remote_id = str(adopted["id"])
            by_remote = {remote_id: object_id for object_id, remote_id in desired.items()}
            remote.remote_members = [
                by_remote[m["value"]] for m in adopted.get("members") or [] if m.get("value") in by_remote
            ]
            remote.last_sent = {key: adopted.get(key) for key in resource if key != "schemas"}
        else:
            payload = {**resource, "members": [{"value": rid} for rid in sorted(desired.values())]}
            try:
                created = run.client.create("Groups", payload)
            except ConflictError:
                existing = run.client.search("Groups", f'displayName eq "{quoted}"')
                if not existing:
                    raise
                created = existing[0]
                remote.remote_id = str(created["id"])
                remote.remote_members = []
            else:
                remote.remote_id = str(created.get("id", ""))
                remote.remote_members = sorted(desired)
                remote.last_sent = resource
                remote.last_sent_hash = mapping.resource_hash(resource)
                finish(remote, SyncStatus.SYNCED)
                return

    operations = (
        mapping.patch_operations(remote.last_sent, resource)
        if remote.last_sent_hash != mapping.resource_hash(resource)
        else []
    )
    operations = [op for op in operations if op["path"] != "members"]
    present = set(remote.remote_members)
    added = set(desired) - present
    removed = present - set(desired)
    # Members that left are removed by the remote id recorded when they were provisioned.
    removed_remote_ids = dict(
        RemoteObject.objects.filter(connector=run.connector, object_type=ObjectType.USER, object_id__in=removed)
        .exclude(remote_id="")
        .values_list("object_id", "remote_id")
    )
    operations += mapping.member_operations(
        [desired[object_id] for object_id in added], [removed_remote_ids[k] for k in removed_remote_ids]
    )
    if operations:
        try:
            if run.settings.update_method == UpdateMethod.PUT:
                members = [{"value": remote_id} for remote_id in sorted(desired.values())]
                run.client.replace("Groups", remote.remote_id, {**resource, "members": members})
            else:
                run.client.patch("Groups", remote.remote_id, mapping.patch_request(operations))
        except RemoteNotFoundError:
            remote.remote_id, remote.remote_members, remote.last_sent, remote.last_sent_hash = "", [], None, ""
            raise
    remote.remote_members = sorted(desired)
    remote.last_sent = resource
    remote.last_sent_hash = mapping.resource_hash(resource)
    finish(remote, SyncStatus.SYNCED)
