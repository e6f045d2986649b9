"""Reconciling one user with the app: carry out its plan (apps.provisioning.planner).

Create it (looking up, or after a 409, the account the app already has, and linking that one
instead), update what differs, or deactivate or delete it once it leaves the connector's scope.
"""

import contextlib

from apps.directory.models import User
from apps.provisioning import mapping
from apps.provisioning.client import ConflictError, RemoteNotFoundError, ScimError
from apps.provisioning.models import RemoteObject, SyncStatus
from apps.provisioning.outcomes import finish, mark_groups_dirty_for_member, sent
from apps.provisioning.planner import Action, UserPlan, plan_user, user_is_linked
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


def _plan(run: ConnectorRun, remote: RemoteObject, user: User | None) -> UserPlan:
    key = str(remote.object_id)
    return plan_user(
        user, remote, run.plan, in_scope=key in run.in_scope, group_names=run.group_names.get(key, ()),
        manager_app_id=run.manager_app_ids.get(key, ""),
    )  # fmt: skip


def _sync_user(run: ConnectorRun, remote: RemoteObject, user: User) -> None:
    plan = _plan(run, remote, user)
    remote.label = user.username
    if plan.action == Action.CREATE:
        existing = _create_user(run, remote, plan.request.body)
        if existing is None:
            sent(remote, plan.last_sent, plan.last_sent_hash)
            mark_groups_dirty_for_member(run, user.pk, "member.provisioned")
            return
        remote.remote_id = str(existing["id"])
        remote.status = SyncStatus.PENDING  # linked again, whatever it was: the plan below updates it
        # What the app holds of the attributes we manage: the update below sends only their difference,
        # never a removal of id, meta or attributes the connector does not map.
        remote.last_sent = {key: existing[key] for key in plan.request.body if key in existing}
        remote.last_sent_hash = ""
        mark_groups_dirty_for_member(run, user.pk, "member.linked")
        plan = _plan(run, remote, user)
    if plan.action in (Action.NONE, Action.SKIP):
        finish(remote, plan.status, plan.note)
        return
    try:
        if plan.request is not None:
            run.send(plan.request)
    except RemoteNotFoundError:
        # Someone deleted it in the app: create it again on the next pass.
        remote.remote_id, remote.last_sent, remote.last_sent_hash = "", None, ""
        raise
    sent(remote, plan.last_sent, plan.last_sent_hash)


def _deprovision_user(run: ConnectorRun, remote: RemoteObject, user: User | None) -> None:
    plan = _plan(run, remote, user)
    if plan.action in (Action.NONE, Action.SKIP):
        finish(remote, plan.status, plan.note)
        return
    with contextlib.suppress(RemoteNotFoundError):  # already gone: the goal is reached
        run.send(plan.request)
    remote.last_sent, remote.last_sent_hash = plan.last_sent, plan.last_sent_hash
    finish(remote, plan.status)
    mark_groups_dirty_for_member(run, remote.object_id, "member.deprovisioned")


def reconcile_user(run: ConnectorRun, remote: RemoteObject) -> None:
    user = run.users.get(str(remote.object_id))
    in_scope = user is not None and str(user.pk) in run.in_scope
    if in_scope:
        if not user_is_linked(remote, run.plan):
            remote.remote_id = ""  # deleted in the app (deprovision = delete): created again, if allowed
        _sync_user(run, remote, user)
    else:
        _deprovision_user(run, remote, user)
