"""SCIM operations on Groups."""

from typing import Any
from uuid import UUID

from django.db.models import QuerySet
from django.http import HttpRequest
from django_scim.utils import get_group_adapter

from apps.directory import selectors as directory_selectors
from apps.directory import services
from apps.directory.models import Group, Membership
from apps.scim_server import filters
from apps.scim_server.adapters import (
    group_apply,
    group_create_from,
    group_resource_schema,
    read_group_document,
)
from apps.scim_server.errors import ScimError, not_found
from apps.scim_server.models import ScimToken
from apps.scim_server.patch import apply_patch
from apps.scim_server.projection import NO_SELECTION, ListParams, Projection, project, projection
from apps.scim_server.resources import (
    ScimResult,
    actor_for,
    check_if_match,
    list_response,
    page_of,
    require_write,
    resource_result,
    run_write,
    uuid_or_404,
)
from apps.scim_server.schemas import GROUP_SCHEMA
from apps.scim_server.user_resources import users_for

# --- Groups ------------------------------------------------------------------------------------


GROUP_TARGET = filters.FilterTarget(
    translators={
        ("id", None): filters.uuid_field("id"),
        ("externalid", None): filters.text_exact("external_id"),
        ("displayname", None): filters.text_ci("name"),
        ("members", None): filters.in_subquery("pk", lambda pk: _memberships_of_user(pk)),
        ("members", "value"): filters.in_subquery("pk", lambda pk: _memberships_of_user(pk)),
        ("meta", "created"): filters.datetime_field("created"),
        ("meta", "lastmodified"): filters.datetime_field("updated"),
    },
    known_uris=(GROUP_SCHEMA,),
    core_uri=GROUP_SCHEMA,
    sortable={
        ("id", None): "pk",
        ("displayname", None): "name",
        ("externalid", None): "external_id",
        ("meta", "created"): "created",
        ("meta", "lastmodified"): "updated",
    },
)


def _memberships_of_user(user_id: UUID | None) -> QuerySet:
    memberships = Membership.objects.all() if user_id is None else Membership.objects.filter(user_id=user_id)
    return memberships.values("group_id")


def groups_for(token: ScimToken) -> QuerySet:
    groups = Group.objects.all()
    if token.scope_group_id:
        groups = groups.filter(pk=token.scope_group_id)
    return groups


def require_group_write(token: ScimToken) -> None:
    require_write(token)
    if token.scope_group_id:
        raise ScimError(403, "This SCIM token is limited to one group's users and cannot change groups.")


def _get_group(token: ScimToken, group_id: str) -> Group:
    group = groups_for(token).filter(pk=uuid_or_404(group_id)).first()
    if group is None:
        raise not_found(f"Group {str(group_id)[:60]} not found.")
    return group


def members_by_group(groups: list[Group]) -> dict[UUID, list[tuple[UUID, str]]]:
    result: dict[UUID, list[tuple[UUID, str]]] = {group.pk: [] for group in groups}
    rows = (
        Membership.objects.filter(group_id__in=list(result))
        .order_by("group_id", "user_id")
        .values_list("group_id", "user_id", "user__username")
    )
    for group_id, user_id, username in rows:
        result[group_id].append((user_id, username))
    return result


def render_group(group: Group, request: HttpRequest | None, selection: Projection, members=None) -> tuple:
    adapter = get_group_adapter()(group, request=request, members=members)
    document = adapter.to_dict(with_members=selection.wants(None, "members"), request_only=selection.request_only)
    return adapter, project(document, selection)


def group_list(token: ScimToken, request: HttpRequest | None, params: ListParams) -> ScimResult:
    selection = projection(params, group_resource_schema())
    total, groups = page_of(
        groups_for(token),
        params,
        GROUP_TARGET,
        unfiltered_seek=None if token.scope_group_id else directory_selectors.group_seek,
    )
    members = members_by_group(groups) if groups else {}
    resources = [render_group(group, request, selection, members[group.pk])[1] for group in groups]
    return ScimResult(200, list_response(resources, total, params.start_index))


def group_get(
    token: ScimToken, request: HttpRequest | None, group_id: str, params: ListParams | None = None
) -> ScimResult:
    group = _get_group(token, group_id)
    selection = projection(params, group_resource_schema()) if params else NO_SELECTION
    adapter, document = render_group(group, request, selection)
    return resource_result(adapter, document)


def group_create(token: ScimToken, request: HttpRequest | None, body: Any) -> ScimResult:
    require_group_write(token)
    fields = read_group_document(body, mode="create")
    group = run_write(
        token,
        "create",
        None,
        lambda: group_create_from(fields, actor=actor_for(token), users_queryset=users_for(token)),
    )
    adapter, document = render_group(group, request, NO_SELECTION)  # the members come from the database
    return resource_result(adapter, document, 201)


def _group_write(token: ScimToken, request, group_id: str, body: Any, if_match: str | None, *, patch: bool):
    require_group_write(token)
    group = _get_group(token, group_id)
    adapter = get_group_adapter()(group, request=request)
    check_if_match(if_match, adapter.version)
    current = adapter.to_dict()
    if patch:
        document = apply_patch(current, body, group_resource_schema(), writable_password=False)
        fields = read_group_document(document, mode="patch", current=current)
    else:
        fields = read_group_document(body, mode="replace", current=current)
    group = run_write(
        token,
        "patch" if patch else "replace",
        group,
        lambda: group_apply(
            group, fields, actor=actor_for(token), users_queryset=users_for(token), current_members=adapter.members()
        ),
    )
    # group_apply returns the group as written; its members are read again, after the commit.
    return resource_result(*render_group(group, request, NO_SELECTION))


def group_replace(
    token: ScimToken, request: HttpRequest | None, group_id: str, body: Any, if_match: str | None = None
) -> ScimResult:
    return _group_write(token, request, group_id, body, if_match, patch=False)


def group_patch(
    token: ScimToken, request: HttpRequest | None, group_id: str, body: Any, if_match: str | None = None
) -> ScimResult:
    return _group_write(token, request, group_id, body, if_match, patch=True)


def group_delete(
    token: ScimToken, request: HttpRequest | None, group_id: str, if_match: str | None = None
) -> ScimResult:
    require_group_write(token)
    group = _get_group(token, group_id)
    check_if_match(if_match, get_group_adapter()(group, request=request).version)
    run_write(token, "delete", group, lambda: services.group_delete(actor=actor_for(token), group=group))
    return ScimResult(204)
