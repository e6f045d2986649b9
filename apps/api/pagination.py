from django.core.paginator import EmptyPage, PageNotAnInteger, Paginator
from django.utils.functional import cached_property
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response

from apps.common.paging import COUNT_CAP, CountedPaginator, capped_count


class StandardPagination(PageNumberPagination):
    # A whole counted table (the directory's users or groups, unfiltered) is not COUNTed per page.
    django_paginator_class = CountedPaginator
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class _CappedCountPaginator(Paginator):
    """Counts at most COUNT_CAP + 1 rows; past that, pages go on as long as rows do (by OFFSET)."""

    @cached_property
    def counted(self) -> int | None:
        return capped_count(self.object_list)

    @cached_property
    def count(self) -> int:
        return COUNT_CAP + 1 if self.counted is None else self.counted

    def validate_number(self, number):
        if self.counted is not None:
            return super().validate_number(number)
        try:
            number = int(number)
        except (TypeError, ValueError):
            raise PageNotAnInteger("That page number is not an integer") from None
        if number < 1:
            raise EmptyPage("That page number is less than 1")
        return number

    def page(self, number):
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        rows = list(self.object_list[bottom : bottom + self.per_page + 1])
        page = self._get_page(rows[: self.per_page], number, self)
        page.more = len(rows) > self.per_page
        return page


class CappedCountPagination(StandardPagination):
    """For tables too large to count at every request (the audit log): `count` is exact up to
    10,000 matches and null beyond (`count_exact` says which); `next` is there while rows are."""

    django_paginator_class = _CappedCountPaginator

    def get_paginated_response(self, data):
        counted = self.page.paginator.counted
        return Response(
            {
                "count": counted,
                "count_exact": counted is not None,
                "next": self.get_next_link() if self.page.more else None,
                "previous": self.get_previous_link(),
                "results": data,
            }
        )

    def get_paginated_response_schema(self, schema):
        response = super().get_paginated_response_schema(schema)
        response["properties"]["count"]["nullable"] = True
        response["properties"]["count_exact"] = {"type": "boolean"}
        return response
