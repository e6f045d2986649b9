"""django-scim2 adapters over the directory: render a User or Group as SCIM, read a SCIM document
back into directory fields (Users: apps.scim_server.user_documents), and write the difference
through apps.directory.services.

They translate; services act (validation, audit trail, connectors). Member values and ids are the
directory's UUIDs (SCIM ids), never database integers.
"""

import functools
import hashlib
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse
from django_scim.adapters import SCIMMixin

from apps.audit.services import SystemActor
from apps.directory import services
from apps.directory.attributes import MULTI_VALUED_FIELDS
from apps.directory.models import CustomAttribute, Group, Membership, User, UserStatus
from apps.scim_server.errors import invalid_path, invalid_value
from apps.scim_server.patch import ResourceSchema, _get
from apps.scim_server.schemas import (
    COMMON_ATTRIBUTES,
    CUSTOM_USER_SCHEMA,
    ENTERPRISE_SCHEMA,
    GROUP_SCHEMA,
    USER_SCHEMA,
    attribute_defs,
    base_location,
    custom_attribute_defs,
    custom_definitions,
)
from apps.scim_server.user_documents import (
    UserFields,
    check_read_only,
    check_schemas,
    profile_documents,
    string_value,
)

MAX_MEMBERS_PER_REQUEST = 10_000

# Which request-only sub-attributes (returned: "request") a response includes.
RequestOnly = frozenset[str]


def user_resource_schema(definitions: list[CustomAttribute] | None = None) -> ResourceSchema:
    """The User schema with its extensions; the custom one from `definitions` (read when not given)."""
    if definitions is None:
        definitions = custom_definitions()
    extensions = {ENTERPRISE_SCHEMA: attribute_defs(ENTERPRISE_SCHEMA)}
    if definitions:
        extensions[CUSTOM_USER_SCHEMA] = custom_attribute_defs(definitions)
    return ResourceSchema(USER_SCHEMA, attribute_defs(USER_SCHEMA), extensions)


def group_resource_schema() -> ResourceSchema:
    return ResourceSchema(GROUP_SCHEMA, attribute_defs(GROUP_SCHEMA), {})


def _iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def weak_etag(*parts: Any) -> str:
    digest = hashlib.sha256("|".join(str(part) for part in parts).encode()).hexdigest()[:20]
    return f'W/"{digest}"'


@functools.cache
def _collection_path(name: str) -> str:
    """`/scim/v2/Users/`: resolved once, not with a reverse() per member of a large group."""
    return reverse(name).rstrip("/") + "/"


class _Adapter(SCIMMixin):
    id_field = "id"
    resource_schema_uri = ""

    def __init__(self, obj: Any, request: HttpRequest | None = None) -> None:
        super().__init__(obj, request=request)

    @property
    def location(self) -> str:
        return base_location(self._request) + self.path

    @property
    def path(self) -> str:
        return f"{_collection_path(self.collection_url_name)}{self.id}"


# --- Users -------------------------------------------------------------------------------------


def _display_name(user: User) -> str:
    return user.display_name or user.full_name or user.username


class ScimUserAdapter(_Adapter):
    """USER_ADAPTER: a directory User as a SCIM User with the enterprise extension."""

    url_name = "scim_server:user"
    collection_url_name = "scim_server:users"
    resource_type = "User"

    def __init__(
        self, obj: User, request: HttpRequest | None = None, groups: list[tuple[UUID, str]] | None = None
    ) -> None:
        super().__init__(obj, request=request)
        # Given by list views (one query for a page); loaded on demand otherwise.
        self._groups = groups

    @property
    def version(self) -> str:
        return weak_etag(self.obj.pk, self.obj.updated.isoformat())

    @property
    def display_name(self) -> str:
        return _display_name(self.obj)

    @property
    def users_path(self) -> str:
        return base_location(self._request) + _collection_path("scim_server:users")

    def groups(self) -> list[tuple[UUID, str]]:
        """(group id, name) of the user's groups."""
        if self._groups is None:
            self._groups = list(
                Membership.objects.filter(user=self.obj).order_by("group__name").values_list("group_id", "group__name")
            )
        return self._groups

    def to_dict(self, *, with_groups: bool = True, request_only: RequestOnly = frozenset()) -> dict:
        user = self.obj
        document: dict[str, Any] = {
            "schemas": [USER_SCHEMA],
            "id": str(user.pk),
            "userName": user.username,
        }
        if user.external_id:
            document["externalId"] = user.external_id
        name = {}
        if user.display_name:
            name["formatted"] = user.display_name
        if user.last_name:
            name["familyName"] = user.last_name
        if user.first_name:
            name["givenName"] = user.first_name
        if name:
            document["name"] = name
        document["displayName"] = self.display_name
        document["active"] = user.status == UserStatus.ACTIVE
        core, enterprise, custom = profile_documents(user, self.users_path, _display_name)
        document.update(core)
        if with_groups:
            groups = self.groups()
            if groups:
                base = base_location(self._request)
                document["groups"] = [
                    {
                        "value": str(group_id),
                        "$ref": f"{base}{_collection_path('scim_server:groups')}{group_id}",
                        "display": name,
                        "type": "direct",
                    }
                    for group_id, name in groups
                ]
        if enterprise:
            document["schemas"].append(ENTERPRISE_SCHEMA)
            document[ENTERPRISE_SCHEMA] = enterprise
        if custom:
            document["schemas"].append(CUSTOM_USER_SCHEMA)
            document[CUSTOM_USER_SCHEMA] = custom
        document["meta"] = {
            "resourceType": self.resource_type,
            "created": _iso(user.created),
            "lastModified": _iso(user.updated),
            "location": self.location,
            "version": self.version,
        }
        return document


def user_create_from(fields: UserFields, *, actor: SystemActor, scope_group: Group | None) -> User:
    profile = dict(fields.profile)
    if not profile["display_name"] and not (profile["first_name"] or profile["last_name"]):
        profile["display_name"] = profile["username"]

    def create() -> User:
        return services.user_create(
            actor=actor,
            status=UserStatus.ACTIVE if fields.active in (None, True) else UserStatus.SUSPENDED,
            password=fields.password,
            validate_password=False,
            **profile,
        )

    if scope_group is None:
        return create()  # the service is its own transaction
    with transaction.atomic():
        user = create()
        services.group_add_members(actor=actor, group=scope_group, users=[user])
    return user


def _current(user: User, name: str) -> Any:
    return user.manager_id if name == "manager" else getattr(user, name)


def _comparable_items(name: str, items: Any) -> Any:
    """A multi-valued field as the directory stores it (each known key, "" or False when unset),
    so that a document rendered from the user and read back compares equal to it."""
    if not isinstance(items, list):
        return items
    keys = [key for key, _ in MULTI_VALUED_FIELDS[name]]
    return [
        {key: bool(item.get("primary")) if key == "primary" else item.get(key) or "" for key in keys}
        if isinstance(item, dict)
        else item
        for item in items
    ]


def _differs(user: User, name: str, value: Any) -> bool:
    current = _current(user, name)
    if name in MULTI_VALUED_FIELDS:
        return _comparable_items(name, current) != _comparable_items(name, value)
    return current != value


def user_apply(user: User, fields: UserFields, *, actor: SystemActor, locked: bool = False) -> User:
    """Write what differs between `user` and `fields` through the directory services.

    `locked`: `user` was read with select_for_update() in the caller's transaction, which the
    caller rolls back if this raises (the services then neither read it again nor take a savepoint).
    """
    changes = {name: value for name, value in fields.profile.items() if _differs(user, name, value)}
    steps = []
    if changes:
        steps.append(lambda user: services.user_update(actor=actor, user=user, locked=locked, **changes))
    is_active = user.status == UserStatus.ACTIVE
    if fields.active is True and not is_active:
        steps.append(lambda user: services.user_reactivate(actor=actor, user=user, locked=locked))
    elif fields.active is False and is_active:
        steps.append(lambda user: services.user_suspend(actor=actor, user=user, locked=locked))
    if fields.password:
        # An HR system or another IdP that sets passwords is their source: nothing to change at sign-in.
        steps.append(
            lambda user: services.user_set_password(actor=actor, user=user, password=fields.password, temporary=False)
        )
    if len(steps) == 1:
        return steps[0](user)  # the service is its own transaction (or runs in the caller's)
    with transaction.atomic(savepoint=not locked):
        for step in steps:
            user = step(user)
    return user


# --- Groups ------------------------------------------------------------------------------------


class ScimGroupAdapter(_Adapter):
    """GROUP_ADAPTER: a directory Group as a SCIM Group whose members are users."""

    url_name = "scim_server:group"
    collection_url_name = "scim_server:groups"
    resource_type = "Group"

    def __init__(
        self, obj: Group, request: HttpRequest | None = None, members: list[tuple[UUID, str]] | None = None
    ) -> None:
        super().__init__(obj, request=request)
        self._members = members

    def members(self) -> list[tuple[UUID, str]]:
        """(user id, username) of every member, in a stable order."""
        if self._members is None:
            self._members = list(
                Membership.objects.filter(group=self.obj).order_by("user_id").values_list("user_id", "user__username")
            )
        return self._members

    @property
    def version(self) -> str:
        member_digest = hashlib.sha256(",".join(str(pk) for pk, _ in self.members()).encode()).hexdigest()
        return weak_etag(self.obj.pk, self.obj.updated.isoformat(), member_digest)

    def to_dict(self, *, with_members: bool = True, request_only: RequestOnly = frozenset()) -> dict:
        group = self.obj
        document: dict[str, Any] = {"schemas": [GROUP_SCHEMA], "id": str(group.pk), "displayName": group.name}
        if group.external_id:
            document["externalId"] = group.external_id
        if with_members and self.members():
            base = base_location(self._request)
            with_display = "members.display" in request_only
            members = []
            for user_id, username in self.members():
                member = {
                    "value": str(user_id),
                    "$ref": f"{base}{_collection_path('scim_server:users')}{user_id}",
                    "type": "User",
                }
                if with_display:
                    member["display"] = username
                members.append(member)
            document["members"] = members
        document["meta"] = {
            "resourceType": self.resource_type,
            "created": _iso(group.created),
            "lastModified": _iso(group.updated),
            "location": self.location,
            "version": self.version,
        }
        return document


@dataclass
class GroupFields:
    name: str
    external_id: str
    member_ids: list[UUID] | None  # None: not given (PUT keeps members? no: PUT clears; see reader)


def read_group_document(document: Any, *, mode: str, current: dict | None = None) -> GroupFields:
    if not isinstance(document, dict):
        raise invalid_value("A Group must be a JSON object.")
    check_schemas(document, {GROUP_SCHEMA}, GROUP_SCHEMA)
    core = attribute_defs(GROUP_SCHEMA)
    name = None
    external_id = ""
    member_ids: list[UUID] = []
    current_id = (current or {}).get("id")
    for key, value in document.items():
        lowered = key.lower()
        if lowered == "schemas":
            continue
        definition = core.get(lowered) or COMMON_ATTRIBUTES.get(lowered)
        if definition is None:
            raise invalid_path(f"Unknown attribute {key[:80]!r}.")
        if definition.mutability == "readOnly":
            if mode != "patch":
                check_read_only(key, value, mode, current_id)
            continue
        if lowered == "displayname":
            name = string_value(value, "displayName")
        elif lowered == "externalid":
            external_id = string_value(value, "externalId")
        elif lowered == "members":
            member_ids = _read_members(value)
    if not (name or "").strip():
        raise invalid_value("displayName is required.")
    return GroupFields(name=name.strip(), external_id=external_id, member_ids=member_ids)


def _read_members(value: Any) -> list[UUID]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid_value("members must be a list.")
    if len(value) > MAX_MEMBERS_PER_REQUEST:
        raise invalid_value(f"At most {MAX_MEMBERS_PER_REQUEST} members per request.")
    subs = attribute_defs(GROUP_SCHEMA)["members"].sub_attributes
    ids: dict[UUID, None] = {}
    for element in value:
        if not isinstance(element, dict):
            raise invalid_value("Each member must be an object.")
        for key in element:
            if subs.get(key.lower()) is None:
                raise invalid_path(f"Unknown attribute members.{key[:80]}.")
        _, member_type = _get(element, "type")
        if member_type is not None and str(member_type).lower() != "user":
            raise invalid_value("Groups hold users only; nested groups are not supported.")
        _, member_value = _get(element, "value")
        if not isinstance(member_value, str):
            raise invalid_value("Each member needs a value: the SCIM id of a User.")
        try:
            ids[UUID(member_value)] = None
        except ValueError:
            raise invalid_value(f"{member_value[:60]!r} is not the id of a User.") from None
    return list(ids)


def resolve_members(member_ids: list[UUID], users_queryset) -> list[User]:
    users = {user.pk: user for user in users_queryset.filter(pk__in=member_ids).only("id", "username")}
    missing = [str(pk) for pk in member_ids if pk not in users]
    if missing:
        raise invalid_value(f"No such user: {', '.join(missing[:20])}.")
    return [users[pk] for pk in member_ids]


def group_create_from(fields: GroupFields, *, actor: SystemActor, users_queryset) -> Group:
    members = resolve_members(fields.member_ids or [], users_queryset)
    return services.group_create(actor=actor, name=fields.name, external_id=fields.external_id, members=members)


def group_apply(
    group: Group, fields: GroupFields, *, actor: SystemActor, users_queryset, current_members: list
) -> Group:
    changes = {}
    if group.name != fields.name:
        changes["name"] = fields.name
    if group.external_id != fields.external_id:
        changes["external_id"] = fields.external_id
    with transaction.atomic():
        if changes:
            group = services.group_update(actor=actor, group=group, **changes)
        if fields.member_ids is not None:
            wanted = set(fields.member_ids)
            present = {pk for pk, _ in current_members}
            to_add = [pk for pk in fields.member_ids if pk not in present]
            to_remove = present - wanted
            if to_add:
                services.group_add_members(actor=actor, group=group, users=resolve_members(to_add, users_queryset))
            if to_remove:
                services.group_remove_members(
                    actor=actor, group=group, users=list(User.objects.filter(pk__in=to_remove).only("id", "username"))
                )
    return group
