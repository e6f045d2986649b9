"""Reads of connectors: who is in scope, through which assignment."""

from dataclasses import dataclass, field

from django.db.models import Exists, OuterRef, Q, QuerySet

from apps.connectors.models import Assignment, AttributeMapping, Connector
from apps.directory.models import Group, Membership, User


def connector_list(
    *, search: str | None = None, kind: str | None = None, enabled: bool | None = None
) -> QuerySet[Connector]:
    connectors = Connector.objects.select_related("sso", "provisioning")
    if search:
        connectors = connectors.filter(Q(name__icontains=search) | Q(slug__icontains=search))
    if kind:
        connectors = connectors.filter(kind=kind)
    if enabled is not None:
        connectors = connectors.filter(enabled=enabled)
    return connectors.order_by("name")


def connector_get_by_slug(slug: str) -> Connector | None:
    return Connector.objects.select_related("sso", "provisioning").filter(slug=slug).first()


def _assigned_condition(connector: Connector) -> Q:
    direct = Assignment.objects.filter(connector=connector, user=OuterRef("pk"))
    through_group = Membership.objects.filter(user=OuterRef("pk"), group__connector_assignments__connector=connector)
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


def assignable_search(connector: Connector, query: str, *, limit: int = 10) -> tuple[list, list]:
    """Users and groups matching `query`, each flagged `assigned` when already assigned directly."""
    query = (query or "").strip()
    if not query:
        return [], []
    assigned_users = set(
        Assignment.objects.filter(connector=connector, user__isnull=False).values_list("user_id", flat=True)
    )
    assigned_groups = set(
        Assignment.objects.filter(connector=connector, group__isnull=False).values_list("group_id", flat=True)
    )
    users = list(
        User.objects.filter(
            Q(username__icontains=query)
            | Q(email__icontains=query)
            | Q(first_name__icontains=query)
            | Q(last_name__icontains=query)
        ).order_by("username")[:limit]
    )
    groups = list(Group.objects.filter(name__icontains=query).order_by("name")[:limit])
    for user in users:
        user.assigned = user.pk in assigned_users
    for group in groups:
        group.assigned = group.pk in assigned_groups
    return users, groups
