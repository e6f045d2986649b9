"""Reconciling one user with the app: create it (or link the account the app has), update what
differs, or deactivate or delete it once it leaves the connector's scope.
"""

from apps.connectors.models import Deprovision, ProvisioningOperation, UpdateMethod
from apps.directory.models import User
from apps.provisioning import mapping
from apps.provisioning.client import ConflictError, RemoteNotFoundError, ScimError
from apps.provisioning.models import RemoteObject, SyncStatus
from apps.provisioning.outcomes import finish, mark_groups_dirty_for_member, sent
from apps.provisioning.run import ConnectorRun


def _find_remote_user(run: ConnectorRun, resource: dict) -> dict | None:
    """An existing remote user for this resource: by userName, then by externalId."""
    for attribute, value in (
        ("userName", mapping.user_name_of(resource)),
        ("externalId", mapping.external_id_of(resource)),
    ):
        if not value:
            continue
        quoted = value.replace("\\", "\\\\").replace('"', '\\"')
        found = run.client.search("Users", f'{attribute} eq "{quoted}"')
        if found:
            return found[0]
    return None


def _create_user(run: ConnectorRun, remote: RemoteObject, resource: dict) -> dict | None:
    """Create the user in the app, or find the one it already has; returns the existing one, if any.

    Looks up first only when the app may hold users this connector has not linked (see
    `ConnectorRun.app_may_hold_unlinked_users`); otherwise a 409 (or a uniqueness error) is what
    leads to the lookup, which saves two requests per user on the usual path.
    """
    # A retry looks up first whatever the count: its earlier attempt may have created the user.
    if remote.attempts > 0 or run.app_may_hold_unlinked_users():
        existing = _find_remote_user(run, resource)
        if existing is not None:
            return existing
    conflict: ConflictError | None = None
    run.creates_lock.hold()
    try:
        created = run.client.create("Users", resource)
    except ConflictError as exc:
        created, conflict = None, exc
    except ScimError as exc:
        if exc.retryable:
            run.app_has_unlinked_users()  # the create may have happened: the next ones look up first
        raise
    if created is not None:
        remote.remote_id = str(created.get("id", ""))
        if not remote.remote_id:
            raise ScimError("The app created the user but returned no id.")
        return None
    # 409: the user exists already (made by someone else, or by a create whose answer was lost).
    run.app_has_unlinked_users()
    existing = _find_remote_user(run, resource)
    if existing is None:
        raise conflict
    return existing


def _sync_user(run: ConnectorRun, remote: RemoteObject, user: User) -> None:
    properties = mapping.user_properties(user, run.group_names.get(str(user.pk), []))
    resource = mapping.build_user_resource(properties, run.user_mappings)
    digest = mapping.resource_hash(resource)
    remote.label = user.username
    if not remote.remote_id or (
        remote.status == SyncStatus.DEPROVISIONED and run.settings.deprovision == Deprovision.DELETE
    ):
        if ProvisioningOperation.CREATE_USERS not in run.operations:
            finish(remote, SyncStatus.SKIPPED, "Creating users is turned off for this connector.")
            return
        existing = _create_user(run, remote, resource)
        if existing is None:
            sent(remote, resource, digest)
            mark_groups_dirty_for_member(run, user.pk, "member.provisioned")
            return
        remote.remote_id = str(existing["id"])
        # What the app holds of the attributes we manage: the update below sends only their difference,
        # never a removal of id, meta or attributes the connector does not map.
        remote.last_sent = {key: existing[key] for key in resource if key in existing}
        remote.last_sent_hash = ""
        mark_groups_dirty_for_member(run, user.pk, "member.linked")
    if digest == remote.last_sent_hash:
        finish(remote, SyncStatus.SYNCED)
        return
    only_active_changed = mapping.changed_attributes(remote.last_sent, resource) == ["active"]
    allowed = ProvisioningOperation.UPDATE_USERS in run.operations or (
        only_active_changed and ProvisioningOperation.DEACTIVATE_USERS in run.operations
    )
    if not allowed:
        finish(remote, SyncStatus.SKIPPED, "Updating users is turned off for this connector.")
        return
    try:
        if run.settings.update_method == UpdateMethod.PUT:
            run.client.replace("Users", remote.remote_id, resource)
        else:
            operations = mapping.patch_operations(remote.last_sent, resource)
            if operations:
                run.client.patch("Users", remote.remote_id, mapping.patch_request(operations))
    except RemoteNotFoundError:
        # Someone deleted it in the app: create it again on the next pass.
        remote.remote_id, remote.last_sent, remote.last_sent_hash = "", None, ""
        raise
    sent(remote, resource, digest)


def _deprovision_user(run: ConnectorRun, remote: RemoteObject, *, deleted: bool) -> None:
    if not remote.remote_id or remote.status == SyncStatus.DEPROVISIONED:
        finish(remote, SyncStatus.DEPROVISIONED if remote.remote_id else SyncStatus.SKIPPED)
        return
    use_delete = run.settings.deprovision == Deprovision.DELETE
    operation = ProvisioningOperation.DELETE_USERS if use_delete else ProvisioningOperation.DEACTIVATE_USERS
    if operation not in run.operations:
        finish(remote, SyncStatus.SKIPPED, f"{operation.label} is turned off for this connector.")
        return
    try:
        if use_delete:
            run.client.delete("Users", remote.remote_id)
        elif run.settings.update_method == UpdateMethod.PUT and remote.last_sent:
            run.client.replace("Users", remote.remote_id, {**remote.last_sent, "active": False})
        else:
            run.client.patch(
                "Users",
                remote.remote_id,
                mapping.patch_request([{"op": "replace", "path": "active", "value": False}]),
            )
    except RemoteNotFoundError:
        pass  # already gone: the goal is reached
    if use_delete:
        remote.last_sent, remote.last_sent_hash = None, ""
    elif remote.last_sent:
        remote.last_sent = {**remote.last_sent, "active": False}
        remote.last_sent_hash = mapping.resource_hash(remote.last_sent)
    finish(remote, SyncStatus.DEPROVISIONED)
    mark_groups_dirty_for_member(run, remote.object_id, "member.deprovisioned")


def reconcile_user(run: ConnectorRun, remote: RemoteObject) -> None:
    user = run.users.get(str(remote.object_id))
    in_scope = user is not None and str(user.pk) in run.in_scope
    if in_scope:
        if remote.status == SyncStatus.DEPROVISIONED and run.settings.deprovision == Deprovision.DELETE:
            remote.remote_id = ""
        _sync_user(run, remote, user)
    else:
        _deprovision_user(run, remote, deleted=user is None)
