"""Reconciling one group with the app: carry out its plan (apps.provisioning.planner).

Create it with its provisioned members (or adopt the group of that name the app already has), send
the difference of attributes and members, or delete it once it is no longer assigned. Members go
out in requests of at most the connector's `group_members_per_request`; the link records the
members each request settled as soon as it succeeds, so a failed request (or a killed worker)
resends only what the app has not acknowledged.
"""

import contextlib
import json
import time

from django.db import connection
from django.db.models.expressions import RawSQL

from apps.connectors.models import Assignment, ProvisioningOperation
from apps.directory.models import Group, Membership
from apps.provisioning import mapping
from apps.provisioning.client import ConflictError, RemoteNotFoundError
from apps.provisioning.models import ObjectType, RemoteObject, SyncStatus
from apps.provisioning.outcomes import finish, write_deliveries
from apps.provisioning.planner import Action, GroupPlan, GroupStep, member_provisioned, plan_group
from apps.provisioning.run import ConnectorRun


class GroupPushIncomplete(Exception):
    """The task's time is up between two requests of a large group: the rest is sent by the next pass."""


def _member_links(run: ConnectorRun, group: Group, remote: RemoteObject) -> tuple[dict[str, str], dict[str, str]]:
    """Remote ids, by directory id, of the members the app can be sent, and of the other users the
    app holds in the group or might (their links have a remote id): one query for both.

    Read a chunk of rows at a time, with no other set of every member: a 100,000-member group's
    rows, a set of its member ids and its links held together made a worker's heap 90 MiB larger
    than it was, which glibc then kept (bench/README.md, worker memory)."""
    memberships = Membership.objects.filter(group=group)
    # The members' links joined in the database, not named in a statement: an IN list of every
    # member (100,000 in the largest group of a million users) cost the worker 1.4 s and 85 MiB.
    linked = RemoteObject.objects.filter(connector=run.connector, object_type=ObjectType.USER).exclude(remote_id="")
    fields = ("object_id", "remote_id", "status")
    members: dict[str, str] = {}
    others: dict[str, str] = {}
    of_members = linked.filter(object_id__in=memberships.values("user_id")).values_list(*fields)
    for object_id, remote_id, status in of_members.iterator(chunk_size=10_000):
        (members if member_provisioned(status, remote_id) else others)[str(object_id)] = remote_id
    # Users the app holds that are no longer members (or have no remote id any more) are few, and named.
    gone = [object_id for object_id in remote.remote_members if object_id not in members and object_id not in others]
    if gone:
        others.update(
            (str(object_id), remote_id)
            for object_id, remote_id, _ in linked.filter(object_id__in=gone).values_list(*fields)
        )
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
    (step,) = plan.iter_steps()
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


def _save_chunk(remote: RemoteObject, step: GroupStep, *, first: bool) -> None:
    """Record one acknowledged request in the link's row, its members added and removed by the
    database: a statement the size of the chunk, not of the group. Writing the whole list after
    each of a 100,000-member group's 99 PATCHes sent 198 MB of statements and grew the worker's
    RSS by 380 MiB (4 MB and 70 MiB this way). The first request also carried the attributes."""
    fields = {"last_sent": remote.last_sent, "last_sent_hash": remote.last_sent_hash} if first else {}
    RemoteObject.objects.filter(pk=remote.pk).update(remote_members=_members_changed(step), **fields)


# `remote_members` without a request's removed members, then with its added ones (never already
# there: the plan adds only members the app does not hold). On PostgreSQL the removal is a hashed
# anti-join: jsonb's `- text[]` compares every member with every removed one (265 ms a chunk of
# 1,000 from 100,000 members, against 150).
_APPEND_PG = "remote_members || %s::jsonb"
_REMOVE_APPEND_PG = (
    "(SELECT coalesce(jsonb_agg(member), '[]'::jsonb) FROM jsonb_array_elements(remote_members) member"
    " WHERE member #>> '{}' NOT IN (SELECT unnest(%s::text[]))) || %s::jsonb"
)
_REMOVE_APPEND_SQLITE = (
    "(SELECT json_group_array(value) FROM ("
    "SELECT value FROM json_each(remote_members) WHERE value NOT IN (SELECT value FROM json_each(%s))"
    " UNION ALL SELECT value FROM json_each(%s)))"
)


def _members_changed(step: GroupStep) -> RawSQL:
    added, removed = json.dumps(list(step.added)), list(step.removed)
    if connection.vendor != "postgresql":
        return RawSQL(_REMOVE_APPEND_SQLITE, [json.dumps(removed), added])  # noqa: S611 - a constant
    if not removed:
        return RawSQL(_APPEND_PG, [added])  # noqa: S611 - a constant
    return RawSQL(_REMOVE_APPEND_PG, [removed, added])  # noqa: S611 - a constant


def _out_of_time(run: ConnectorRun) -> bool:
    return run.deadline is not None and time.monotonic() > run.deadline


def _send_steps(run: ConnectorRun, remote: RemoteObject, plan: GroupPlan, *, stored: bool) -> None:
    """Send the requests of an update in order, recording each one's members once it succeeded.

    `stored`: whether the link's row holds `remote.remote_members` (not once a create found the
    app's group, or its first members went with the POST: the first record then writes them all).
    """
    try:
        _send_in_order(run, remote, plan, stored=stored)
    except RemoteNotFoundError:
        _forget(remote)
        raise


def _send_in_order(run: ConnectorRun, remote: RemoteObject, plan: GroupPlan, *, stored: bool) -> None:
    count = plan.step_count()
    # The acknowledged members as an ordered set: a request changes it in the time of its chunk.
    acknowledged = dict.fromkeys(remote.remote_members) if count > 1 else None
    try:
        for index, step in enumerate(plan.iter_steps()):
            if index and _out_of_time(run):
                raise GroupPushIncomplete
            run.send(step.request)
            if index == 0:
                remote.last_sent = plan.resource  # the attributes ride on the first request
                remote.last_sent_hash = mapping.resource_hash(plan.resource)
            if acknowledged is None or index == count - 1:
                continue  # the last request is recorded with the group's outcome
            for member in step.removed:
                acknowledged.pop(member, None)
            acknowledged.update(dict.fromkeys(step.added))
            if stored:
                _save_chunk(remote, step, first=index == 0)
            else:
                remote.remote_members = list(acknowledged)
                _save_progress(remote)
                stored = True
            write_deliveries(run)  # the request's log entry, and with it its body, is not held to the end
    except BaseException:
        # The outcome written for a failed or unfinished pass records what the app acknowledged.
        if acknowledged is not None:
            remote.remote_members = list(acknowledged)
        raise


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
    stored = current.action != Action.CREATE
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
    _send_steps(run, remote, current, stored=stored)
    remote.remote_members = list(current.members)
    remote.last_sent = current.resource
    remote.last_sent_hash = mapping.resource_hash(current.resource)
    finish(remote, SyncStatus.SYNCED)
