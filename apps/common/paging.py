"""Pages of a large table without counting all of it.

Django's Paginator counts every matching row before it shows one page: at ten million audit
events a COUNT(*) takes seconds, longer than the page. A capped page reads its rows plus one (to
know whether there is a next page) and counts at most `cap + 1` matches, so its cost is bounded
whatever the table's size; past the cap it says "more than" instead of a total, and still serves
any page number (by OFFSET).
"""

from dataclasses import dataclass

from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.utils.functional import cached_property

from apps.common import rowcounts

COUNT_CAP = 10_000


def known_count(queryset: QuerySet) -> int | None:
    """The exact number of rows of a query that selects a whole table kept counted by the database
    (apps.common.rowcounts: the directory's users and groups), without a COUNT(*); None for any
    other query (a filter, a scope, a join that could repeat rows, a slice)."""
    query = queryset.query
    if query.where or query.combinator or query.distinct or query.is_sliced or query.extra or query.group_by:
        return None
    if any("__" in str(ordering) for ordering in (*query.order_by, *query.extra_order_by)):
        return None  # an order through a relation joins it when compiled, and could repeat rows
    base = queryset.model._meta.db_table
    for alias, join in query.alias_map.items():
        if alias == query.base_table:
            continue
        field = getattr(join, "join_field", None)
        if not (getattr(field, "many_to_one", False) or getattr(field, "one_to_one", False)):
            return None  # a join to many rows would repeat ours
    return rowcounts.table_total(base)


class CountedPaginator(Paginator):
    """Django's Paginator, but a whole counted table (known_count) is not COUNTed: one million users
    took longer to count than the page took to read."""

    @cached_property
    def count(self) -> int:
        known = known_count(self.object_list) if isinstance(self.object_list, QuerySet) else None
        return super().count if known is None else known


@dataclass(frozen=True)
class CappedPaginator:
    count: int | None  # None: more than `cap` matches
    num_pages: int | None
    cap: int

    @property
    def exact(self) -> bool:
        return self.count is not None


@dataclass(frozen=True)
class CappedPage:
    """The shape of a Django Page that `console/_pagination.html` reads ("Page N" when not counted)."""

    object_list: list
    number: int
    paginator: object  # a CappedPaginator, or any object with `count` and `num_pages`
    more: bool

    def has_next(self) -> bool:
        return self.more

    def has_previous(self) -> bool:
        return self.number > 1

    def next_page_number(self) -> int:
        return self.number + 1

    def previous_page_number(self) -> int:
        return self.number - 1


def page_number(value: object) -> int:
    try:
        return max(1, int(str(value or 1)))
    except ValueError:
        return 1


def capped_count(queryset: QuerySet, cap: int | None = None) -> int | None:
    """The number of rows, or None when there are more than `cap` (COUNT_CAP unless given; counts at most cap + 1)."""
    cap = COUNT_CAP if cap is None else cap
    counted = queryset.order_by().values("pk")[: cap + 1].count()
    return counted if counted <= cap else None


def capped_page(queryset: QuerySet, number: object, size: int, cap: int | None = None) -> CappedPage:
    """One page of an ordered `queryset`; a number past the end gives the last page, like Paginator.get_page."""
    cap = COUNT_CAP if cap is None else cap
    number = page_number(number)
    rows = list(queryset[(number - 1) * size : number * size + 1])
    # Everything on the first page: no COUNT at all.
    count = len(rows) if number == 1 and len(rows) <= size else capped_count(queryset, cap)
    if not rows and number > 1 and count is not None:
        number = max(1, -(-count // size))
        rows = list(queryset[(number - 1) * size : number * size + 1])
    paginator = CappedPaginator(count, None if count is None else max(1, -(-count // size)), cap)
    return CappedPage(rows[:size], number, paginator, more=len(rows) > size)
