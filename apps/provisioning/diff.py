"""Dry-run preview: what a sync would send, computed from the directory and the link table only."""

from dataclasses import dataclass, field
from typing import Any

from apps.connectors.models import Connector, Deprovision, MappingKind
from apps.connectors.selectors import users_in_scope
from apps.directory.models import Group, Membership, UserStatus
from apps.provisioning import mapping
from apps.provisioning.models import ObjectType, RemoteObject, SyncStatus


@dataclass
class SyncPreview:
    creates: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    deactivations: list[dict[str, Any]] = field(default_factory=list)
    deletions: list[dict[str, Any]] = field(default_factory=list)
    group_creates: list[dict[str, Any]] = field(default_factory=list)
    group_deletes: list[dict[str, Any]] = field(default_factory=list)
    membership_changes: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        body = {name: getattr(self, name) for name in self.__dataclass_fields__}
        body["summary"] = {name: len(value) for name, value in body.items()}
        return body


def preview_sync(connector: Connector) -> SyncPreview:
    preview = SyncPreview()
    user_mappings = mapping.mapping_pairs(connector.mappings.filter(kind=MappingKind.SCIM_USER))
    group_mappings = mapping.mapping_pairs(connector.mappings.filter(kind=MappingKind.SCIM_GROUP))
    remotes = {
        (remote.object_type, str(remote.object_id)): remote
        for remote in RemoteObject.objects.filter(connector=connector)
    }
    group_names: dict[str, list[str]] = {}
    for user_id, name in Membership.objects.values_list("user_id", "group__name"):
        group_names.setdefault(str(user_id), []).append(name)

    in_scope = list(users_in_scope(connector))
    will_have: set[str] = set()
    for user in in_scope:
        key = str(user.pk)
        remote = remotes.get((ObjectType.USER, key))
        try:
            resource = mapping.build_user_resource(
                mapping.user_properties(user, group_names.get(key, [])), user_mappings
            )
        except mapping.MappingFailure as exc:
            preview.errors.append({"user": user.username, "error": str(exc)})
            continue
        will_have.add(key)
        linked = remote is not None and remote.remote_id and remote.status != SyncStatus.DEPROVISIONED
        if not linked:
            preview.creates.append({"id": key, "userName": mapping.user_name_of(resource), "resource": resource})
        elif mapping.resource_hash(resource) != remote.last_sent_hash:
            changed = mapping.changed_attributes(remote.last_sent, resource)
            entry = {"id": key, "userName": user.username, "changed": {
                name: {"from": (remote.last_sent or {}).get(name), "to": resource.get(name)} for name in changed
            }}  # fmt: skip
            if changed == ["active"] and user.status != UserStatus.ACTIVE:
                preview.deactivations.append({"id": key, "userName": user.username, "reason": user.status})
            else:
                preview.updates.append(entry)

    in_scope_ids = {str(user.pk) for user in in_scope}
    deleting = connector.provisioning.deprovision == Deprovision.DELETE
    for (object_type, object_id), remote in remotes.items():
        if object_type != ObjectType.USER or not remote.remote_id or remote.status == SyncStatus.DEPROVISIONED:
            continue
        if object_id not in in_scope_ids:
            entry = {"id": object_id, "userName": remote.label, "reason": "no longer assigned or deleted"}
            (preview.deletions if deleting else preview.deactivations).append(entry)

    provisioned_after = {
        object_id
        for (object_type, object_id), remote in remotes.items()
        if object_type == ObjectType.USER and remote.remote_id and remote.status == SyncStatus.SYNCED
    } | will_have
    assigned_groups = Group.objects.filter(connector_assignments__connector=connector)
    assigned_ids = set()
    for group in assigned_groups:
        key = str(group.pk)
        assigned_ids.add(key)
        remote = remotes.get((ObjectType.GROUP, key))
        members = {str(pk) for pk in Membership.objects.filter(group=group).values_list("user_id", flat=True)}
        desired = (members & provisioned_after) & in_scope_ids
        try:
            mapping.build_group_resource(mapping.group_properties(group), group_mappings, [])
        except mapping.MappingFailure as exc:
            preview.errors.append({"group": group.name, "error": str(exc)})
            continue
        if remote is None or not remote.remote_id:
            if desired:
                preview.group_creates.append({"id": key, "displayName": group.name, "members": len(desired)})
            continue
        present = set(remote.remote_members)
        added, removed = sorted(desired - present), sorted(present - desired)
        renamed = remote.label and remote.label != group.name
        if added or removed or renamed:
            preview.membership_changes.append(
                {
                    "id": key,
                    "displayName": group.name,
                    "add": added,
                    "remove": removed,
                    "renamed_from": remote.label if renamed else "",
                }
            )
    for (object_type, object_id), remote in remotes.items():
        if object_type == ObjectType.GROUP and remote.remote_id and object_id not in assigned_ids:
            preview.group_deletes.append({"id": object_id, "displayName": remote.label})
    return preview
