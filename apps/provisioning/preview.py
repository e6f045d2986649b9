"""Dry-run preview: what a full sync of a connector would send, one page of objects at a time.

Every object goes through the engine's own planner (apps.provisioning.planner) with the
connector's settings, so the preview lists exactly the requests a sync then sends, and the
changes its switches hold back, with the reason. Objects are examined in the sync's order, users
then groups, a page at a time: a page costs the same number of queries whatever the directory's
size. Group members are named by directory id (a member created by the same sync has no remote id
yet). Page 1 also carries what concerns the whole connector: whether the sync is blocked, whether
the circuit breaker would hold its deprovisionings, and the users the app has that a full sync
deprovisions (read from the app, GET only, when the connector deprovisions unmanaged users).
"""

import math
from dataclasses import dataclass, field
from typing import Any

from apps.connectors import selectors as connector_selectors
from apps.connectors.models import Assignment, Connector
from apps.connectors.selectors import users_in_scope, users_in_scope_q
from apps.directory.models import Group, Membership, User
from apps.provisioning import mapping
from apps.provisioning.breaker import deprovision_threshold, full_sync_deprovision_count
from apps.provisioning.client import ScimError
from apps.provisioning.models import ObjectType, RemoteObject
from apps.provisioning.planner import (
    Action,
    GroupPlan,
    PlanSettings,
    Request,
    UserPlan,
    plan_group,
    plan_user,
    unmanaged_deprovision,
    user_is_linked,
)
from apps.provisioning.ratelimit import wait_for_slot
from apps.provisioning.run import connector_client, plan_settings
from apps.provisioning.selectors import manager_app_ids
from apps.provisioning.unmanaged import unmanaged_remote_users

PAGE_SIZE = 200
MAX_PAGE_SIZE = 500
# Users the app has that a sync deprovisions, listed on page 1; the count is always complete.
UNMANAGED_SHOWN = 200
# The remote id of a user the same sync creates, before the app has given it one.
NEW_REMOTE_ID = "(created by this sync)"


@dataclass
class PreviewPage:
    number: int
    size: int
    objects: int  # users and groups a sync examines, on every page
    exact: bool = True  # False: `objects` is an estimate (a scope too large to count at once)

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.objects / self.size))

    @property
    def first(self) -> int:
        return min((self.number - 1) * self.size + 1, self.objects)

    @property
    def last(self) -> int:
        return min(self.number * self.size, self.objects)

    # The shape of a Django Page, for the console's pagination links.
    @property
    def paginator(self) -> "PreviewPage":
        return self

    @property
    def num_pages(self) -> int:
        return self.pages

    def has_previous(self) -> bool:
        return self.number > 1

    def has_next(self) -> bool:
        return self.number < self.pages

    def previous_page_number(self) -> int:
        return self.number - 1

    def next_page_number(self) -> int:
        return self.number + 1

    def as_dict(self) -> dict[str, int | bool]:
        return {
            "number": self.number, "size": self.size, "objects": self.objects, "pages": self.pages, "exact": self.exact
        }  # fmt: skip


@dataclass
class SyncPreview:
    page: PreviewPage
    creates: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    deactivations: list[dict[str, Any]] = field(default_factory=list)
    deletions: list[dict[str, Any]] = field(default_factory=list)
    group_creates: list[dict[str, Any]] = field(default_factory=list)
    group_deletes: list[dict[str, Any]] = field(default_factory=list)
    membership_changes: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    unmanaged: list[dict[str, Any]] = field(default_factory=list)
    # Page 1 only: why a sync would send nothing now; the breaker's hold; the unmanaged users in all.
    blocked: str = ""
    held: dict[str, Any] | None = None
    unmanaged_count: int = 0

    CHANGES = (
        "creates", "updates", "deactivations", "deletions", "group_creates", "group_deletes",
        "membership_changes", "skipped", "errors", "unmanaged",
    )  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {name: getattr(self, name) for name in self.CHANGES}
        body["summary"] = {name: len(value) for name, value in body.items()}
        body["page"] = self.page.as_dict()
        body.update(blocked=self.blocked, held=self.held, unmanaged_count=self.unmanaged_count)
        return body

    @property
    def sends_nothing(self) -> bool:
        return not any(getattr(self, name) for name in self.CHANGES if name not in ("skipped", "errors"))


def _request(request: Request | None) -> dict[str, Any] | None:
    if request is None:
        return None
    return {"method": request.method, "path": request.path, "body": request.body}


@dataclass
class _UserFacts:
    """A user as the sync finds it: the directory row (None once deleted), its link, its plan."""

    key: str
    user: User | None
    link: RemoteObject | None
    in_scope: bool
    plan: UserPlan | None  # None: the mappings cannot build it (error)
    error: str = ""

    def remote_id_after(self, settings: PlanSettings) -> str:
        """The link's remote id once the sync has handled the user (before any group is sent)."""
        if self.in_scope and self.user is not None:
            if self.plan is not None and self.plan.action == Action.CREATE:
                return NEW_REMOTE_ID
            return self.link.remote_id if user_is_linked(self.link, settings) else ""
        return self.link.remote_id if self.link is not None else ""


def _user_facts(connector: Connector, settings: PlanSettings, ids: set[str]) -> dict[str, _UserFacts]:
    """Rows and plans of these users: four queries whatever their number."""
    if not ids:
        return {}
    rows = User.objects.select_related("manager") if settings.reads_manager else User.objects
    users = {str(pk): user for pk, user in rows.in_bulk(list(ids)).items()}
    managers_in_app = manager_app_ids(connector, users.values()) if settings.sends_manager_app_id else {}
    in_scope = {str(pk) for pk in users_in_scope(connector).filter(pk__in=ids).values_list("pk", flat=True)}
    links = {
        str(link.object_id): link
        for link in RemoteObject.objects.filter(connector=connector, object_type=ObjectType.USER, object_id__in=ids)
    }
    group_names: dict[str, list[str]] = {}
    for user_id, name in Membership.objects.filter(user_id__in=in_scope).values_list("user_id", "group__name"):
        group_names.setdefault(str(user_id), []).append(name)
    facts = {}
    for key in ids:
        user, link = users.get(key), links.get(key)
        fact = _UserFacts(key, user, link, key in in_scope, None)
        try:
            fact.plan = plan_user(
                user, link, settings, in_scope=fact.in_scope, group_names=group_names.get(key, ()),
                manager_app_id=managers_in_app.get(key, ""),
            )  # fmt: skip
        except mapping.MappingFailure as exc:
            fact.error = str(exc)
        facts[key] = fact
    return facts


def _window(ids_query: Any, offset: int, limit: int) -> list[str]:
    if limit <= 0:
        return []
    return [str(object_id) for object_id in ids_query[offset : offset + limit]]


def _user_ids_union(connector: Connector) -> Any:
    """Every user a sync examines (in scope, or linked in the app), in id order."""
    # Each side of a UNION without its model's default ordering: SQLite allows none inside one.
    return (
        User.objects.filter(users_in_scope_q(connector))
        .order_by()
        .values_list("pk", flat=True)
        .union(
            RemoteObject.objects.filter(connector=connector, object_type=ObjectType.USER)
            .order_by()
            .values_list("object_id", flat=True)
        )
        .order_by("pk")
    )


def _large_scope_users(connector: Connector, paths: int, offset: int, size: int) -> tuple[list[str], int, bool]:
    """The page's user ids, the user count and whether it is exact, for a scope too large to count.

    The union of a million ids would be hashed and sorted whole for every page; instead the first
    `offset + size` ids of each side are read in id order (the users in scope by walking the primary
    key with the per-user EXISTS pair, which stops once it has enough) and merged. The count stays
    the scope's estimate until a page reaches the end, where it is exact.
    """
    end = offset + size
    in_scope = users_in_scope(connector).order_by("pk").values_list("pk", flat=True)[:end]
    linked = RemoteObject.objects.filter(connector=connector, object_type=ObjectType.USER)
    first_linked = linked.order_by("object_id").values_list("object_id", flat=True)[:end]
    merged = sorted({str(pk) for pk in in_scope} | {str(pk) for pk in first_linked})[:end]
    if len(merged) < end:
        return merged[offset:], len(merged), True
    return merged[offset:], max(paths, linked.count(), end + 1), False


def preview_sync(connector: Connector, *, page: int = 1, page_size: int | None = None) -> SyncPreview:
    """What a full sync (`services.connector_sync`) would send now: one page of the objects it examines."""
    settings = plan_settings(connector)
    group_ids = (
        Assignment.objects.filter(connector=connector, group__isnull=False)
        .order_by()
        .values_list("group_id", flat=True)
        .union(
            RemoteObject.objects.filter(connector=connector, object_type=ObjectType.GROUP)
            .order_by()
            .values_list("object_id", flat=True)
        )
        .order_by("group_id")
    )
    size = min(max(int(page_size or PAGE_SIZE), 1), MAX_PAGE_SIZE)
    group_count = group_ids.count()
    # The ways into the scope (an index count) decide whether the union is small enough to count.
    paths = connector_selectors.scope_paths(connector)
    if paths <= connector_selectors.SCOPE_EXACT_COUNT_LIMIT:
        user_ids = _user_ids_union(connector)
        user_count = user_ids.count()
        window = PreviewPage(1, size, user_count + group_count)
        window.number = min(max(int(page), 1), window.pages)
        offset = (window.number - 1) * size
        page_users = _window(user_ids, offset, min(size, user_count - offset))
    else:
        number = max(int(page), 1)
        offset = (number - 1) * size
        page_users, user_count, exact = _large_scope_users(connector, paths, offset, size)
        window = PreviewPage(number, size, user_count + group_count, exact=exact)
    preview = SyncPreview(page=window)
    group_offset = max(offset - user_count, 0)
    page_groups = _window(group_ids, group_offset, size - len(page_users) if offset + size > user_count else 0)

    groups = _GroupsPage(connector, settings, page_groups)
    facts = _user_facts(connector, settings, set(page_users) | groups.user_ids)
    for key in page_users:
        _add_user(preview, facts[key])
    groups.add_to(preview, facts)
    if window.number == 1:
        _whole_connector(preview, connector, settings)
    return preview


def _add_user(preview: SyncPreview, fact: _UserFacts) -> None:
    user, link, plan = fact.user, fact.link, fact.plan
    name = user.username if user is not None else (link.label if link is not None else fact.key)
    if plan is None:
        preview.errors.append({"user": name, "error": fact.error})
        return
    request = _request(plan.request)
    if plan.action == Action.SKIP:
        preview.skipped.append({"object_type": ObjectType.USER, "id": fact.key, "label": name, "reason": plan.note})
    elif plan.action == Action.CREATE:
        resource = plan.request.body
        preview.creates.append(
            {"id": fact.key, "userName": mapping.user_name_of(resource), "resource": resource, "request": request}
        )
    elif plan.request is None:
        return  # nothing differs, or nothing the app is sent (an update that changes no attribute)
    elif plan.action == Action.DELETE:
        preview.deletions.append({"id": fact.key, "userName": name, "reason": _gone(user), "request": request})
    elif plan.action == Action.DEACTIVATE:
        reason = user.status if fact.in_scope else _gone(user)
        preview.deactivations.append({"id": fact.key, "userName": name, "reason": reason, "request": request})
    else:
        before, after = link.last_sent or {}, plan.last_sent
        changed = {attribute: {"from": before.get(attribute), "to": after.get(attribute)} for attribute in plan.changed}
        preview.updates.append({"id": fact.key, "userName": name, "changed": changed, "request": request})


def _gone(user: User | None) -> str:
    return "deleted from the directory" if user is None else "no longer assigned"


class _GroupsPage:
    """The page's groups with their links and members: five queries whatever their number."""

    def __init__(self, connector: Connector, settings: PlanSettings, ids: list[str]) -> None:
        self.settings = settings
        self.ids = ids
        self.groups = {str(pk): group for pk, group in Group.objects.in_bulk(ids).items()} if ids else {}
        self.assigned = (
            {str(pk) for pk in Assignment.objects.filter(connector=connector, group_id__in=ids).values_list(
                "group_id", flat=True
            )}
            if ids
            else set()
        )  # fmt: skip
        self.links = (
            {
                str(link.object_id): link
                for link in RemoteObject.objects.filter(
                    connector=connector, object_type=ObjectType.GROUP, object_id__in=ids
                )
            }
            if ids
            else {}
        )
        self.members: dict[str, set[str]] = {}
        if self.assigned:
            for group_id, user_id in Membership.objects.filter(group_id__in=self.assigned).values_list(
                "group_id", "user_id"
            ):
                self.members.setdefault(str(group_id), set()).add(str(user_id))
        present = {str(member) for link in self.links.values() for member in link.remote_members}
        self.user_ids = present.union(*self.members.values())

    def _plan(self, key: str, facts: dict[str, _UserFacts]) -> GroupPlan:
        link, settings = self.links.get(key), self.settings
        after = {member: facts[member].remote_id_after(settings) for member in self.members.get(key, ())}
        member_remote_ids = {
            member: remote_id
            for member, remote_id in after.items()
            if facts[member].plan is not None and facts[member].plan.provisioned
        }
        present = [str(member) for member in link.remote_members] if link is not None else []
        removed = {member: facts[member].remote_id_after(settings) for member in present if member in facts}
        return plan_group(
            self.groups.get(key),
            link,
            settings,
            assigned=key in self.assigned,
            member_remote_ids=member_remote_ids,
            removed_remote_ids={member: remote_id for member, remote_id in removed.items() if remote_id},
        )

    def add_to(self, preview: SyncPreview, facts: dict[str, _UserFacts]) -> None:
        for key in self.ids:
            group, link = self.groups.get(key), self.links.get(key)
            name = group.name if group is not None else (link.label if link is not None else key)
            try:
                plan = self._plan(key, facts)
            except mapping.MappingFailure as exc:
                preview.errors.append({"group": name, "error": str(exc)})
                continue
            request = {"method": plan.method, "path": plan.path}
            if plan.action == Action.SKIP or (plan.action == Action.NONE and plan.note):
                preview.skipped.append({"object_type": ObjectType.GROUP, "id": key, "label": name, "reason": plan.note})
            elif plan.action == Action.CREATE:
                preview.group_creates.append({
                    "id": key, "displayName": name, "members": len(plan.members), "add": list(plan.members),
                    "request": {**request, "body": plan.resource},
                })  # fmt: skip
            elif plan.action == Action.DELETE:
                preview.group_deletes.append({"id": key, "displayName": name, "request": request})
            elif plan.sends:
                renamed = link.label and link.label != name
                entry = {
                    "id": key, "displayName": name, "add": list(plan.added), "remove": list(plan.removed),
                    "renamed_from": link.label if renamed else "", "operations": list(plan.attribute_operations),
                    "request": request,
                }  # fmt: skip
                if plan.put:
                    entry["members"] = list(plan.members)  # a PUT replaces the whole member list
                preview.membership_changes.append(entry)


def _blocked(connector: Connector) -> str:
    provisioning = connector.provisioning
    if not connector.enabled:
        return "The connector is disabled: a sync sends nothing."
    if not provisioning.enabled:
        return "Identity Management is off for this connector: a sync sends nothing."
    if provisioning.paused:
        return f"Provisioning is paused ({provisioning.paused_reason}): nothing is sent until it is resumed."
    return ""


def _whole_connector(preview: SyncPreview, connector: Connector, settings: PlanSettings) -> None:
    preview.blocked = _blocked(connector)
    losing = full_sync_deprovision_count(connector)
    threshold = deprovision_threshold(connector)
    if losing > threshold:
        preview.held = {
            "deprovisions": losing,
            "threshold": threshold,
            "reason": f"{losing} users would be deprovisioned at once (threshold {threshold}): the sync pauses "
            "the connector and waits for an admin to approve them, sending nothing meanwhile.",
        }
    if settings.deprovision_unmanaged and not preview.blocked:
        _add_unmanaged(preview, connector, settings, threshold)


def _add_unmanaged(preview: SyncPreview, connector: Connector, settings: PlanSettings, threshold: int) -> None:
    """The users the app has that the sync deprovisions: the app's user list is read (GET only)."""
    try:
        client = connector_client(connector, shared=False)
    except ScimError as exc:
        preview.errors.append({"app": connector.name, "error": exc.message})
        return
    rate = connector.provisioning.rate_limit_per_second
    client.before_request = (lambda: wait_for_slot(str(connector.pk), rate)) if rate else None
    try:
        found = unmanaged_remote_users(connector, client, settings)
    except ScimError as exc:
        preview.errors.append({"app": connector.name, "error": f"The app's users could not be listed: {exc.message}"})
        return
    finally:
        client.close()
    preview.unmanaged_count = len(found)
    if len(found) > threshold:
        preview.held = {
            **(preview.held or {}),
            "unmanaged": len(found),
            "threshold": threshold,
            "unmanaged_reason": f"The app has {len(found)} users the directory does not manage (threshold "
            f"{threshold}): the sync pauses the connector and waits for an admin to approve deprovisioning them.",
        }
        return
    for user in found[:UNMANAGED_SHOWN]:
        request = _request(unmanaged_deprovision(user["id"], settings))
        preview.unmanaged.append({"id": user["id"], "userName": user["userName"], "request": request})
