"""Catalog and connector endpoints of the admin API."""

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

from apps.api import connector_serializers as cs
from apps.api.parsers import RawXMLParser, SamlMetadataParser, TextXMLParser
from apps.api.views import _uuid_or_404, _validated
from apps.common.errors import ApplicationError
from apps.connectors import metadata_refresh, selectors, services
from apps.connectors.catalog import get_template, load_catalog
from apps.connectors.models import Assignment, AttributeMapping, Connector
from apps.directory.models import Group, User
from apps.provisioning import selectors as prov_selectors
from apps.provisioning import services as prov_services
from apps.provisioning.models import DeprovisionHold
from apps.provisioning.preview import preview_sync
from apps.provisioning.probe import connection_test


class CatalogViewSet(viewsets.ViewSet):
    lookup_field = "slug"

    @extend_schema(responses=cs.TemplateOutputSerializer(many=True))
    def list(self, request):
        return Response(cs.TemplateOutputSerializer(load_catalog().values(), many=True).data)

    @extend_schema(responses=cs.TemplateOutputSerializer, parameters=[OpenApiParameter("slug", str, "path")])
    def retrieve(self, request, slug: str):
        template = get_template(slug)
        if template is None:
            return Response({"detail": f"No catalog template {slug!r}."}, status=status.HTTP_404_NOT_FOUND)
        return Response(cs.TemplateOutputSerializer(template).data)


def _refuse_fixed_fields(data) -> None:
    if isinstance(data, dict):
        for field in services.FIXED_FIELDS:
            if field in data:
                raise services.FixedFieldError(field)


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("search", str),
            OpenApiParameter("kind", str, enum=["saml", "scim", "saml_scim", "oidc", "oidc_scim", "bookmark"]),
        ],
        responses=cs.ConnectorOutputSerializer(many=True),
    ),
    retrieve=extend_schema(responses=cs.ConnectorOutputSerializer),
    create=extend_schema(request=cs.ConnectorCreateInputSerializer, responses={201: cs.ConnectorOutputSerializer}),
    partial_update=extend_schema(request=cs.ConnectorUpdateInputSerializer, responses=cs.ConnectorOutputSerializer),
    destroy=extend_schema(responses={204: None}),
)
class ConnectorViewSet(viewsets.GenericViewSet):
    serializer_class = cs.ConnectorOutputSerializer
    queryset = Connector.objects.none()  # for the schema; requests use selectors

    def _get(self, pk: str) -> Connector:
        return get_object_or_404(selectors.connector_list(), pk=_uuid_or_404(pk))

    def _render(self, connector: Connector, code: int = status.HTTP_200_OK) -> Response:
        # A client secret issued by this request (OIDC) is in this answer only.
        context = {"issued_client_secret": getattr(connector, "issued_client_secret", None)}
        return Response(cs.ConnectorOutputSerializer(self._get(str(connector.pk)), context=context).data, status=code)

    def list(self, request):
        connectors = selectors.connector_list(
            search=request.query_params.get("search"), kind=request.query_params.get("kind")
        )
        page = self.paginate_queryset(connectors)
        return self.get_paginated_response(cs.ConnectorOutputSerializer(page, many=True).data)

    def retrieve(self, request, pk: str):
        return Response(cs.ConnectorOutputSerializer(self._get(pk)).data)

    def create(self, request):
        serializer = cs.ConnectorCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        connector = services.connector_create(actor=request.user, **serializer.to_service_kwargs())
        return self._render(connector, status.HTTP_201_CREATED)

    def partial_update(self, request, pk: str):
        connector = self._get(pk)
        _refuse_fixed_fields(request.data)
        serializer = cs.ConnectorUpdateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        connector = services.connector_update(actor=request.user, connector=connector, **serializer.to_service_kwargs())
        return self._render(connector)

    def destroy(self, request, pk: str):
        services.connector_delete(actor=request.user, connector=self._get(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)

    # --- assignments ---

    @extend_schema(methods=["get"], responses=cs.AssignmentOutputSerializer(many=True))
    @extend_schema(
        methods=["post"], request=cs.AssignmentInputSerializer, responses={201: cs.AssignmentOutputSerializer}
    )
    @action(detail=True, methods=["get", "post"])
    def assignments(self, request, pk: str):
        connector = self._get(pk)
        if request.method == "POST":
            data = _validated(cs.AssignmentInputSerializer, request.data)
            user = get_object_or_404(User, pk=data["user"]) if data.get("user") else None
            group = get_object_or_404(Group, pk=data["group"]) if data.get("group") else None
            assignment = services.assignment_create(actor=request.user, connector=connector, user=user, group=group)
            return Response(cs.AssignmentOutputSerializer(assignment).data, status=status.HTTP_201_CREATED)
        page = self.paginate_queryset(selectors.assignment_list(connector))
        return self.get_paginated_response(cs.AssignmentOutputSerializer(page, many=True).data)

    @extend_schema(
        responses={204: None},
        parameters=[OpenApiParameter("assignment_id", OpenApiTypes.INT, "path")],
    )
    @action(detail=True, methods=["delete"], url_path=r"assignments/(?P<assignment_id>[0-9]+)")
    def remove_assignment(self, request, pk: str, assignment_id: str):
        connector = self._get(pk)
        assignment = get_object_or_404(Assignment, pk=int(assignment_id), connector=connector)
        services.assignment_delete(actor=request.user, assignment=assignment)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses=cs.EffectiveAssignmentOutputSerializer(many=True))
    @action(detail=True, methods=["get"], url_path="assigned-users")
    def assigned_users(self, request, pk: str):
        """Everyone who is effectively assigned, with the paths that grant it (direct, group:<name>)."""
        entries = selectors.effective_assignments(self._get(pk))
        page = self.paginate_queryset(entries)
        return self.get_paginated_response(cs.EffectiveAssignmentOutputSerializer(page, many=True).data)

    # --- mappings ---

    @extend_schema(methods=["get"], responses=cs.MappingOutputSerializer(many=True))
    @extend_schema(methods=["post"], request=cs.MappingInputSerializer, responses={201: cs.MappingOutputSerializer})
    @extend_schema(
        methods=["put"], request=cs.MappingsReplaceInputSerializer, responses=cs.MappingOutputSerializer(many=True)
    )
    @action(detail=True, methods=["get", "post", "put"])
    def mappings(self, request, pk: str):
        connector = self._get(pk)
        if request.method == "POST":
            data = _validated(cs.MappingInputSerializer, request.data)
            mapping = services.mapping_create(actor=request.user, connector=connector, **data)
            return Response(cs.MappingOutputSerializer(mapping).data, status=status.HTTP_201_CREATED)
        if request.method == "PUT":
            data = _validated(cs.MappingsReplaceInputSerializer, request.data)
            rows = [dict(row) for row in data["rows"]]
            services.mappings_replace(actor=request.user, connector=connector, kind=data["kind"], rows=rows)
            mappings = selectors.mapping_list(connector, data["kind"])
            return Response(cs.MappingOutputSerializer(mappings, many=True).data)
        kind = request.query_params.get("kind")
        return Response(cs.MappingOutputSerializer(selectors.mapping_list(connector, kind), many=True).data)

    @extend_schema(responses={204: None}, parameters=[OpenApiParameter("mapping_id", OpenApiTypes.INT, "path")])
    @action(detail=True, methods=["delete"], url_path=r"mappings/(?P<mapping_id>[0-9]+)")
    def remove_mapping(self, request, pk: str, mapping_id: str):
        connector = self._get(pk)
        mapping = get_object_or_404(AttributeMapping, pk=int(mapping_id), connector=connector)
        services.mapping_delete(actor=request.user, mapping=mapping)
        return Response(status=status.HTTP_204_NO_CONTENT)

    # --- SP metadata ---

    @extend_schema(
        request={
            "application/json": cs.SpMetadataInputSerializer,
            "application/xml": OpenApiTypes.STR,
            "application/samlmetadata+xml": OpenApiTypes.STR,
        },
        responses=cs.ConnectorOutputSerializer,
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="sp-metadata",
        parser_classes=[JSONParser, RawXMLParser, TextXMLParser, SamlMetadataParser],
    )
    def sp_metadata(self, request, pk: str):
        """Import the SP's metadata: POST the XML itself, or JSON {"url": ...} or {"xml": ...}."""
        connector = self._get(pk)
        if isinstance(request.data, bytes):
            connector = metadata_refresh.connector_import_sp_metadata(
                actor=request.user, connector=connector, xml=request.data
            )
        else:
            data = _validated(cs.SpMetadataInputSerializer, request.data)
            connector = metadata_refresh.connector_import_sp_metadata(
                actor=request.user, connector=connector, xml=data.get("xml"), url=data.get("url")
            )
        return self._render(connector)


class ProvisioningViewSet(viewsets.GenericViewSet):
    """Identity Management operations on one connector: status, test, sync, retry, pause, holds."""

    serializer_class = cs.RemoteObjectOutputSerializer
    queryset = Connector.objects.none()

    def _get(self, pk: str) -> Connector:
        connector = get_object_or_404(selectors.connector_list(), pk=_uuid_or_404(pk))
        if not connector.has_provisioning:
            raise ApplicationError(
                f"A {connector.get_kind_display()} has no Identity Management.", code="no_provisioning"
            )
        return connector

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=["pending", "synced", "failed", "deprovisioned", "skipped", "held"]),
            OpenApiParameter("object_type", str, enum=["user", "group"]),
        ],
        responses=OpenApiTypes.OBJECT,
    )
    @action(detail=True, methods=["get"])
    def provisioning(self, request, pk: str):
        """Per-object state with counts, the recent delivery log and open holds."""
        connector = self._get(pk)
        objects = prov_selectors.remote_object_list(
            connector, status=request.query_params.get("status"), object_type=request.query_params.get("object_type")
        )
        page = self.paginate_queryset(objects)
        body = self.get_paginated_response(cs.RemoteObjectOutputSerializer(page, many=True).data).data
        state = prov_selectors.provisioning_state(connector)
        body["state"] = {"key": state.key, "label": state.label, "detail": state.detail}
        body["counts"] = {
            "in_app": state.in_app,
            "deactivated": state.deactivated,
            "waiting": state.waiting,
            "failed": state.failed,
            "held": state.held,
            "not_sent": state.not_sent,
        }
        # A full sync still being recorded in the background: the objects recorded so far (else null).
        body["full_sync_queued"] = state.queuing
        progress = prov_selectors.sync_progress(connector, state)
        body["progress"] = {
            "done": progress.done,
            "total": progress.total,
            "per_second": round(progress.per_second, 1),
            "seconds_left": round(progress.seconds_left) if progress.seconds_left is not None else None,
        }
        body["paused"] = connector.provisioning.paused
        body["paused_reason"] = connector.provisioning.paused_reason
        body["deliveries"] = cs.DeliveryOutputSerializer(prov_selectors.delivery_list(connector)[:100], many=True).data
        body["holds"] = cs.HoldOutputSerializer(prov_selectors.hold_list(connector)[:20], many=True).data
        return Response(body)

    @extend_schema(responses=cs.DeliveryOutputSerializer(many=True))
    @action(detail=True, methods=["get"])
    def deliveries(self, request, pk: str):
        page = self.paginate_queryset(prov_selectors.delivery_list(self._get(pk)))
        return self.get_paginated_response(cs.DeliveryOutputSerializer(page, many=True).data)

    @extend_schema(request=cs.TestConnectionInputSerializer, responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["post"], url_path="test-connection")
    def test_connection(self, request, pk: str):
        connector = self._get(pk)
        data = _validated(cs.TestConnectionInputSerializer, request.data or {})
        report = connection_test(
            actor=request.user, connector=connector, base_url=data.get("base_url"), token=data.get("token")
        )
        return Response(report.as_dict())

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "dry_run", bool, description="Return what a sync would send, page by page, and send nothing"
            ),
            OpenApiParameter("page", int, description="Dry run: the page of objects (users, then groups) to examine"),
            OpenApiParameter("page_size", int, description="Dry run: objects per page, at most 500 (default 200)"),
        ],
        responses=OpenApiTypes.OBJECT,
    )
    @action(detail=True, methods=["post"])
    def sync(self, request, pk: str):
        connector = self._get(pk)
        if request.query_params.get("dry_run", "").lower() in {"1", "true", "yes"}:
            query = {name: request.query_params[name] for name in ("page", "page_size") if name in request.query_params}
            window = _validated(cs.SyncPreviewQuerySerializer, query)
            return Response(preview_sync(connector, page=window["page"], page_size=window["page_size"]).as_dict())
        count = prov_services.connector_sync(actor=request.user, connector=connector)
        more = prov_selectors.full_sync_still_queuing(connector)
        return Response({"queued_objects": count, "more_to_queue": more}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["post"])
    def retry(self, request, pk: str):
        count = prov_services.connector_retry_failed(actor=request.user, connector=self._get(pk))
        return Response({"queued_objects": count}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["post"])
    def pause(self, request, pk: str):
        prov_services.connector_pause(actor=request.user, connector=self._get(pk))
        return Response({"paused": True})

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["post"])
    def resume(self, request, pk: str):
        prov_services.connector_resume(actor=request.user, connector=self._get(pk))
        return Response({"paused": False})

    @extend_schema(
        request=None,
        responses=cs.HoldOutputSerializer,
        parameters=[
            OpenApiParameter("hold_id", OpenApiTypes.INT, "path"),
            OpenApiParameter("decision", str, "path", enum=["approve", "cancel"]),
        ],
    )
    @action(detail=True, methods=["post"], url_path=r"holds/(?P<hold_id>[0-9]+)/(?P<decision>approve|cancel)")
    def decide_hold(self, request, pk: str, hold_id: str, decision: str):
        connector = self._get(pk)
        hold = get_object_or_404(DeprovisionHold, pk=int(hold_id), connector=connector)
        decide = prov_services.hold_approve if decision == "approve" else prov_services.hold_cancel
        return Response(cs.HoldOutputSerializer(decide(actor=request.user, hold=hold)).data)
