"""Reads of the directory."""

import contextlib
from dataclasses import dataclass
from uuid import UUID

from django.core.exceptions import ValidationError
from django.core.paginator import Page, Paginator
from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet, Value, prefetch_related_objects
from django.db.models.functions import Concat, Lower

from apps.common import rowcounts
from apps.common.paging import CappedPage, CountedPaginator
from apps.directory.apps import GROUPS_COUNTER, USERS_COUNTER
from apps.directory.models import Group, GroupImportJob, GroupRule, Membership, User
from apps.directory.profile_selectors import profile_filter_q


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
    attributes: dict[str, str] | None = None,
) -> QuerySet[User]:
    """`attributes`: equality filters by attribute key (`department`, `title`, `manager`,
    `custom.<name>`...; see profile_selectors.profile_filter_q, which raises UnknownFilter)."""
    users = User.objects.prefetch_related(Prefetch("groups", queryset=Group.objects.only("id", "name")))
    for key, value in (attributes or {}).items():
        users = users.filter(profile_filter_q(key, value))
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
        # The same order through an expression no index serves: ordered by the column itself, a
        # page of a search that finds a few users walked the whole username index looking for 50
        # matches (630 ms at a million users, bench/scale_reads.py) instead of reading the few
        # matches from the trigram indexes and sorting them.
        return users.order_by(Concat("username", Value("")))
    return users.order_by("username")


def user_ids_by_username_part(part: str, *, limit: int) -> list:
    """Ids of up to `limit` users whose username contains `part` (any case; a trigram index on PostgreSQL)."""
    return list(User.objects.filter(username__icontains=part).order_by("username").values_list("pk", flat=True)[:limit])


def group_ids_by_name_part(part: str, *, limit: int) -> list:
    return list(Group.objects.filter(name__icontains=part).order_by("name").values_list("pk", flat=True)[:limit])


def group_identity_q(value: str) -> Q:
    """A group named by id or by (case-insensitive) name."""
    try:
        return Q(id=UUID(value))
    except ValueError:
        return Q(name__iexact=value)


def group_list(*, name: str | None = None, member: str | None = None, search: str | None = None) -> QuerySet[Group]:
    groups = Group.objects.annotate(
        member_count=Count("memberships"), rule_based=Exists(GroupRule.objects.filter(pk=OuterRef("pk")))
    )
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
    *, search: str | None = None, status: str | None = None, group_id: str | None = None, where: Q | None = None
) -> QuerySet[User]:
    """The console's user list in username order (the username index serves the order and the paging).

    The group filter is an IN-list over the membership index rather than a join, so the database
    reads the group's members once instead of probing every user. `where` narrows further (the
    users in a connector's scope, from apps.connectors.selectors.users_in_scope_q).
    """
    users = User.objects.all()
    if status:
        users = users.filter(status=status)
    if group_id:
        users = users.filter(pk__in=Membership.objects.filter(group_id=group_id).values("user_id"))
    if search:
        users = users.filter(user_search_q(search))
    if where is not None:
        users = users.filter(where)
    return users.order_by("username")


def user_get_or_none(pk: object) -> User | None:
    """The user of a posted id; None when there is none or the id is not a UUID."""
    try:
        return User.objects.filter(pk=pk).first()
    except ValidationError:
        return None


# --- Pages of users for the console ----------------------------------------------------------------

# A search is a scan (substring of four columns): it reads matching ids in username order only as
# far as the page asked for (plus one, to know there is a next page), never counting every match,
# and pages at most this deep.
SEARCH_RESULT_CAP = 1000


@dataclass(frozen=True)
class SearchPaginator:
    count: int | None  # None: not counted (more matches than were read)
    num_pages: int | None


# A search page has the shape of a capped page (apps.common.paging): "Page N" when not counted.
SearchPage = CappedPage


def _search_page(users: QuerySet[User], number: str | int | None, size: int) -> tuple[SearchPage, bool]:
    last_page = max(1, -(-SEARCH_RESULT_CAP // size))
    try:
        number = min(max(int(number or 1), 1), last_page)
    except ValueError:
        number = 1
    end = min(number * size, SEARCH_RESULT_CAP)
    ids = list(users.values_list("pk", flat=True)[: end + 1])
    counted = len(ids) <= end  # the scan ended before the page did: this is every match
    if counted and number > 1 and len(ids) <= (number - 1) * size:
        number = max(1, -(-len(ids) // size))  # past the end, like Paginator.get_page
    rows = ids[(number - 1) * size : end]
    by_id = User.objects.in_bulk(rows) if rows else {}
    paginator = SearchPaginator(
        count=len(ids) if counted else None, num_pages=max(1, -(-len(ids) // size)) if counted else None
    )
    capped = not counted and end >= SEARCH_RESULT_CAP
    page = SearchPage([by_id[pk] for pk in rows if pk in by_id], number, paginator, more=not counted and not capped)
    return page, capped


def user_page(
    users: QuerySet[User], *, searching: bool, number: str | int | None, size: int
) -> tuple[Page | SearchPage, bool]:
    """One page of `users` with their groups, in a fixed number of queries; and whether a search hit the cap."""
    capped = False
    if searching:
        page, capped = _search_page(users, number, size)
    else:
        page = CountedPaginator(users, size).get_page(number)
        page.object_list = list(page.object_list)
    prefetch_related_objects(
        page.object_list, Prefetch("groups", queryset=Group.objects.only("id", "name").order_by("name"))
    )
    return page, capped


# --- Groups for the console ------------------------------------------------------------------------


def group_choices(*, limit: int | None = None, include: str | None = None) -> list[tuple]:
    """(id, name) of every group, or of the first `limit` by name, for filters and pickers; `include`
    (a group id, the one already chosen) is added when the limit left it out."""
    groups = Group.objects.order_by("name").values_list("id", "name")
    choices = list(groups[:limit] if limit else groups)
    if include and limit and len(choices) == limit and all(str(pk) != include for pk, _ in choices):
        with contextlib.suppress(ValueError):  # not an id: the form refuses it
            choices += list(groups.filter(pk=UUID(include)))
    return choices


def group_page(*, search: str, number: str | int | None, size: int) -> Page:
    """A page of groups (name order) with `member_count`, counted for that page's groups only."""
    groups = Group.objects.order_by("name")
    if search:
        groups = groups.filter(Q(name__icontains=search) | Q(description__icontains=search))
    groups = groups.annotate(rule_based=Exists(GroupRule.objects.filter(pk=OuterRef("pk"))))
    page = Paginator(groups.only("id", "name", "description"), size).get_page(number)
    ids = [group.pk for group in page.object_list]
    members = dict(
        Membership.objects.filter(group_id__in=ids).values_list("group_id").annotate(n=Count("id")).order_by()
    )
    for group in page.object_list:
        group.member_count = members.get(group.pk, 0)
    return page


def group_import_latest(group: Group) -> GroupImportJob | None:
    return GroupImportJob.objects.filter(group=group).first()


def user_total() -> int:
    """The exact number of users, from a counter the database keeps (no COUNT of the table)."""
    return rowcounts.row_count(USERS_COUNTER)


def group_total() -> int:
    """The exact number of groups, from a counter the database keeps (no COUNT of the table)."""
    return rowcounts.row_count(GROUPS_COUNTER)


def user_seek(position: int) -> tuple[UUID | None, int] | None:
    """Where the user at `position` in primary-key order is (apps.common.rowcounts.seek): the lowest
    id of its range (None: the first range) and how many users of the range come before it."""
    return _seek(USERS_COUNTER, User, position)


def group_seek(position: int) -> tuple[UUID | None, int] | None:
    return _seek(GROUPS_COUNTER, Group, position)


def _seek(counter: str, model: type, position: int) -> tuple[UUID | None, int] | None:
    found = rowcounts.seek(counter, position)
    if found is None:
        return None
    bound, skip = found
    return (None if bound is None else model._meta.pk.to_python(bound)), skip
