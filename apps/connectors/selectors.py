"""Reads of connectors: who is in scope, through which assignment."""

from collections.abc import Collection
from dataclasses import dataclass, field

from django.core.paginator import Page
from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from apps.connectors.attributes import properties_for
from apps.connectors.models import Assignment, AttributeMapping, Connector, MappingKind
from apps.connectors.properties import custom_properties
from apps.directory.attributes import custom_attribute_definitions
from apps.directory.models import Group, Membership, User, UserStatus
from apps.directory.selectors import SearchPage, group_page, user_directory_list, user_page


def connector_list(
    *, search: str | None = None, kind: str | None = None, enabled: bool | None = None
) -> QuerySet[Connector]:
    connectors = Connector.objects.select_related("sso", "provisioning", "oidc")
    if search:
        connectors = connectors.filter(Q(name__icontains=search) | Q(slug__icontains=search))
    if kind:
        connectors = connectors.filter(kind=kind)
    if enabled is not None:
        connectors = connectors.filter(enabled=enabled)
    return connectors.order_by("name")


def connector_ids_by_name_part(part: str, *, limit: int) -> list:
    return list(Connector.objects.filter(name__icontains=part).order_by("name").values_list("pk", flat=True)[:limit])


def connector_get_by_slug(slug: str) -> Connector | None:
    return Connector.objects.select_related("sso", "provisioning", "oidc").filter(slug=slug).first()


def _assigned_condition(connector: Connector) -> Q:
    return assigned_condition(connector, "pk")


def assigned_condition(connector: Connector, user_field: str) -> Q:
    """Whether the user whose id is the outer query's `user_field` is in the connector's scope: a
    pair of EXISTS tested row by row (index probes), for a query over some other table's rows."""
    direct = Assignment.objects.filter(connector=connector, user=OuterRef(user_field))
    through_group = Membership.objects.filter(
        user=OuterRef(user_field), group__connector_assignments__connector=connector
    )
    return Q(Exists(direct)) | Q(Exists(through_group))


def users_in_scope(connector: Connector) -> QuerySet[User]:
    """Users assigned to the connector directly or through a group, whatever their status."""
    return User.objects.filter(_assigned_condition(connector)).order_by("username")


def user_is_assigned(connector: Connector, user: User) -> bool:
    return User.objects.filter(pk=user.pk).filter(_assigned_condition(connector)).exists()


def connectors_for_user(user: User) -> QuerySet[Connector]:
    """Enabled connectors the user is assigned to, directly or through a group."""
    direct = Assignment.objects.filter(connector=OuterRef("pk"), user=user)
    through_group = Assignment.objects.filter(connector=OuterRef("pk"), group__memberships__user=user)
    return Connector.objects.filter(enabled=True).filter(Q(Exists(direct)) | Q(Exists(through_group))).order_by("name")


@dataclass
class EffectiveAssignment:
    user: User
    direct: bool = False
    groups: list[str] = field(default_factory=list)

    @property
    def via(self) -> list[str]:
        return (["direct"] if self.direct else []) + [f"group:{name}" for name in self.groups]


def effective_assignments(connector: Connector) -> list[EffectiveAssignment]:
    """Every user in scope with the paths that grant access: directly, and through which groups."""
    by_user: dict = {}
    for assignment in Assignment.objects.filter(connector=connector, user__isnull=False).select_related("user"):
        by_user.setdefault(assignment.user_id, EffectiveAssignment(assignment.user)).direct = True
    memberships = Membership.objects.filter(group__connector_assignments__connector=connector).select_related(
        "user", "group"
    )
    for membership in memberships.order_by("group__name"):
        entry = by_user.setdefault(membership.user_id, EffectiveAssignment(membership.user))
        entry.groups.append(membership.group.name)
    return sorted(by_user.values(), key=lambda entry: entry.user.username.lower())


def assignment_list(connector: Connector) -> QuerySet[Assignment]:
    return Assignment.objects.filter(connector=connector).select_related("user", "group")


def mapping_list(connector: Connector, kind: str | None = None) -> QuerySet[AttributeMapping]:
    mappings = AttributeMapping.objects.filter(connector=connector)
    if kind:
        mappings = mappings.filter(kind=kind)
    return mappings.order_by("kind", "position", "id")


# --- Why does this user have access? What would removing a group take away? -------------------


@dataclass
class AccessPath:
    """One connector a user is assigned to, every assignment that grants it, and whether the user
    can use it now: an assignment grants nothing to a suspended or staged account, nor on a
    connector that is switched off."""

    connector: Connector
    user_status: str = UserStatus.ACTIVE
    direct: bool = False
    groups: list[Group] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return self.connector.enabled and self.user_status == UserStatus.ACTIVE

    @property
    def state(self) -> str:
        if self.user_status == UserStatus.SUSPENDED:
            return "No access: the account is suspended"
        if self.user_status == UserStatus.STAGED:
            return "No access yet: the account is staged"
        if not self.connector.enabled:
            return "No access: the connector is not active"
        return "Can sign in"


def user_access_paths(user: User) -> list[AccessPath]:
    """Each connector the user is assigned to (enabled or not), directly and through which groups,
    with whether the user can use it now.

    Two queries whatever the number of connectors and groups.
    """
    paths: dict = {}
    for assignment in Assignment.objects.filter(user=user).select_related("connector"):
        paths.setdefault(assignment.connector_id, AccessPath(assignment.connector, user.status)).direct = True
    through_groups = (
        Assignment.objects.filter(group__memberships__user=user)
        .select_related("connector", "group")
        .order_by("group__name")
    )
    for assignment in through_groups:
        path = paths.setdefault(assignment.connector_id, AccessPath(assignment.connector, user.status))
        path.groups.append(assignment.group)
    return sorted(paths.values(), key=lambda path: path.connector.name.lower())


def group_assignments(group: Group) -> QuerySet[Assignment]:
    """The connectors a group is assigned to, with their provisioning settings."""
    return (
        Assignment.objects.filter(group=group)
        .select_related("connector", "connector__provisioning")
        .order_by("connector__name")
    )


def group_removal_impact(group: Group, connector: Connector) -> QuerySet[User]:
    """Members of `group` who would lose `connector` without it: no direct assignment, no other group."""
    direct = Assignment.objects.filter(connector=connector, user=OuterRef("pk"))
    other_group = Membership.objects.filter(
        user=OuterRef("pk"), group__connector_assignments__connector=connector
    ).exclude(group=group)
    return (
        User.objects.filter(memberships__group=group)
        .exclude(Exists(direct))
        .exclude(Exists(other_group))
        .order_by("username")
    )


def assignable_users_page(
    connector: Connector, *, search: str, number: str | int | None, size: int
) -> Page | SearchPage:
    """A page of the directory's users for the Assignments tab (username order; a search by name,
    email or employee ID narrows it), each with its groups and flagged `assigned` (directly to the
    connector) and `via_group` (through an assigned group). Five queries, whatever the page size."""
    users = user_directory_list(search=search or None)
    page, _ = user_page(users, searching=bool(search), number=number, size=size)
    ids = [user.pk for user in page.object_list]
    direct = set(Assignment.objects.filter(connector=connector, user_id__in=ids).values_list("user_id", flat=True))
    through_group = set(
        Membership.objects.filter(user_id__in=ids, group__connector_assignments__connector=connector).values_list(
            "user_id", flat=True
        )
    )
    for user in page.object_list:
        user.assigned = user.pk in direct
        user.via_group = user.pk in through_group
    return page


def assignable_groups_page(connector: Connector, *, search: str, number: str | int | None, size: int) -> Page:
    """A page of the directory's groups for the Assignments tab (name order), each with
    `member_count` and `assigned`. Four queries, whatever the page size."""
    page = group_page(search=search, number=number, size=size)
    ids = [group.pk for group in page.object_list]
    assigned = set(Assignment.objects.filter(connector=connector, group_id__in=ids).values_list("group_id", flat=True))
    for group in page.object_list:
        group.assigned = group.pk in assigned
    return page


def users_in_scope_q(connector: Connector) -> Q:
    """The condition of `users_in_scope` as one IN-list over the assignments and the assigned groups'
    memberships, to filter a large user list.

    Same users as `users_in_scope`, whose per-row EXISTS pair makes a database test every user of
    the directory (860 ms at 100,000 users on SQLite, bench/console_user_list.py). One IN over a
    UNION ALL, not two IN-lists joined by OR: PostgreSQL turns the single one into a hash semi-join,
    while an OR of two keeps the membership list as a subplan that it runs again for every user
    once the list outgrows work_mem (minutes at a million users, bench/scale_reads.py).
    """
    direct = Assignment.objects.filter(connector=connector, user__isnull=False).order_by().values("user_id")
    through_group = Membership.objects.filter(group_id__in=_assigned_group_ids(connector)).order_by().values("user_id")
    return Q(pk__in=direct.union(through_group, all=True))


def users_in_scope_among(connector: Connector, user_ids: Collection) -> set:
    """Which of these users (ids) the connector reaches: the users' own assignments and memberships.

    Same users as `users_in_scope(connector).filter(pk__in=user_ids)`, whose EXISTS pair PostgreSQL
    may run as hashed subplans that read every membership of the assigned groups (20 ms for a batch
    of 100 at 20,000 users; so may a join of the two). Here the users' own rows, read by user:
    their direct assignments, their memberships, and which of those groups are assigned.
    """
    ids = list(user_ids)
    if not ids:
        return set()
    found = set(Assignment.objects.filter(connector=connector, user_id__any=ids).values_list("user_id", flat=True))
    memberships = list(Membership.objects.filter(user_id__any=ids).values_list("user_id", "group_id"))
    groups = {group_id for _user_id, group_id in memberships}
    assigned = set(
        Assignment.objects.filter(connector=connector, group_id__any=groups).values_list("group_id", flat=True)
    )
    return found | {user_id for user_id, group_id in memberships if group_id in assigned}


def _assigned_group_ids(connector: Connector) -> QuerySet:
    return Assignment.objects.filter(connector=connector, group__isnull=False).order_by().values("group_id")


# Above this many ways in (direct assignments plus the assigned groups' memberships), counting the
# distinct users in scope means hashing every one of them (seconds at a million users): the count
# shown is then an estimate, marked "about".
SCOPE_EXACT_COUNT_LIMIT = 100_000


@dataclass(frozen=True)
class ScopeCount:
    count: int
    exact: bool  # False: an estimate, shown as "about"

    def __str__(self) -> str:
        return str(self.count) if self.exact else f"about {self.count:,}"


def scope_paths(connector: Connector) -> int:
    """Direct assignments plus memberships of assigned groups: an upper bound of the scope, counted in
    the indexes (a user in two assigned groups counts twice)."""
    direct = Assignment.objects.filter(connector=connector, user__isnull=False).count()
    return direct + Membership.objects.filter(group_id__in=_assigned_group_ids(connector)).count()


def users_in_scope_count(connector: Connector) -> ScopeCount:
    """How many users the connector reaches: exact, or above SCOPE_EXACT_COUNT_LIMIT an estimate (the
    ways in), too high by the users reached more than one way."""
    paths = scope_paths(connector)
    if paths <= SCOPE_EXACT_COUNT_LIMIT:
        return ScopeCount(User.objects.filter(users_in_scope_q(connector)).count(), exact=True)
    return ScopeCount(paths, exact=False)


def connector_choices() -> list[tuple]:
    """(slug, name) of every connector, for filters."""
    return list(Connector.objects.order_by("name").values_list("slug", "name"))


def assignment_counts_by_group(group_ids: list) -> dict:
    """How many connectors each of `group_ids` is assigned to (groups without any are absent)."""
    return dict(
        Assignment.objects.filter(group_id__in=group_ids).values_list("group_id").annotate(n=Count("id")).order_by()
    )


def users_filtered(
    *, search: str = "", status: str = "", group: str = "", connector: str = "", where: Q | None = None
) -> QuerySet[User]:
    """The console's user list: `group` is a group id, `connector` a slug (its users in scope, by any
    path), `where` more conditions (the profile filters)."""
    scope = where
    if connector:
        found = connector_get_by_slug(connector)
        in_scope = users_in_scope_q(found) if found else Q(pk__in=[])
        scope = in_scope if scope is None else scope & in_scope
    return user_directory_list(search=search or None, status=status or None, group_id=group or None, where=scope)


def mapping_properties(kind: str) -> dict[str, str]:
    """Name -> label of what a mapping of this kind can read: the fixed properties and, for user
    mappings, the custom attributes defined now (`custom.<name>`)."""
    properties = dict(properties_for(kind))
    if kind != MappingKind.SCIM_GROUP:
        properties.update(custom_properties(custom_attribute_definitions()))
    return properties
