"""What to send the app for one object, decided from the object, its link row and the connector's settings.

The one place that decides: the engine (users.py, groups.py, unmanaged.py) carries a plan out with
its retries, lookups and bookkeeping, and the dry-run preview (preview.py) lists the same plans, so
a preview shows what a sync then sends. Pure functions of plain inputs: the callers load the rows;
nothing here reads the database or talks to the app.
"""

import itertools
from collections import ChainMap
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from apps.connectors.models import Deprovision, MappingKind, ProvisioningOperation, UpdateMethod
from apps.connectors.properties import MANAGER_APP_ID, reads_manager
from apps.directory.models import UserStatus
from apps.provisioning import mapping
from apps.provisioning.models import SyncStatus

USERS, GROUPS = "Users", "Groups"
# What common apps accept in one group request (ProvisioningSettings.group_members_per_request).
DEFAULT_GROUP_MEMBERS_PER_REQUEST = 1000


class Action:
    CREATE = "create"
    UPDATE = "update"
    DEACTIVATE = "deactivate"
    DELETE = "delete"
    NONE = "none"  # nothing to send: the app already holds it, or there is nothing to hold
    SKIP = "skip"  # something differs, but the connector's switches say not to send it


@dataclass(frozen=True)
class PlanSettings:
    """The connector's settings a plan depends on."""

    operations: frozenset[str]
    deprovision: str
    update_method: str
    deprovision_unmanaged: bool = False
    user_mappings: tuple[tuple[str, str], ...] = ()
    group_mappings: tuple[tuple[str, str], ...] = ()
    group_members_per_request: int = DEFAULT_GROUP_MEMBERS_PER_REQUEST

    @classmethod
    def of(cls, provisioning: Any, mappings: Iterable[Any]) -> "PlanSettings":
        """From a ProvisioningSettings row and the connector's mapping rows (any kinds)."""
        rows = list(mappings)
        return cls(
            operations=frozenset(provisioning.operations),
            deprovision=provisioning.deprovision,
            update_method=provisioning.update_method,
            deprovision_unmanaged=provisioning.deprovision_unmanaged,
            user_mappings=tuple(mapping.mapping_pairs(row for row in rows if row.kind == MappingKind.SCIM_USER)),
            group_mappings=tuple(mapping.mapping_pairs(row for row in rows if row.kind == MappingKind.SCIM_GROUP)),
            group_members_per_request=max(1, provisioning.group_members_per_request),
        )

    def allows(self, operation: str) -> bool:
        return operation in self.operations

    @property
    def reads_manager(self) -> bool:
        """Whether a user mapping sends something of the manager's own row (then read with the user)."""
        return reads_manager(source for source, _ in self.user_mappings)

    @property
    def sends_manager_app_id(self) -> bool:
        """Whether a user mapping sends the manager's id in the app (which appears once the manager
        is linked there)."""
        return any(MANAGER_APP_ID in source for source, _ in self.user_mappings)

    @property
    def deletes_users(self) -> bool:
        return self.deprovision == Deprovision.DELETE

    @property
    def puts(self) -> bool:
        return self.update_method == UpdateMethod.PUT


@dataclass(frozen=True)
class Request:
    """One SCIM request: POST /Users, PATCH /Users/{id}, ... The client adds the id to a PUT body."""

    method: str
    resource_type: str
    remote_id: str = ""
    body: dict[str, Any] | None = None

    @property
    def path(self) -> str:
        return f"/{self.resource_type}/{self.remote_id}" if self.remote_id else f"/{self.resource_type}"


@dataclass(frozen=True)
class UserPlan:
    """What to send for one user, and the link's status once done.

    After a request (or an update that needs none), the link records `last_sent` and its hash: what
    the app holds of the attributes the connector maps. A plan of nothing (NONE, SKIP) leaves them.
    """

    action: str
    status: str
    request: Request | None = None
    note: str = ""  # why nothing is sent, shown on the object
    last_sent: dict[str, Any] | None = None
    last_sent_hash: str = ""
    changed: tuple[str, ...] = ()

    @property
    def provisioned(self) -> bool:
        """Whether the user is in the app once this plan is carried out (groups send it as a member)."""
        return self.status == SyncStatus.SYNCED


def member_provisioned(status: str, remote_id: str) -> bool:
    """Whether a user's link makes it a member the app can be sent: synced, with the app's id."""
    return status == SyncStatus.SYNCED and bool(remote_id)


def _skip(note: str) -> UserPlan:
    return UserPlan(Action.SKIP, SyncStatus.SKIPPED, note=note)


def user_is_linked(remote: Any, settings: PlanSettings) -> bool:
    """Linked to an account the app still has: a deleted one (deprovision = delete) is created again."""
    if remote is None or not remote.remote_id:
        return False
    return not (remote.status == SyncStatus.DEPROVISIONED and settings.deletes_users)


def plan_user(
    user: Any,
    remote: Any,
    settings: PlanSettings,
    *,
    in_scope: bool,
    group_names: Iterable[str] = (),
    manager_app_id: str = "",
) -> UserPlan:
    """What to send for a directory user (None once deleted) given its link row (None before any).

    `manager_app_id`: the id the user's manager has in the app (empty while not linked there); load
    users with select_related("manager") when the settings read the manager's row. Raises
    mapping.MappingFailure when the mappings cannot build the user's resource.
    """
    if user is None or not in_scope:
        return _plan_deprovision(remote, settings)
    properties = mapping.user_properties(user, group_names, settings.user_mappings, manager_app_id=manager_app_id)
    resource = mapping.build_user_resource(properties, settings.user_mappings)
    digest = mapping.resource_hash(resource)
    if not user_is_linked(remote, settings):
        if not settings.allows(ProvisioningOperation.CREATE_USERS):
            return _skip("Creating users is turned off for this connector.")
        return UserPlan(
            Action.CREATE, SyncStatus.SYNCED, Request("POST", USERS, body=resource), last_sent=resource,
            last_sent_hash=digest,
        )  # fmt: skip
    if digest == remote.last_sent_hash:
        return UserPlan(Action.NONE, SyncStatus.SYNCED)
    changed = tuple(mapping.changed_attributes(remote.last_sent, resource))
    only_active = changed == ("active",)
    if not (
        settings.allows(ProvisioningOperation.UPDATE_USERS)
        or (only_active and settings.allows(ProvisioningOperation.DEACTIVATE_USERS))
    ):
        return _skip("Updating users is turned off for this connector.")
    if settings.puts:
        request = Request("PUT", USERS, remote.remote_id, resource)
    else:
        operations = mapping.patch_operations(remote.last_sent, resource)
        request = Request("PATCH", USERS, remote.remote_id, mapping.patch_request(operations)) if operations else None
    deactivates = only_active and user.status != UserStatus.ACTIVE
    return UserPlan(
        Action.DEACTIVATE if deactivates else Action.UPDATE, SyncStatus.SYNCED, request, last_sent=resource,
        last_sent_hash=digest, changed=changed,
    )  # fmt: skip


def _deactivation(remote_id: str, settings: PlanSettings, last_sent: dict | None) -> Request:
    if settings.puts and last_sent:
        return Request("PUT", USERS, remote_id, {**last_sent, "active": False})
    return Request(
        "PATCH", USERS, remote_id, mapping.patch_request([{"op": "replace", "path": "active", "value": False}])
    )


def _plan_deprovision(remote: Any, settings: PlanSettings) -> UserPlan:
    """The user left the connector's scope (or the directory): deactivate or delete it in the app."""
    if remote is None or not remote.remote_id:
        return UserPlan(Action.NONE, SyncStatus.SKIPPED)
    if remote.status == SyncStatus.DEPROVISIONED:
        return UserPlan(Action.NONE, SyncStatus.DEPROVISIONED)
    operation = ProvisioningOperation.DELETE_USERS if settings.deletes_users else ProvisioningOperation.DEACTIVATE_USERS
    if not settings.allows(operation):
        return _skip(f"{operation.label} is turned off for this connector.")
    if settings.deletes_users:
        return UserPlan(Action.DELETE, SyncStatus.DEPROVISIONED, Request("DELETE", USERS, remote.remote_id))
    request = _deactivation(remote.remote_id, settings, remote.last_sent)
    if not remote.last_sent:
        return UserPlan(
            Action.DEACTIVATE, SyncStatus.DEPROVISIONED, request, last_sent=remote.last_sent,
            last_sent_hash=remote.last_sent_hash,
        )  # fmt: skip
    inactive = {**remote.last_sent, "active": False}
    return UserPlan(
        Action.DEACTIVATE, SyncStatus.DEPROVISIONED, request, last_sent=inactive,
        last_sent_hash=mapping.resource_hash(inactive),
    )  # fmt: skip


def plan_unmanaged_user(
    resource: Mapping[str, Any], settings: PlanSettings, *, linked_remote_ids: set[str], in_scope_names: set[str]
) -> Request | None:
    """What to send for a user the app has and no directory user of the connector is linked to.

    Nothing unless the connector deprovisions unmanaged users; nothing for a user that an in-scope
    directory user of that userName will be linked to, nor for one already inactive (deactivate mode).
    """
    remote_id = str(resource.get("id", ""))
    if not settings.deprovision_unmanaged or not remote_id or remote_id in linked_remote_ids:
        return None
    if str(resource.get("userName", "")).lower() in in_scope_names:
        return None  # the next pass links it instead of creating a duplicate
    if resource.get("active") is False and not settings.deletes_users:
        return None
    return unmanaged_deprovision(remote_id, settings)


def unmanaged_deprovision(remote_id: str, settings: PlanSettings) -> Request:
    """The request that deprovisions an unmanaged user (one an admin approved in a hold, too)."""
    if settings.deletes_users:
        return Request("DELETE", USERS, remote_id)
    return Request(
        "PATCH", USERS, remote_id, mapping.patch_request([{"op": "replace", "path": "active", "value": False}])
    )


# --- Groups --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupPlan:
    """What to send for one group. Members are directory ids; `request` renders their remote ids."""

    action: str
    status: str
    note: str = ""
    remote_id: str = ""
    resource: dict[str, Any] | None = None  # the group's attributes, without members
    attribute_operations: tuple[dict[str, Any], ...] = ()
    members: tuple[str, ...] = ()  # the members the app holds once sent
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()  # only members the app can be told of (a remote id is known)
    put: bool = False
    member_remote_ids: Mapping[str, str] = field(default_factory=dict)
    chunk: int = DEFAULT_GROUP_MEMBERS_PER_REQUEST  # members per request

    @property
    def sends(self) -> bool:
        return self.action in (Action.CREATE, Action.DELETE) or (
            self.action == Action.UPDATE and bool(self.attribute_operations or self.added or self.removed)
        )

    @property
    def replaces(self) -> bool:
        """A PUT of the whole group: only while its members fit in one request."""
        return self.put and len(self.members) <= self.chunk

    @property
    def method(self) -> str:
        if not self.sends:
            return ""
        return {Action.CREATE: "POST", Action.DELETE: "DELETE"}.get(self.action, "PUT" if self.replaces else "PATCH")

    @property
    def path(self) -> str:
        return Request(self.method, GROUPS, self.remote_id).path

    def request(self) -> Request | None:
        """The first request of `steps()` (the only one unless the members exceed a chunk)."""
        first = next(self.iter_steps(), None)
        return first.request if first else None

    def steps(self) -> list["GroupStep"]:
        """Every request of `iter_steps()`, in a list (a plan of one request, or a preview)."""
        return list(self.iter_steps())

    def step_count(self) -> int:
        """How many requests `iter_steps()` makes, without building them."""
        if not self.sends:
            return 0
        if self.action in (Action.DELETE, Action.CREATE) or self.replaces:
            return 1
        return max(-(-(len(self.added) + len(self.removed)) // self.chunk), 1)

    def iter_steps(self) -> Iterator["GroupStep"]:
        """The requests, in order, each with the members it adds and removes: at most `chunk` members
        per request, so a large group goes out in several PATCHes and a retry resends only the
        steps not yet done. A create carries the first chunk of members; the group's remote id is
        needed for the rest, so they are planned once it is known (as an update).

        Each request is built when it is asked for: the 100 PATCHes of a 100,000-member group, all
        built before the first was sent, held about 30 MiB of member dictionaries in the worker.
        """
        if not self.sends:
            return
        ids = self.member_remote_ids
        if self.action == Action.DELETE:
            yield GroupStep(Request("DELETE", GROUPS, self.remote_id))
            return
        if self.action == Action.CREATE:
            first = self.members[: self.chunk]
            members = [{"value": remote_id} for remote_id in sorted(ids[member] for member in first)]
            yield GroupStep(Request("POST", GROUPS, body={**self.resource, "members": members}), added=first)
            return
        if self.replaces:
            members = [{"value": remote_id} for remote_id in sorted(ids[member] for member in self.members)]
            put = Request("PUT", GROUPS, self.remote_id, {**self.resource, "members": members})
            yield GroupStep(put, added=self.added, removed=self.removed)
            return
        joining = ((member, True) for member in self.added)
        changes = itertools.chain(joining, ((member, False) for member in self.removed))
        attributes = list(self.attribute_operations)
        for _ in range(self.step_count()):
            chunk = list(itertools.islice(changes, self.chunk))
            added = tuple(member for member, adds in chunk if adds)
            removed = tuple(member for member, adds in chunk if not adds)
            operations = [*attributes, *mapping.member_operations([ids[m] for m in added], [ids[m] for m in removed])]
            attributes = []  # attributes ride on the first request only
            patch = Request("PATCH", GROUPS, self.remote_id, mapping.patch_request(operations))
            yield GroupStep(patch, added, removed)


@dataclass(frozen=True)
class GroupStep:
    """One request of a group's plan and the members the app holds more, and fewer, once it succeeds."""

    request: Request
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


def plan_group(
    group: Any,
    remote: Any,
    settings: PlanSettings,
    *,
    assigned: bool,
    member_remote_ids: Mapping[str, str],
    removed_remote_ids: Mapping[str, str] | None = None,
) -> GroupPlan:
    """What to send for a group (None once deleted) given its link row (None before any).

    `member_remote_ids`: the group's members the app has or gets (see `member_provisioned`), by
    directory id, with their remote ids; `removed_remote_ids`: the remote ids of members the app
    holds in the group (the link's `remote_members`) that are no longer among them. Raises
    mapping.MappingFailure when the mappings cannot build the group's resource.
    """
    linked_id = remote.remote_id if remote is not None else ""
    if not settings.allows(ProvisioningOperation.PUSH_GROUPS):
        return GroupPlan(Action.SKIP, SyncStatus.SKIPPED, "Pushing groups is turned off for this connector.")
    if group is None or not assigned:
        if linked_id:
            return GroupPlan(Action.DELETE, SyncStatus.DEPROVISIONED, remote_id=linked_id)
        return GroupPlan(Action.NONE, SyncStatus.SKIPPED)
    resource = mapping.build_group_resource(mapping.group_properties(group), settings.group_mappings, [])
    desired = tuple(sorted(member_remote_ids))
    if not linked_id:
        if not desired:
            return GroupPlan(Action.NONE, SyncStatus.SKIPPED, "Empty groups are not created in the app.")
        return GroupPlan(
            Action.CREATE, SyncStatus.SYNCED, resource=resource, members=desired,
            member_remote_ids=member_remote_ids, chunk=settings.group_members_per_request,
        )  # fmt: skip
    operations = (
        mapping.patch_operations(remote.last_sent, resource)
        if remote.last_sent_hash != mapping.resource_hash(resource)
        else []
    )
    present = set(remote.remote_members)
    removed_remote_ids = removed_remote_ids or {}
    # Membership is tested against the mappings themselves, and their remote ids read through
    # both: a copy or a set of 100,000 members is 4-5 MiB of a worker's heap each.
    return GroupPlan(
        Action.UPDATE,
        SyncStatus.SYNCED,
        remote_id=linked_id,
        resource=resource,
        attribute_operations=tuple(op for op in operations if op["path"] != "members"),
        members=desired,
        added=tuple(member for member in desired if member not in present),
        removed=tuple(sorted(m for m in present if m not in member_remote_ids and m in removed_remote_ids)),
        put=settings.puts,
        member_remote_ids=ChainMap(member_remote_ids, removed_remote_ids),
        chunk=settings.group_members_per_request,
    )
