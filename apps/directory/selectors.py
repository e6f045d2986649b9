"""Reads of the directory."""

from uuid import UUID

from django.db.models import Count, Prefetch, Q, QuerySet
from django.db.models.functions import Lower

from apps.directory.models import Group, Membership, User


def user_get_by_username(username: str) -> User | None:
    """Case-insensitive lookup served by the functional unique index on lower(username)."""
    return User.objects.alias(username_lower=Lower("username")).filter(username_lower=username.lower()).first()


def user_get_by_email(email: str) -> User | None:
    if not email:
        return None
    return User.objects.alias(email_lower=Lower("email")).filter(email_lower=email.lower()).first()


def user_list(
    *,
    username: str | None = None,
    email: str | None = None,
    status: str | None = None,
    group: str | None = None,
    search: str | None = None,
) -> QuerySet[User]:
    users = User.objects.prefetch_related(Prefetch("groups", queryset=Group.objects.only("id", "name")))
    if username:
        users = users.alias(username_lower=Lower("username")).filter(username_lower=username.lower())
    if email:
        users = users.alias(email_lower=Lower("email")).filter(email_lower=email.lower())
    if status:
        users = users.filter(status=status)
    if group:
        users = users.filter(memberships__group__in=Group.objects.filter(group_identity_q(group)))
    if search:
        users = users.filter(
            Q(username__icontains=search)
            | Q(email__icontains=search)
            | Q(first_name__icontains=search)
            | Q(last_name__icontains=search)
            | Q(display_name__icontains=search)
            | Q(employee_id=search)
        )
    return users.order_by("username")


def group_identity_q(value: str) -> Q:
    """A group named by id or by (case-insensitive) name."""
    try:
        return Q(id=UUID(value))
    except ValueError:
        return Q(name__iexact=value)


def group_list(*, name: str | None = None, member: str | None = None, search: str | None = None) -> QuerySet[Group]:
    groups = Group.objects.annotate(member_count=Count("memberships"))
    if name:
        groups = groups.filter(name__iexact=name)
    if member:
        groups = groups.filter(memberships__user_id=member)
    if search:
        groups = groups.filter(Q(name__icontains=search) | Q(description__icontains=search))
    return groups.order_by("name")


def group_member_ids(group: Group) -> list:
    return list(Membership.objects.filter(group=group).values_list("user_id", flat=True))


def group_members(group: Group) -> QuerySet[User]:
    return User.objects.filter(memberships__group=group).order_by("username")


def group_exists(identity: str) -> bool:
    return Group.objects.filter(group_identity_q(identity)).exists()


def user_search_q(search: str) -> Q:
    """Part of the username, email, first or last name, or the whole employee ID."""
    return (
        Q(username__icontains=search)
        | Q(email__icontains=search)
        | Q(first_name__icontains=search)
        | Q(last_name__icontains=search)
        | Q(employee_id=search)
    )


def user_directory_list(
    *, search: str | None = None, status: str | None = None, group_id: str | None = None
) -> QuerySet[User]:
    """The console's user list in username order (the username index serves the order and the paging).

    The group filter is an IN-list over the membership index rather than a join, so the database
    reads the group's members once instead of probing every user.
    """
    users = User.objects.all()
    if status:
        users = users.filter(status=status)
    if group_id:
        users = users.filter(pk__in=Membership.objects.filter(group_id=group_id).values("user_id"))
    if search:
        users = users.filter(user_search_q(search))
    return users.order_by("username")
