"""Admin API v1: a connector's OpenID Connect client secret (rotation with an overlap)."""

from uuid import UUID

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.api.oidc_serializers import ClientSecretOutputSerializer, ClientSecretRotateInputSerializer
from apps.api.views import _validated
from apps.connectors import selectors
from apps.connectors.models import Connector
from apps.connectors.oidc_settings import oidc_client_secret_rotate


class ClientSecretRotateView(APIView):
    @extend_schema(
        request=ClientSecretRotateInputSerializer,
        responses={201: ClientSecretOutputSerializer},
        summary="Issue a new client secret; the previous one keeps working for the overlap",
    )
    def post(self, request, connector_id: UUID):
        connector: Connector = get_object_or_404(selectors.connector_list(), pk=connector_id)
        data = _validated(ClientSecretRotateInputSerializer, request.data)
        issued = oidc_client_secret_rotate(
            actor=request.user, connector=connector, overlap_seconds=data.get("overlap_seconds")
        )
        connector.refresh_from_db()
        payload = {
            "client_id": connector.oidc.client_id,
            "client_secret": issued.secret,
            "previous_secret_valid_until": issued.previous_valid_until,
        }
        return Response(ClientSecretOutputSerializer(payload).data, status=status.HTTP_201_CREATED)
