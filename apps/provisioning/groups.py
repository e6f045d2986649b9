"""Reconciling one group with the app: carry out its plan (apps.provisioning.planner).

Create it with its provisioned members (or adopt the group of that name the app already has), send
the difference of attributes and members, or delete it once it is no longer assigned. Members go
out in requests of at most the connector's `group_members_per_request`; the link records the
members each request settled as soon as it succeeds, so a failed request (or a killed worker)
resends only what the app has not acknowledged.
"""

import contextlib
import time

from apps.connectors.models import Assignment, ProvisioningOperation
from apps.directory.models import Group, Membership
from apps.provisioning import mapping
from apps.provisioning.client import ConflictError, RemoteNotFoundError
from apps.provisioning.models import ObjectType, RemoteObject, SyncStatus
from apps.provisioning.outcomes import finish
from apps.provisioning.planner import Action, GroupPlan, GroupStep, member_provisioned, plan_group
from apps.provisioning.run import ConnectorRun


class GroupPushIncomplete(Exception):
    """The task's time is up between two requests of a large group: the rest is sent by the next pass."""


def _member_links(run: ConnectorRun, group: Group, remote: RemoteObject) -> tuple[dict[str, str], dict[str, str]]:
    """Remote ids, by directory id, of the members the app can be sent, and of the other users the
    app holds in the group or might (their links have a remote id): one query for both."""
    memberships = Membership.objects.filter(group=group)
    member_ids = {str(pk) for pk in memberships.values_list("user_id", flat=True)}
    # The members' links joined in the database, not named in a statement: an IN list of every
    # member (100,000 in the largest group of a million users) cost the worker 1.4 s and 85 MiB.
    # Users the app holds that are no longer members are few, and named.
    linked = RemoteObject.objects.filter(connector=run.connector, object_type=ObjectType.USER).exclude(remote_id="")
    gone = [object_id for object_id in remote.remote_members if object_id not in member_ids]
    fields = ("object_id", "remote_id", "status")
    rows = list(linked.filter(object_id__in=memberships.values("user_id")).values_list(*fields))
    if gone:
        rows += linked.filter(object_id__in=gone).values_list(*fields)
    members: dict[str, str] = {}
    others: dict[str, str] = {}
    for object_id, remote_id, status in rows:
        key = str(object_id)
        if key in member_ids and member_provisioned(status, remote_id):
            members[key] = remote_id
        else:
            others[key] = remote_id
    return members, others


def _create_group(
    run: ConnectorRun, remote: RemoteObject, group: Group, plan: GroupPlan, members: dict[str, str]
) -> bool:
    """Create the group, or link the one of that name the app already has; True once created."""
    quoted = group.name.replace("\\", "\\\\").replace('"', '\\"')
    existing = run.client.search("Groups", f'displayName eq "{quoted}"')
    if existing:
        adopted = existing[0]
        remote.remote_id = str(adopted["id"])
        by_remote = {remote_id: object_id for object_id, remote_id in members.items()}
        remote.remote_members = [
            by_remote[m["value"]] for m in adopted.get("members") or [] if m.get("value") in by_remote
        ]
        remote.last_sent = {key: adopted.get(key) for key in plan.resource if key != "schemas"}
        return False
    (step,) = plan.steps()
    try:
        created = run.send(step.request)
    except ConflictError:
        existing = run.client.search("Groups", f'displayName eq "{quoted}"')
        if not existing:
            raise
        remote.remote_id = str(existing[0]["id"])
        remote.remote_members = []
        return False
    remote.remote_id = str(created.get("id", ""))
    remote.remote_members = list(step.added)
    remote.last_sent = plan.resource
    remote.last_sent_hash = mapping.resource_hash(plan.resource)
    if len(step.added) < len(plan.members):
        _save_progress(remote)
        return False  # the other members follow as an update, in chunks
    finish(remote, SyncStatus.SYNCED)
    return True


def _save_progress(remote: RemoteObject) -> None:
    """What the app acknowledged so far, at once: a killed worker or a failed later chunk then
    resends only the rest (the object stays leased to this worker meanwhile)."""
    RemoteObject.objects.filter(pk=remote.pk).update(
        remote_id=remote.remote_id, remote_members=remote.remote_members,
        last_sent=remote.last_sent, last_sent_hash=remote.last_sent_hash,
    )  # fmt: skip


def _out_of_time(run: ConnectorRun) -> bool:
    return run.deadline is not None and time.monotonic() > run.deadline


def _send_steps(run: ConnectorRun, remote: RemoteObject, plan: GroupPlan, steps: list[GroupStep]) -> None:
    """Send the requests of an update in order, recording each one's members once it succeeded."""
    present = list(remote.remote_members)
    for index, step in enumerate(steps):
        if index and _out_of_time(run):
            raise GroupPushIncomplete
        try:
            run.send(step.request)
        except RemoteNotFoundError:
            _forget(remote)
            raise
        if index == 0:
            remote.last_sent = plan.resource  # the attributes ride on the first request
            remote.last_sent_hash = mapping.resource_hash(plan.resource)
        if len(steps) > 1:
            removed = set(step.removed)
            present = [member for member in present if member not in removed] + list(step.added)
            remote.remote_members = present
            if index < len(steps) - 1:
                _save_progress(remote)


def _forget(remote: RemoteObject) -> None:
    remote.remote_id, remote.remote_members, remote.last_sent, remote.last_sent_hash = "", [], None, ""


def reconcile_group(run: ConnectorRun, remote: RemoteObject) -> None:
    group = Group.objects.filter(pk=remote.object_id).first()
    assigned = group is not None and Assignment.objects.filter(connector=run.connector, group=group).exists()
    members: dict[str, str] = {}
    others: dict[str, str] = {}
    if assigned and run.plan.allows(ProvisioningOperation.PUSH_GROUPS):  # else no member is sent: none is read
        remote.label = group.name
        members, others = _member_links(run, group, remote)

    def plan() -> GroupPlan:
        return plan_group(
            group, remote, run.plan, assigned=assigned, member_remote_ids=members, removed_remote_ids=others
        )

    current = plan()
    if current.action == Action.CREATE:
        if _create_group(run, remote, group, current, members):
            return
        current = plan()  # linked to the app's group: send what differs from it
    if current.action in (Action.NONE, Action.SKIP):
        finish(remote, current.status, current.note)
        return
    if current.action == Action.DELETE:
        with contextlib.suppress(RemoteNotFoundError):
            run.send(current.request())
        _forget(remote)
        finish(remote, SyncStatus.DEPROVISIONED)
        return
    _send_steps(run, remote, current, current.steps())
    remote.remote_members = list(current.members)
    remote.last_sent = current.resource
    remote.last_sent_hash = mapping.resource_hash(current.resource)
    finish(remote, SyncStatus.SYNCED)
