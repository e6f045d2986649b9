"""SCIM operations on Users."""

import json
from collections.abc import Callable
from functools import cache
from typing import Any
from uuid import UUID

from django.db import connection, transaction
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.functions import Upper
from django.http import HttpRequest
from django_scim.utils import get_user_adapter

from apps.common.db import hot_path_cursor, model_columns, model_from_row
from apps.directory import selectors as directory_selectors
from apps.directory import services
from apps.directory.attributes import MULTI_VALUED_FIELDS
from apps.directory.models import Membership, User, UserStatus
from apps.scim_server import filters, profile_filters
from apps.scim_server.adapters import user_apply, user_create_from, user_resource_schema
from apps.scim_server.errors import not_found
from apps.scim_server.filter_syntax import AttrPath
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
from apps.scim_server.schemas import (
    CUSTOM_USER_SCHEMA,
    ENTERPRISE_SCHEMA,
    USER_SCHEMA,
    custom_definitions,
    password_writable,
)
from apps.scim_server.user_documents import UserFields, read_user_document

# --- Users -------------------------------------------------------------------------------------


_ENT = ENTERPRISE_SCHEMA.lower()
_CUSTOM = CUSTOM_USER_SCHEMA.lower()
# The company email is a value of `emails` of its own: type work, primary; the others are a JSON
# list, found by `eq` as the directory stores them (the domain in lower case, the local part as
# written) through its GIN index, and by the other operators case-insensitively, by a scan.
_company_email_text = filters.text_ci("email")


def _company_email(op: str, value: Any, context: filters.FilterContext) -> filters.Q:
    """`eq` also says the email is set: the case-insensitive unique index is partial (`email <> ''`)
    and serves only a query that implies it."""
    q = _company_email_text(op, value, context)
    return q & ~filters.Q(email="") if op == "eq" and value else q


_company_email_type = filters.constant_when_present(~filters.Q(email=""), "work")
_company_email_primary = filters.constant_when_present(~filters.Q(email=""), True)
_other_emails = profile_filters.json_list("emails", "value", indexed=True)
_phone_numbers = profile_filters.json_list("phone_numbers", "value", indexed=True)
_COMPANY_EMAIL = filters.FilterTarget(
    translators={
        ("emails", "value"): _company_email,
        ("emails", "type"): _company_email_type,
        ("emails", "primary"): _company_email_primary,
    },
    known_uris=(USER_SCHEMA,),
    core_uri=USER_SCHEMA,
    sortable={},
)


def _company_email_value_path(node: filters.Node, context: filters.FilterContext) -> filters.Q:
    return filters.to_q(node, _COMPANY_EMAIL, context, AttrPath(None, "emails"))


def _custom_translator(key: tuple[str, str | None]) -> filters.Translator | None:
    """`urn:...:<org>:2.0:User:<name>`: the definitions are read when a filter names one."""
    attr, sub = key
    if sub is not None or not attr.startswith(f"{_CUSTOM}:"):
        return None
    name = attr[len(_CUSTOM) + 1 :]
    definition = next((item for item in custom_definitions() if item.name.lower() == name), None)
    return profile_filters.custom_attribute(definition) if definition else None


USER_TARGET = filters.FilterTarget(
    translators={
        ("id", None): filters.uuid_field("id"),
        ("externalid", None): filters.text_exact("external_id"),
        ("username", None): filters.text_ci("username"),
        ("displayname", None): filters.text_ci("display_name"),
        ("nickname", None): filters.text_ci("nick_name"),
        ("title", None): filters.text_ci("title", Upper),  # UPPER(title) is indexed
        ("usertype", None): filters.text_ci("user_type"),
        ("preferredlanguage", None): filters.text_ci("preferred_language"),
        ("locale", None): filters.text_ci("locale"),
        ("timezone", None): filters.text_ci("timezone"),
        ("profileurl", None): filters.text_exact("profile_url"),
        ("name", "givenname"): filters.text_ci("first_name"),
        ("name", "familyname"): filters.text_ci("last_name"),
        ("name", "formatted"): filters.text_ci("display_name"),
        ("active", None): filters.boolean_q(filters.Q(status=UserStatus.ACTIVE)),
        ("emails", None): profile_filters.either(_company_email, _other_emails),
        ("emails", "value"): profile_filters.either(_company_email, _other_emails),
        ("emails", "type"): profile_filters.either(_company_email_type, profile_filters.json_list("emails", "type")),
        ("emails", "primary"): _company_email_primary,
        ("phonenumbers", None): _phone_numbers,
        ("phonenumbers", "value"): _phone_numbers,
        ("phonenumbers", "type"): profile_filters.json_list("phone_numbers", "type"),
        ("photos", None): profile_filters.json_list("photos", "value"),
        ("photos", "value"): profile_filters.json_list("photos", "value"),
        **{
            ("addresses", scim.lower()): profile_filters.json_list("addresses", key)
            for key, scim in MULTI_VALUED_FIELDS["addresses"]
            if key != "primary"
        },
        ("groups", None): filters.in_subquery("pk", lambda pk: _memberships_of_group(pk)),
        ("groups", "value"): filters.in_subquery("pk", lambda pk: _memberships_of_group(pk)),
        ("meta", "created"): filters.datetime_field("created"),
        ("meta", "lastmodified"): filters.datetime_field("updated"),
        (f"{_ENT}:employeenumber", None): filters.text_ci("employee_id"),
        (f"{_ENT}:costcenter", None): filters.text_ci("cost_center"),
        (f"{_ENT}:organization", None): filters.text_ci("organization"),
        (f"{_ENT}:division", None): filters.text_ci("division"),
        (f"{_ENT}:department", None): filters.text_ci("department", Upper),  # UPPER(department) is indexed
        (f"{_ENT}:manager", None): filters.uuid_field("manager_id"),
        (f"{_ENT}:manager", "value"): filters.uuid_field("manager_id"),
        (f"{_ENT}:manager", "displayname"): filters.text_ci("manager__display_name"),
    },
    known_uris=(USER_SCHEMA, ENTERPRISE_SCHEMA, CUSTOM_USER_SCHEMA),
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
        ("title", None): "title",
        ("usertype", None): "user_type",
        ("meta", "created"): "created",
        ("meta", "lastmodified"): "updated",
        (f"{_ENT}:employeenumber", None): "employee_id",
        (f"{_ENT}:department", None): "department",
        (f"{_ENT}:costcenter", None): "cost_center",
        (f"{_ENT}:organization", None): "organization",
        (f"{_ENT}:division", None): "division",
    },
    fallback=_custom_translator,
    value_paths={
        "emails": profile_filters.emails_value_path(_company_email_value_path, MULTI_VALUED_FIELDS["emails"]),
        "phonenumbers": profile_filters.json_value_path("phone_numbers", MULTI_VALUED_FIELDS["phone_numbers"]),
        "photos": profile_filters.json_value_path("photos", MULTI_VALUED_FIELDS["photos"]),
        "addresses": profile_filters.json_value_path("addresses", MULTI_VALUED_FIELDS["addresses"]),
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
    return (
        f"SELECT {columns}, {groups}, {_MANAGER_DISPLAY_NAME_SQL} "  # noqa: S608 - no input in it
        f'FROM "directory_user" WHERE "directory_user"."id" = %s{lock}'
    )


# The manager's display name as ScimUserAdapter shows it (display name, else full name, else
# username), read with the user so that rendering its manager costs no query of its own.
_MANAGER_DISPLAY_NAME_SQL = (
    "(SELECT COALESCE(NULLIF(m.display_name, ''), NULLIF(TRIM(m.first_name || ' ' || m.last_name), ''), m.username) "
    "FROM directory_user m WHERE m.id = directory_user.manager_id)"
)


def _get_locked_user(user_id: UUID) -> User | None:
    """The user a write is about, locked for it, with its groups and its manager's display name: a
    prepared statement, because the ORM's compile of the same query was a fifth of a PATCH's CPU
    (bench/scim_server.py)."""
    with hot_path_cursor() as cursor:
        cursor.execute(_locked_user_sql(connection.vendor), [User._meta.pk.get_db_prep_value(user_id, connection)])
        row = cursor.fetchone()
    if row is None:
        return None
    user = model_from_row(User, row[:-2])
    user.scim_groups_json = row[-2]
    if user.manager_id:
        user.scim_manager_display_name = (user.manager_id, row[-1])
    return user


def _get_user(token: ScimToken, user_id: str, *, with_groups: bool = True, for_update: bool = False) -> User:
    if for_update and with_groups and not token.scope_group_id and connection.vendor in _GROUPS_SQL:
        user = _get_locked_user(uuid_or_404(user_id))
        if user is None:
            raise not_found(f"User {str(user_id)[:60]} not found.")
        return user
    users = users_for(token)
    if with_groups:
        users = annotate_groups(users)
    users = users.select_for_update() if for_update else users.select_related("manager")
    # Unordered and sliced (first() would sort by pk): one row at most.
    user = next(iter(users.filter(pk=uuid_or_404(user_id)).order_by()[:1]), None)
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


def annotate_groups(users: QuerySet) -> QuerySet:
    sql = _groups_sql()
    return users.annotate(scim_groups_json=RawSQL(sql, ())) if sql else users  # noqa: S611 - no input in it


def _annotated_groups(user: User) -> list[tuple[UUID, str]] | None:
    raw = getattr(user, "scim_groups_json", None)
    if raw is None:
        return None  # not annotated: the adapter loads them
    rows = json.loads(raw) if isinstance(raw, str) else raw
    return [(UUID(str(group_id)), name) for group_id, name in rows]


def render_user(user: User, request: HttpRequest | None, selection: Projection, groups=None) -> tuple:
    if groups is None:
        groups = _annotated_groups(user)
    adapter = get_user_adapter()(user, request=request, groups=groups)
    with_groups = selection.wants(None, "groups")
    document = adapter.to_dict(with_groups=with_groups, request_only=selection.request_only)
    return adapter, project(document, selection)


def definitions_if_named(body: Any) -> list | None:
    """The custom attribute definitions when a request names the custom extension; None (not
    read) otherwise: the directory checks custom values itself, so a request that leaves them alone
    costs no query for them."""
    if CUSTOM_USER_SCHEMA.lower() in json.dumps(body).lower():
        return custom_definitions()
    return None


def user_projection(params: ListParams) -> Projection:
    """The attributes a request asks for; the schema (and its custom part) is read only then."""
    if not params.attributes and not params.excluded:
        return NO_SELECTION
    return projection(params, user_resource_schema())


def user_list(token: ScimToken, request: HttpRequest | None, params: ListParams) -> ScimResult:
    selection = user_projection(params)
    with_groups = selection.wants(None, "groups")
    # From the first row, the groups come in the page's own query. Past an OFFSET they would be
    # computed for every skipped row too, so a later page fetches them in one query of their own.
    inline = with_groups and params.start_index == 1
    total, users = page_of(
        users_for(token),
        params,
        USER_TARGET,
        with_groups_and_manager if inline else with_manager,
        unfiltered_seek=None if token.scope_group_id else directory_selectors.user_seek,
    )
    groups = groups_by_user(users) if with_groups and not inline and users else {}
    resources = [render_user(user, request, selection, groups.get(user.pk))[1] for user in users]
    return ScimResult(200, list_response(resources, total, params.start_index))


def with_manager(queryset: QuerySet) -> QuerySet:
    """Users with their manager in the same query (manager.displayName is rendered)."""
    return queryset.select_related("manager")


def with_groups_and_manager(queryset: QuerySet) -> QuerySet:
    return annotate_groups(queryset).select_related("manager")


def groups_by_user(users: list[User]) -> dict[UUID, list[tuple[UUID, str]]]:
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
    selection = user_projection(params) if params else NO_SELECTION
    adapter, document = render_user(user, request, selection)
    return resource_result(adapter, document)


def user_create(token: ScimToken, request: HttpRequest | None, body: Any) -> ScimResult:
    require_write(token)
    fields = read_user_document(body, mode="create", definitions=definitions_if_named(body))
    user = run_write(
        token,
        "create",
        None,
        lambda: user_create_from(fields, actor=actor_for(token), scope_group=token.scope_group),
    )
    groups = None if token.scope_group_id else []  # a new user is in no group unless the token's
    adapter, document = render_user(user, request, NO_SELECTION, groups)
    return resource_result(adapter, document, 201)


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
    return resource_result(*render_user(user, request, NO_SELECTION, groups))


def user_replace(
    token: ScimToken, request: HttpRequest | None, user_id: str, body: Any, if_match: str | None = None
) -> ScimResult:
    return _user_write(
        token,
        request,
        user_id,
        if_match,
        "replace",
        lambda current: read_user_document(
            body, mode="replace", definitions=definitions_if_named(body), current=current
        ),
    )


def user_patch(
    token: ScimToken, request: HttpRequest | None, user_id: str, body: Any, if_match: str | None = None
) -> ScimResult:
    def read_fields(current: dict) -> UserFields:
        definitions = definitions_if_named(body)
        schema = user_resource_schema(definitions or [])
        changed = apply_patch(current, body, schema, writable_password=password_writable())
        return read_user_document(changed, mode="patch", definitions=definitions, current=current)

    return _user_write(token, request, user_id, if_match, "patch", read_fields)


def user_delete(token: ScimToken, request: HttpRequest | None, user_id: str, if_match: str | None = None) -> ScimResult:
    require_write(token)
    user = _get_user(token, user_id, with_groups=False)
    check_if_match(if_match, get_user_adapter()(user, request=request).version)
    run_write(token, "delete", user, lambda: services.user_delete(actor=actor_for(token), user=user))
    return ScimResult(204)
