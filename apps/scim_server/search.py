"""SCIM search across every resource type at once (POST /.search)."""

from django.http import HttpRequest

from apps.scim_server import filters
from apps.scim_server.adapters import (
    group_resource_schema,
    user_resource_schema,
)
from apps.scim_server.errors import ScimError
from apps.scim_server.group_resources import GROUP_TARGET, groups_for, members_by_group, render_group
from apps.scim_server.models import ScimToken
from apps.scim_server.projection import ListParams, projection
from apps.scim_server.resources import ScimResult, list_response
from apps.scim_server.user_resources import (
    USER_TARGET,
    annotate_groups,
    groups_by_user,
    render_user,
    users_for,
    with_manager,
)

# --- Searching every resource type at once (POST /.search) -------------------------------------


def root_search(token: ScimToken, request: HttpRequest | None, params: ListParams) -> ScimResult:
    """Users then Groups. A filter or attribute that one type does not have matches none of it."""
    kinds = [
        (users_for(token), USER_TARGET, user_resource_schema(), "user"),
        (groups_for(token), GROUP_TARGET, group_resource_schema(), "group"),
    ]
    prepared = []
    errors = []
    for queryset, target, schema, kind in kinds:
        try:
            if params.filter is not None:
                queryset = filters.filter_queryset(queryset, params.filter, target)
            selection = projection(params, schema)
            order = filters.sort_field(params.sort_by, target) if params.sort_by else "pk"
        except ScimError as error:
            errors.append(error)
            continue
        prepared.append((queryset, selection, order, kind))
    if not prepared:
        raise errors[0]
    totals = [queryset.count() for queryset, *_ in prepared]
    resources_out: list[dict] = []
    skip = params.start_index - 1
    remaining = params.count
    for (queryset, selection, order, kind), total in zip(prepared, totals, strict=True):
        if remaining <= 0:
            break
        if skip >= total:
            skip -= total
            continue
        prefix = "-" if params.descending else ""
        ordering = [f"{prefix}{order}"] if order == "pk" else [f"{prefix}{order}", "pk"]
        inline = kind == "user" and selection.wants(None, "groups") and skip == 0
        if inline:
            queryset = annotate_groups(queryset)
        if kind == "user":
            queryset = with_manager(queryset)
        rows = list(queryset.order_by(*ordering)[skip : skip + remaining])
        if kind == "user" and selection.wants(None, "groups") and not inline and rows:
            by_user = groups_by_user(rows)
            for row in rows:
                row.scim_groups_json = [[str(group_id), name] for group_id, name in by_user[row.pk]]
        skip = 0
        remaining -= len(rows)
        if kind == "user":
            resources_out += [render_user(row, request, selection)[1] for row in rows]
        else:
            members = members_by_group(rows) if rows else {}
            resources_out += [render_group(row, request, selection, members[row.pk])[1] for row in rows]
    return ScimResult(200, list_response(resources_out, sum(totals), params.start_index))
