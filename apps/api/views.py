"""Admin API v1 views: parse input, call a service or selector, render output."""

from datetime import UTC
from uuid import UUID

from django.db import transaction
from django.db.models import Prefetch
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from apps.api import serializers as s
from apps.api.parsers import CSVParser, CSVRenderer
from apps.audit.selectors import audit_event_list
from apps.common.errors import field_error
from apps.directory import selectors, services, user_csv
from apps.directory.models import Group, Membership, User
from apps.directory.profile_selectors import UnknownFilter
from apps.directory.roles import Capability, has_capability


def _users_by_ids(ids: list[UUID], field: str) -> list[User]:
    wanted = list(dict.fromkeys(ids))
    users = {user.pk: user for user in User.objects.filter(pk__in=wanted)}
    missing = [str(pk) for pk in wanted if pk not in users]
    if missing:
        raise field_error(field, f"No such user: {', '.join(missing[:20])}", code="does_not_exist")
    return [users[pk] for pk in wanted]


def _parse_query_datetime(request, name: str):
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        value = parse_datetime(raw)
    except ValueError:
        value = None
    if value is None:
        raise field_error(name, "Enter an ISO 8601 date-time, e.g. 2026-01-31T12:00:00Z.")
    if timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)  # the API speaks UTC
    return value


USER_FILTERS = [
    OpenApiParameter("username", str, description="Exact username, case-insensitive"),
    OpenApiParameter("email", str, description="Exact email, case-insensitive"),
    OpenApiParameter("status", str, enum=["active", "suspended", "staged"]),
    OpenApiParameter("group", str, description="Group id or name"),
    OpenApiParameter("search", str, description="Substring of username, email or name"),
    OpenApiParameter("department", str, description="Exact department, case-insensitive"),
    OpenApiParameter("title", str, description="Exact job title, case-insensitive"),
    OpenApiParameter("manager", OpenApiTypes.UUID, description="Users whose manager is this user id"),
    OpenApiParameter(
        "custom.{name}",
        str,
        description="Users whose custom attribute `name` has this value (one of its values, if it is "
        "multi-valued), e.g. `custom.region=EMEA`; repeat with other names to combine",
    ),
]
# List filters on profile attributes: query parameter -> attribute key.
USER_ATTRIBUTE_FILTERS = ("department", "title", "manager")


@extend_schema_view(
    list=extend_schema(parameters=USER_FILTERS, responses=s.UserOutputSerializer(many=True)),
    retrieve=extend_schema(responses=s.UserOutputSerializer),
    create=extend_schema(request=s.UserCreateInputSerializer, responses={201: s.UserOutputSerializer}),
    partial_update=extend_schema(request=s.UserUpdateInputSerializer, responses=s.UserOutputSerializer),
    destroy=extend_schema(responses={204: None}),
)
class UserViewSet(viewsets.GenericViewSet):
    serializer_class = s.UserOutputSerializer
    queryset = User.objects.none()  # for the schema; requests use selectors
    read_capability = Capability.VIEW_DIRECTORY
    write_capability = Capability.MANAGE_DIRECTORY

    def _get(self, pk: str) -> User:
        return get_object_or_404(selectors.user_list().select_related("manager"), pk=_uuid_or_404(pk))

    def list(self, request):
        page = self.paginate_queryset(_filtered_users(request.query_params))
        return self.get_paginated_response(s.UserOutputSerializer(page, many=True).data)

    @extend_schema(
        parameters=USER_FILTERS,
        responses={(200, "text/csv"): OpenApiTypes.STR},
        description="The users the list's filters select, as CSV: every attribute, custom ones as "
        "`custom.<name>` columns. The file imports back unchanged.",
    )
    @action(detail=False, methods=["get"], url_path="export", renderer_classes=[JSONRenderer, CSVRenderer])
    def export(self, request):
        users = _filtered_users(request.query_params)
        response = StreamingHttpResponse(user_csv.user_csv_lines(users), content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="users-{stamp}.csv"'
        return response

    @extend_schema(
        request={"text/csv": OpenApiTypes.BINARY, "multipart/form-data": s.UserImportInputSerializer},
        responses=s.UserImportReportSerializer,
        description="Create or update users from CSV (the export's columns; a username column is "
        "required; only the file's columns change; an empty cell clears). Rows are written one by one: "
        "refused rows are listed with their line and reasons, the others are written. Send the file as "
        "a text/csv body or as the `file` field of a multipart form.",
    )
    @action(detail=False, methods=["post"], url_path="import", parser_classes=[CSVParser, MultiPartParser, JSONParser])
    def import_csv(self, request):
        if isinstance(request.data, bytes):
            content = request.data
        elif request.data.get("file") is not None and hasattr(request.data["file"], "read"):
            content = request.data["file"].read()
        else:
            raise field_error("file", "Send the CSV as a text/csv body or as the `file` field of a multipart form.")
        report = user_csv.user_csv_import(actor=request.user, content=content)
        return Response(report.as_dict())

    def retrieve(self, request, pk: str):
        return Response(s.UserOutputSerializer(self._get(pk)).data)

    def create(self, request):
        data = _validated(s.UserCreateInputSerializer, request.data)
        if data.get("is_staff") or data.get("is_superuser"):
            _require_role_rights(request.user)
        user = services.user_create(actor=request.user, **data)
        return Response(s.UserOutputSerializer(self._get(str(user.pk))).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, pk: str):
        user = self._get(pk)
        data = _validated(s.UserUpdateInputSerializer, request.data)
        if any(name in data and data[name] != getattr(user, name) for name in ("is_staff", "is_superuser")):
            _require_role_rights(request.user)
        if "custom_attributes" in data:
            data["custom_attributes"] = _merged_custom_values(user, data["custom_attributes"])
        password = data.pop("password", None)
        temporary = data.pop("password_temporary", True)
        new_status = data.pop("status", None)
        # One PATCH is one change: a refused step (a weak password, the last super-admin) undoes the rest.
        with transaction.atomic():
            if data:
                user = services.user_update(actor=request.user, user=user, **data)
            if new_status:
                user = services.user_set_status(actor=request.user, user=user, status=new_status)
            if password:
                services.user_set_password(actor=request.user, user=user, password=password, temporary=temporary)
        return Response(s.UserOutputSerializer(self._get(pk)).data)

    def destroy(self, request, pk: str):
        user = self._get(pk)
        services.user_delete(actor=request.user, user=user)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _filtered_users(params):
    status_filter = params.get("status")
    if status_filter and status_filter not in {"active", "suspended", "staged"}:
        raise field_error("status", "Choose one of active, suspended, staged.")
    if params.get("group") and not selectors.group_exists(params["group"]):
        raise field_error("group", "No such group.", code="does_not_exist")
    attributes = {key: params[key] for key in USER_ATTRIBUTE_FILTERS if params.get(key)}
    attributes |= {key: params[key] for key in params if key.startswith("custom.") and key != "custom.{name}"}
    try:
        return selectors.user_list(
            username=params.get("username"),
            email=params.get("email"),
            status=status_filter,
            group=params.get("group"),
            search=params.get("search"),
            attributes=attributes,
        ).select_related("manager")  # the output names each user's manager
    except UnknownFilter as exc:
        raise field_error(exc.key, str(exc)) from None


def _merged_custom_values(user: User, patch: dict) -> dict:
    """A PATCH's custom values over the user's: names not given keep theirs, null removes one."""
    patched = {str(name).lower() for name in patch}
    kept = {name: value for name, value in (user.custom_attributes or {}).items() if name.lower() not in patched}
    return kept | {name: value for name, value in patch.items() if value is not None}


def _require_role_rights(actor: User) -> None:
    if not has_capability(actor, Capability.MANAGE_ROLES):
        raise PermissionDenied("Only a super-admin may make someone staff or change a role.")


def _uuid_or_404(value: str) -> UUID:
    try:
        return UUID(str(value))
    except ValueError as exc:
        raise Http404 from exc


def _validated(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _groups_with_member_ids():
    return selectors.group_list().prefetch_related(
        Prefetch("memberships", queryset=Membership.objects.only("id", "group_id", "user_id"))
    )


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("name", str, description="Exact name, case-insensitive"),
            OpenApiParameter("member", OpenApiTypes.UUID, description="Groups this user belongs to"),
            OpenApiParameter("search", str),
        ],
        responses=s.GroupOutputSerializer(many=True),
    ),
    retrieve=extend_schema(responses=s.GroupOutputSerializer),
    create=extend_schema(request=s.GroupCreateInputSerializer, responses={201: s.GroupOutputSerializer}),
    partial_update=extend_schema(request=s.GroupUpdateInputSerializer, responses=s.GroupOutputSerializer),
    destroy=extend_schema(responses={204: None}),
)
class GroupViewSet(viewsets.GenericViewSet):
    serializer_class = s.GroupOutputSerializer
    read_capability = Capability.VIEW_DIRECTORY
    write_capability = Capability.MANAGE_DIRECTORY
    queryset = Group.objects.none()  # for the schema; requests use selectors

    def _get(self, pk: str) -> Group:
        return get_object_or_404(_groups_with_member_ids(), pk=_uuid_or_404(pk))

    def list(self, request):
        params = request.query_params
        member = params.get("member")
        if member:
            try:
                UUID(member)
            except ValueError:
                raise field_error("member", "Enter a user id.") from None
        groups = selectors.group_list(name=params.get("name"), member=member, search=params.get("search"))
        groups = groups.prefetch_related(
            Prefetch("memberships", queryset=Membership.objects.only("id", "group_id", "user_id"))
        )
        page = self.paginate_queryset(groups)
        return self.get_paginated_response(s.GroupOutputSerializer(page, many=True).data)

    def retrieve(self, request, pk: str):
        return Response(s.GroupOutputSerializer(self._get(pk)).data)

    def create(self, request):
        data = _validated(s.GroupCreateInputSerializer, request.data)
        members = _users_by_ids(data.pop("members", []), "members")
        group = services.group_create(actor=request.user, members=members, **data)
        return Response(s.GroupOutputSerializer(self._get(str(group.pk))).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, pk: str):
        group = self._get(pk)
        data = _validated(s.GroupUpdateInputSerializer, request.data)
        member_ids = data.pop("members", None)
        members = _users_by_ids(member_ids, "members") if member_ids is not None else None
        # One PATCH is one change: a member beyond the caller's reach undoes the rename too.
        with transaction.atomic():
            if data:
                group = services.group_update(actor=request.user, group=group, **data)
            if members is not None:
                services.group_set_members(actor=request.user, group=group, users=members)
        return Response(s.GroupOutputSerializer(self._get(pk)).data)

    def destroy(self, request, pk: str):
        group = self._get(pk)
        services.group_delete(actor=request.user, group=group)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(methods=["get"], responses=s.UserSummarySerializer(many=True))
    @extend_schema(methods=["post"], request=s.MemberAddInputSerializer, responses=s.UserSummarySerializer(many=True))
    @action(detail=True, methods=["get", "post"], url_path="members")
    def members(self, request, pk: str):
        group = self._get(pk)
        if request.method == "POST":
            data = _validated(s.MemberAddInputSerializer, request.data)
            ids = ([data["user"]] if data.get("user") else []) + list(data.get("users") or [])
            users = _users_by_ids(ids, "users" if data.get("users") else "user")
            added = services.group_add_members(actor=request.user, group=group, users=users)
            return Response(s.UserSummarySerializer(added, many=True).data, status=status.HTTP_201_CREATED)
        page = self.paginate_queryset(selectors.group_members(group))
        return self.get_paginated_response(s.UserSummarySerializer(page, many=True).data)

    @extend_schema(responses={204: None}, parameters=[OpenApiParameter("user_id", OpenApiTypes.UUID, "path")])
    @action(detail=True, methods=["delete"], url_path=r"members/(?P<user_id>[^/.]+)")
    def remove_member(self, request, pk: str, user_id: str):
        group = self._get(pk)
        user = get_object_or_404(User, pk=_uuid_or_404(user_id))
        if not services.group_remove_members(actor=request.user, group=group, users=[user]):
            return Response({"detail": "That user is not a member of this group."}, status=status.HTTP_404_NOT_FOUND)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("action", str, description="An action (user.create) or a family (user)"),
            OpenApiParameter("actor", OpenApiTypes.UUID),
            OpenApiParameter("target_type", str, description="e.g. directory.user"),
            OpenApiParameter("target_id", str),
            OpenApiParameter("since", OpenApiTypes.DATETIME),
            OpenApiParameter("until", OpenApiTypes.DATETIME),
        ]
    )
)
class AuditEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = s.AuditEventOutputSerializer
    read_capability = Capability.VIEW_AUDIT

    def get_queryset(self):
        params = self.request.query_params
        actor = params.get("actor")
        if actor:
            try:
                UUID(actor)
            except ValueError:
                raise field_error("actor", "Enter a user id.") from None
        return audit_event_list(
            action=params.get("action"),
            actor_id=actor,
            target_type=params.get("target_type"),
            target_id=params.get("target_id"),
            since=_parse_query_datetime(self.request, "since"),
            until=_parse_query_datetime(self.request, "until"),
        )
