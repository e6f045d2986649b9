"""Admin API: definitions of custom profile attributes (their values are edited on the users)."""

from uuid import UUID

from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.response import Response

from apps.api import profile_serializers as s
from apps.api.views import _validated
from apps.directory.custom_attributes import (
    custom_attribute_create,
    custom_attribute_delete,
    custom_attribute_update,
)
from apps.directory.models import CustomAttribute
from apps.directory.roles import Capability


def _definition(pk: str) -> CustomAttribute:
    try:
        return get_object_or_404(CustomAttribute, pk=UUID(str(pk)))
    except ValueError as exc:
        raise Http404 from exc


@extend_schema_view(
    list=extend_schema(responses=s.CustomAttributeOutputSerializer(many=True)),
    retrieve=extend_schema(responses=s.CustomAttributeOutputSerializer),
    create=extend_schema(
        request=s.CustomAttributeCreateInputSerializer, responses={201: s.CustomAttributeOutputSerializer}
    ),
    partial_update=extend_schema(
        request=s.CustomAttributeUpdateInputSerializer,
        responses=s.CustomAttributeOutputSerializer,
        description="A change of type, choices or multi_valued rewrites the stored values to fit, or is "
        "refused (400, code custom_attribute_values_unfit) naming users whose value would not fit.",
    ),
    destroy=extend_schema(responses={204: None}, description="Deletes the definition and every user's value."),
)
class CustomAttributeViewSet(viewsets.GenericViewSet):
    serializer_class = s.CustomAttributeOutputSerializer
    queryset = CustomAttribute.objects.none()  # for the schema
    read_capability = Capability.VIEW_DIRECTORY
    write_capability = Capability.MANAGE_PROFILE_SCHEMA

    def list(self, request):
        page = self.paginate_queryset(CustomAttribute.objects.order_by("name"))
        return self.get_paginated_response(s.CustomAttributeOutputSerializer(page, many=True).data)

    def retrieve(self, request, pk: str):
        return Response(s.CustomAttributeOutputSerializer(_definition(pk)).data)

    def create(self, request):
        data = _validated(s.CustomAttributeCreateInputSerializer, request.data)
        definition = custom_attribute_create(actor=request.user, **data)
        return Response(s.CustomAttributeOutputSerializer(definition).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, pk: str):
        definition = _definition(pk)
        data = _validated(s.CustomAttributeUpdateInputSerializer, request.data)
        definition = custom_attribute_update(actor=request.user, definition=definition, **data)
        return Response(s.CustomAttributeOutputSerializer(definition).data)

    def destroy(self, request, pk: str):
        custom_attribute_delete(actor=request.user, definition=_definition(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)
