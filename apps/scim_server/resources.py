"""SCIM operations on Users and Groups, apart from HTTP: views and /Bulk both call these.

Each takes the authenticated token, the parsed body and the headers that matter (If-Match), and
returns a `ScimResult`; every failure is a `ScimError`. Reads cost a constant number of queries per
page (count, page, one query for the page's groups or members) whatever the directory's size.
"""

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL
from django.http import HttpRequest
from django_scim.utils import get_group_adapter, get_user_adapter

from apps.audit.services import SystemActor, audit_record
from apps.common.db import hot_path_cursor, model_columns, model_from_row
from apps.common.errors import ApplicationError, ConflictError, PermissionRefused
from apps.directory import services
from apps.directory.models import Group, Membership, User, UserStatus
from apps.directory.services import LastSuperAdminError
from apps.scim_server import filters
from apps.scim_server.adapters import (
    ScimGroupAdapter,
    ScimUserAdapter,
    UserFields,
    group_apply,
    group_create_from,
    group_resource_schema,
    read_group_document,
    read_user_document,
    user_apply,
    user_create_from,
    user_resource_schema,
)
from apps.scim_server.errors import ScimError, invalid_value, not_found
from apps.scim_server.models import ScimToken
from apps.scim_server.patch import ResourceSchema, apply_patch
from apps.scim_server.schemas import ENTERPRISE_SCHEMA, GROUP_SCHEMA, LIST_RESPONSE, USER_SCHEMA, password_writable


@dataclass
class ScimResult:
    status: int
    body: dict | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ListParams:
    filter: str | None
    start_index: int
    count: int
    sort_by: str | None
    descending: bool
    attributes: tuple[str, ...]
    excluded: tuple[str, ...]


def _integer(raw: Any, name: str) -> int | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        raise invalid_value(f"{name} must be an integer.")
    if isinstance(raw, int):
        return raw
    try:
        return int(str(raw).strip())
    except ValueError:
        raise invalid_value(f"{name} must be an integer.") from None


def _names(raw: Any, name: str) -> tuple[str, ...]:
    if raw in (None, ""):
        return ()
    if isinstance(raw, list):
        items = raw
    elif isinstance(raw, str):
        items = raw.split(",")
    else:
        raise invalid_value(f"{name} must be a comma-separated list of attribute names.")
    if len(items) > 100 or not all(isinstance(item, str) for item in items):
        raise invalid_value(f"{name} must be a list of at most 100 attribute names.")
    return tuple(item.strip() for item in items if item.strip())


def list_params(source: Mapping[str, Any]) -> ListParams:
    """Read list parameters from a query string or a SearchRequest body (names case-insensitive)."""
    values = {str(key).lower(): value for key, value in source.items()}
    start = _integer(values.get("startindex"), "startIndex")
    count = _integer(values.get("count"), "count")
    # Past any real directory's size, and within what every database's OFFSET accepts.
    start = 1 if start is None or start < 1 else min(start, 1_000_000_000)
    if count is None:
        count = settings.SCIM_DEFAULT_PAGE_SIZE
    count = max(0, min(count, settings.SCIM_MAX_PAGE_SIZE))
    order = values.get("sortorder") or "ascending"
    if not isinstance(order, str) or order.lower() not in ("ascending", "descending"):
        raise invalid_value("sortOrder must be ascending or descending.")
    query_filter = values.get("filter")
    if query_filter is not None and not isinstance(query_filter, str):
        raise ScimError(400, "filter must be a string.", "invalidFilter")
    sort_by = values.get("sortby")
    if sort_by is not None and not isinstance(sort_by, str):
        raise invalid_value("sortBy must be an attribute name.")
    return ListParams(
        filter=query_filter if query_filter not in (None, "") else None,
        start_index=start,
        count=count,
        sort_by=sort_by or None,
        descending=order.lower() == "descending",
        attributes=_names(values.get("attributes"), "attributes"),
        excluded=_names(values.get("excludedattributes"), "excludedAttributes"),
    )


# --- Attribute selection (RFC 7644 §3.4.2.5) ---------------------------------------------------


@dataclass(frozen=True)
class Projection:
    attributes: tuple[tuple[str | None, str, str | None], ...]
    excluded: tuple[tuple[str | None, str, str | None], ...]

    def wants(self, uri: str | None, attr: str) -> bool:
        """Whether a top-level attribute ends up in the response (to skip loading it)."""
        if any(item[0] == uri and item[1] == attr and item[2] is None for item in self.excluded):
            return False
        if self.attributes:
            return any(item[0] == uri and item[1] == attr for item in self.attributes)
        return True

    @property
    def request_only(self) -> frozenset[str]:
        return frozenset(f"{attr}.{sub}" for uri, attr, sub in self.attributes if sub and uri is None)


def projection(params: ListParams, schema: ResourceSchema) -> Projection:
    def parse(names: tuple[str, ...]) -> tuple:
        items = []
        for name in names:
            extension = schema.extension_uri(name)
            if extension is not None:
                items.append((extension, "*", None))
                continue
            try:
                path = filters.parse_attr_path(name, schema.known_uris)
            except ScimError:
                raise invalid_value(f"Invalid attribute name {name[:80]!r}.") from None
            uri = None if path.uri in (None, schema.core_uri) else path.uri
            items.append((uri, path.attr, path.sub))
        return tuple(items)

    return Projection(parse(params.attributes), parse(params.excluded))


def _find(container: dict, name: str) -> str | None:
    for key in container:
        if key.lower() == name:
            return key
    return None


def project(document: dict, selection: Projection) -> dict:
    if not selection.attributes and not selection.excluded:
        return document
    if selection.attributes:
        result = {"schemas": document["schemas"], "id": document["id"]}
        for uri, attr, sub in selection.attributes:
            source = document if uri is None else document.get(uri)
            if not isinstance(source, dict):
                continue
            target = result if uri is None else result.setdefault(uri, {})
            if attr == "*":
                target.update(source)
                continue
            key = _find(source, attr)
            if key is None:
                continue
            value = source[key]
            if sub is None:
                target[key] = value
            elif isinstance(value, list):
                picked = [
                    {k: v for k, v in element.items() if k.lower() == sub}
                    for element in value
                    if isinstance(element, dict)
                ]
                existing = target.get(key)
                if isinstance(existing, list) and len(existing) == len(picked):
                    for into, extra in zip(existing, picked, strict=True):
                        into.update(extra)
                else:
                    target[key] = [element for element in picked if element]
            elif isinstance(value, dict):
                sub_key = _find(value, sub)
                if sub_key is not None:
                    target.setdefault(key, {})[sub_key] = value[sub_key]
        for key in list(result):
            if isinstance(result[key], dict | list) and not result[key]:
                del result[key]
        document = result
    for uri, attr, sub in selection.excluded:
        source = document if uri is None else document.get(uri)
        if not isinstance(source, dict):
            continue
        if attr == "*":
            document.pop(uri, None)
            continue
        if uri is None and attr in ("id", "schemas"):
            continue
        key = _find(source, attr)
        if key is None:
            continue
        if sub is None:
            del source[key]
        elif isinstance(source[key], list):
            for element in source[key]:
                if isinstance(element, dict):
                    sub_key = _find(element, sub)
                    if sub_key is not None:
                        del element[sub_key]
        elif isinstance(source[key], dict):
            sub_key = _find(source[key], sub)
            if sub_key is not None:
                del source[key][sub_key]
    return document


# --- Shared helpers ----------------------------------------------------------------------------


def actor_for(token: ScimToken) -> SystemActor:
    return SystemActor(label=token.label, manages_staff=token.manages_staff)


def require_write(token: ScimToken) -> None:
    if not token.can_write:
        raise ScimError(403, "This SCIM token is read-only.")


def _uuid_or_404(value: str) -> UUID:
    try:
        return UUID(str(value))
    except ValueError:
        raise not_found(f"Resource {str(value)[:60]} not found.") from None


def check_if_match(if_match: str | None, version: str) -> None:
    if not if_match:
        return
    wanted = [item.strip() for item in if_match.split(",")]
    if "*" in wanted:
        return
    bare = version.removeprefix("W/")
    if not any(item.removeprefix("W/") == bare for item in wanted):
        raise ScimError(412, "The resource has changed since that version (If-Match).")


_FIELD_TO_ATTRIBUTE = {
    "username": "userName",
    "email": "emails",
    "first_name": "name.givenName",
    "last_name": "name.familyName",
    "display_name": "displayName",
    "employee_id": f"{ENTERPRISE_SCHEMA}:employeeNumber",
    "external_id": "externalId",
    "password": "password",
    "name": "displayName",
    "description": "description",
}


def _validation_error(exc: ValidationError) -> ScimError:
    messages = []
    unique = False
    if hasattr(exc, "error_dict"):
        for name, errors in exc.error_dict.items():
            for error in errors:
                unique = unique or error.code == "unique"
                text = " ".join(error.messages)
                messages.append(f"{_FIELD_TO_ATTRIBUTE.get(name, name)}: {text}")
    else:
        messages = list(exc.messages)
    detail = " ".join(messages)[:1000] or "Invalid value."
    return ScimError(409, detail, "uniqueness") if unique else ScimError(400, detail, "invalidValue")


def run_write(token: ScimToken, operation: str, target: Any, write: Callable[[], Any]) -> Any:
    """Run a write, turning domain errors into SCIM errors; break-glass refusals are audited.

    `target` is the object written, or a callable giving it (when `write` loads it itself).
    """
    try:
        return write()
    except (LastSuperAdminError, PermissionRefused) as exc:
        with transaction.atomic():
            audit_record(
                actor=actor_for(token),
                action="scim.refused",
                target=target() if callable(target) else target,
                after={"operation": operation, "reason": exc.code, "detail": exc.message},
            )
        raise ScimError(403, f"Refused: {exc.message}") from None
    except ConflictError as exc:
        raise ScimError(409, exc.message) from None
    except ValidationError as exc:
        raise _validation_error(exc) from None
    except ApplicationError as exc:
        raise invalid_value(exc.message) from None


def _result(adapter: ScimUserAdapter | ScimGroupAdapter, document: dict, status: int = 200) -> ScimResult:
    return ScimResult(status, document, {"Location": adapter.location, "ETag": adapter.version})


def list_response(resources: list[dict], total: int, start: int) -> dict:
    return {
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "itemsPerPage": len(resources),
        "startIndex": start,
        "Resources": resources,
    }


def _page(
    queryset: QuerySet,
    params: ListParams,
    target: filters.FilterTarget,
    prepare: Callable[[QuerySet], QuerySet] = lambda queryset: queryset,
) -> tuple[int, list]:
    if params.filter is not None:
        queryset = filters.filter_queryset(queryset, params.filter, target)
    if params.count == 0:
        return queryset.count(), []
    order = filters.sort_field(params.sort_by, target) if params.sort_by else "pk"
    prefix = "-" if params.descending else ""
    ordering = [f"{prefix}{order}"] if order == "pk" else [f"{prefix}{order}", "pk"]
    offset = params.start_index - 1
    if offset:
        # Deferred join: the rows an OFFSET skips are walked in the primary-key index only (an
        # index-only scan), and just the page's rows are read in full.
        page_keys = queryset.order_by(*ordering).values("pk")[offset : offset + params.count]
        page = queryset.model._default_manager.filter(pk__in=page_keys)
        rows = list(prepare(page).order_by(*ordering))
    else:
        rows = list(prepare(queryset).order_by(*ordering)[: params.count])
    if rows and len(rows) < params.count:
        # A partial page is the last one: its end is the total, no COUNT needed (a lookup by
        # userName costs one query, not two).
        return offset + len(rows), rows
    return queryset.count(), rows


# --- Users -------------------------------------------------------------------------------------


USER_TARGET = filters.FilterTarget(
    translators={
        ("id", None): filters.uuid_field("id"),
        ("externalid", None): filters.text_exact("external_id"),
        ("username", None): filters.text_ci("username"),
        ("displayname", None): filters.text_ci("display_name"),
        ("name", "givenname"): filters.text_ci("first_name"),
        ("name", "familyname"): filters.text_ci("last_name"),
        ("name", "formatted"): filters.text_ci("display_name"),
        ("active", None): filters.boolean_q(filters.Q(status=UserStatus.ACTIVE)),
        ("emails", None): filters.text_ci("email"),
        ("emails", "value"): filters.text_ci("email"),
        ("emails", "type"): filters.constant_when_present(~filters.Q(email=""), "work"),
        ("emails", "primary"): filters.constant_when_present(~filters.Q(email=""), True),
        ("groups", None): filters.in_subquery("pk", lambda pk: _memberships_of_group(pk)),
        ("groups", "value"): filters.in_subquery("pk", lambda pk: _memberships_of_group(pk)),
        ("meta", "created"): filters.datetime_field("created"),
        ("meta", "lastmodified"): filters.datetime_field("updated"),
        (f"{ENTERPRISE_SCHEMA.lower()}:employeenumber", None): filters.text_ci("employee_id"),
    },
    known_uris=(USER_SCHEMA, ENTERPRISE_SCHEMA),
    core_uri=USER_SCHEMA,
    sortable={
        ("id", None): "pk",
        ("username", None): "username",
        ("externalid", None): "external_id",
        ("displayname", None): "display_name",
        ("name", "givenname"): "first_name",
        ("name", "familyname"): "last_name",
        ("name", "formatted"): "display_name",
        ("emails", None): "email",
        ("emails", "value"): "email",
        ("active", None): "status",
        ("meta", "created"): "created",
        ("meta", "lastmodified"): "updated",
        (f"{ENTERPRISE_SCHEMA.lower()}:employeenumber", None): "employee_id",
    },
)


def _memberships_of_group(group_id: UUID | None) -> QuerySet:
    memberships = Membership.objects.all() if group_id is None else Membership.objects.filter(group_id=group_id)
    return memberships.values("user_id")


def users_for(token: ScimToken) -> QuerySet:
    users = User.objects.all()
    if token.scope_group_id:
        users = users.filter(pk__in=_memberships_of_group(token.scope_group_id))
    return users


@cache
def _locked_user_sql(vendor: str) -> str:
    lock = ' FOR UPDATE OF "directory_user"' if vendor == "postgresql" else ""
    groups = _GROUPS_SQL[vendor]
    columns = model_columns(User, '"directory_user"')
    return f'SELECT {columns}, {groups} FROM "directory_user" WHERE "directory_user"."id" = %s{lock}'  # noqa: S608


def _get_locked_user(user_id: UUID) -> User | None:
    """The user a write is about, locked for it, with its groups: a prepared statement, because
    the ORM's compile of the same query was a fifth of a PATCH's CPU (bench/scim_server.py)."""
    with hot_path_cursor() as cursor:
        cursor.execute(_locked_user_sql(connection.vendor), [User._meta.pk.get_db_prep_value(user_id, connection)])
        row = cursor.fetchone()
    if row is None:
        return None
    user = model_from_row(User, row[:-1])
    user.scim_groups_json = row[-1]
    return user


def _get_user(token: ScimToken, user_id: str, *, with_groups: bool = True, for_update: bool = False) -> User:
    if for_update and with_groups and not token.scope_group_id and connection.vendor in _GROUPS_SQL:
        user = _get_locked_user(_uuid_or_404(user_id))
        if user is None:
            raise not_found(f"User {str(user_id)[:60]} not found.")
        return user
    users = users_for(token)
    if with_groups:
        users = _with_groups(users)
    if for_update:
        users = users.select_for_update()
    # Unordered and sliced (first() would sort by pk): one row at most.
    user = next(iter(users.filter(pk=_uuid_or_404(user_id)).order_by()[:1]), None)
    if user is None:
        raise not_found(f"User {str(user_id)[:60]} not found.")
    return user


_GROUPS_SQL = {
    "postgresql": (
        "(SELECT COALESCE(json_agg(json_build_array(g.id, g.name) ORDER BY g.name), '[]'::json) "
        "FROM directory_membership m JOIN directory_group g ON g.id = m.group_id "
        "WHERE m.user_id = directory_user.id)"
    ),
    "sqlite": (
        "(SELECT json_group_array(json_array(x.id, x.name)) FROM (SELECT g.id, g.name FROM directory_membership m "
        "JOIN directory_group g ON g.id = m.group_id WHERE m.user_id = directory_user.id ORDER BY g.name) x)"
    ),
}


def _groups_sql() -> str | None:
    """A correlated subquery giving each user's groups as a JSON array of [id, name], by name:
    the groups of a page come with the page, in the same query."""
    return _GROUPS_SQL.get(connection.vendor)


def _with_groups(users: QuerySet) -> QuerySet:
    sql = _groups_sql()
    return users.annotate(scim_groups_json=RawSQL(sql, ())) if sql else users  # noqa: S611 - no input in it


def _annotated_groups(user: User) -> list[tuple[UUID, str]] | None:
    raw = getattr(user, "scim_groups_json", None)
    if raw is None:
        return None  # not annotated: the adapter loads them
    rows = json.loads(raw) if isinstance(raw, str) else raw
    return [(UUID(str(group_id)), name) for group_id, name in rows]


def _render_user(user: User, request: HttpRequest | None, selection: Projection, groups=None) -> tuple:
    if groups is None:
        groups = _annotated_groups(user)
    adapter = get_user_adapter()(user, request=request, groups=groups)
    with_groups = selection.wants(None, "groups")
    document = adapter.to_dict(with_groups=with_groups, request_only=selection.request_only)
    return adapter, project(document, selection)


_NO_SELECTION = Projection((), ())


def user_list(token: ScimToken, request: HttpRequest | None, params: ListParams) -> ScimResult:
    selection = projection(params, user_resource_schema())
    with_groups = selection.wants(None, "groups")
    # From the first row, the groups come in the page's own query. Past an OFFSET they would be
    # computed for every skipped row too, so a later page fetches them in one query of their own.
    inline = with_groups and params.start_index == 1
    total, users = _page(users_for(token), params, USER_TARGET, _with_groups if inline else _unchanged)
    groups = _groups_by_user(users) if with_groups and not inline and users else {}
    resources = [_render_user(user, request, selection, groups.get(user.pk))[1] for user in users]
    return ScimResult(200, list_response(resources, total, params.start_index))


def _unchanged(queryset: QuerySet) -> QuerySet:
    return queryset


def _groups_by_user(users: list[User]) -> dict[UUID, list[tuple[UUID, str]]]:
    result: dict[UUID, list[tuple[UUID, str]]] = {user.pk: [] for user in users}
    rows = (
        Membership.objects.filter(user_id__in=list(result))
        .order_by("group__name")
        .values_list("user_id", "group_id", "group__name")
    )
    for user_id, group_id, name in rows:
        result[user_id].append((group_id, name))
    return result


def user_get(
    token: ScimToken, request: HttpRequest | None, user_id: str, params: ListParams | None = None
) -> ScimResult:
    user = _get_user(token, user_id)
    selection = projection(params, user_resource_schema()) if params else _NO_SELECTION
    adapter, document = _render_user(user, request, selection)
    return _result(adapter, document)


def user_create(token: ScimToken, request: HttpRequest | None, body: Any) -> ScimResult:
    require_write(token)
    fields = read_user_document(body, mode="create")
    user = run_write(
        token,
        "create",
        None,
        lambda: user_create_from(fields, actor=actor_for(token), scope_group=token.scope_group),
    )
    groups = None if token.scope_group_id else []  # a new user is in no group unless the token's
    adapter, document = _render_user(user, request, _NO_SELECTION, groups)
    return _result(adapter, document, 201)


def _user_write(
    token: ScimToken,
    request: HttpRequest | None,
    user_id: str,
    if_match: str | None,
    operation: str,
    read_fields: Callable[[dict], UserFields],
) -> ScimResult:
    """PUT and PATCH: one transaction reads the user (with its groups) under a row lock, checks
    If-Match against that very version and writes; the services do not read the user again."""
    require_write(token)
    loaded: list[User] = []

    def write() -> tuple[User, list | None]:
        with transaction.atomic():
            user = _get_user(token, user_id, for_update=True)
            loaded.append(user)
            adapter = get_user_adapter()(user, request=request)
            check_if_match(if_match, adapter.version)
            fields = read_fields(adapter.to_dict(with_groups=False))
            groups = _annotated_groups(user)  # a user's write does not change its groups
            return user_apply(user, fields, actor=actor_for(token), locked=True), groups

    user, groups = run_write(token, operation, lambda: loaded[0] if loaded else None, write)
    return _result(*_render_user(user, request, _NO_SELECTION, groups))


def user_replace(
    token: ScimToken, request: HttpRequest | None, user_id: str, body: Any, if_match: str | None = None
) -> ScimResult:
    return _user_write(
        token,
        request,
        user_id,
        if_match,
        "replace",
        lambda current: read_user_document(body, mode="replace", current=current),
    )


def user_patch(
    token: ScimToken, request: HttpRequest | None, user_id: str, body: Any, if_match: str | None = None
) -> ScimResult:
    def read_fields(current: dict) -> UserFields:
        changed = apply_patch(current, body, user_resource_schema(), writable_password=password_writable())
        return read_user_document(changed, mode="patch", current=current)

    return _user_write(token, request, user_id, if_match, "patch", read_fields)


def user_delete(token: ScimToken, request: HttpRequest | None, user_id: str, if_match: str | None = None) -> ScimResult:
    require_write(token)
    user = _get_user(token, user_id, with_groups=False)
    check_if_match(if_match, get_user_adapter()(user, request=request).version)
    run_write(token, "delete", user, lambda: services.user_delete(actor=actor_for(token), user=user))
    return ScimResult(204)


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
    group = groups_for(token).filter(pk=_uuid_or_404(group_id)).first()
    if group is None:
        raise not_found(f"Group {str(group_id)[:60]} not found.")
    return group


def _members_by_group(groups: list[Group]) -> dict[UUID, list[tuple[UUID, str]]]:
    result: dict[UUID, list[tuple[UUID, str]]] = {group.pk: [] for group in groups}
    rows = (
        Membership.objects.filter(group_id__in=list(result))
        .order_by("group_id", "user_id")
        .values_list("group_id", "user_id", "user__username")
    )
    for group_id, user_id, username in rows:
        result[group_id].append((user_id, username))
    return result


def _render_group(group: Group, request: HttpRequest | None, selection: Projection, members=None) -> tuple:
    adapter = get_group_adapter()(group, request=request, members=members)
    document = adapter.to_dict(with_members=selection.wants(None, "members"), request_only=selection.request_only)
    return adapter, project(document, selection)


def group_list(token: ScimToken, request: HttpRequest | None, params: ListParams) -> ScimResult:
    selection = projection(params, group_resource_schema())
    total, groups = _page(groups_for(token), params, GROUP_TARGET)
    members = _members_by_group(groups) if groups else {}
    resources = [_render_group(group, request, selection, members[group.pk])[1] for group in groups]
    return ScimResult(200, list_response(resources, total, params.start_index))


def group_get(
    token: ScimToken, request: HttpRequest | None, group_id: str, params: ListParams | None = None
) -> ScimResult:
    group = _get_group(token, group_id)
    selection = projection(params, group_resource_schema()) if params else _NO_SELECTION
    adapter, document = _render_group(group, request, selection)
    return _result(adapter, document)


def group_create(token: ScimToken, request: HttpRequest | None, body: Any) -> ScimResult:
    require_group_write(token)
    fields = read_group_document(body, mode="create")
    group = run_write(
        token,
        "create",
        None,
        lambda: group_create_from(fields, actor=actor_for(token), users_queryset=users_for(token)),
    )
    adapter, document = _render_group(group, request, _NO_SELECTION)  # the members come from the database
    return _result(adapter, document, 201)


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
    return _result(*_render_group(group, request, _NO_SELECTION))


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
            queryset = _with_groups(queryset)
        rows = list(queryset.order_by(*ordering)[skip : skip + remaining])
        if kind == "user" and selection.wants(None, "groups") and not inline and rows:
            by_user = _groups_by_user(rows)
            for row in rows:
                row.scim_groups_json = [[str(group_id), name] for group_id, name in by_user[row.pk]]
        skip = 0
        remaining -= len(rows)
        if kind == "user":
            resources_out += [_render_user(row, request, selection)[1] for row in rows]
        else:
            members = _members_by_group(rows) if rows else {}
            resources_out += [_render_group(row, request, selection, members[row.pk])[1] for row in rows]
    return ScimResult(200, list_response(resources_out, sum(totals), params.start_index))
