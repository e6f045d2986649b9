"""Admin API v1 endpoints of the SAML IdP: signing keys, rotation, overrides, metadata fetches."""

from uuid import UUID

from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.connectors.models import Connector
from apps.directory.roles import Capability
from apps.saml_idp import keys, selectors
from apps.saml_idp.models import SigningKey


class SigningKeyOutputSerializer(serializers.ModelSerializer):
    certificate_pem = serializers.CharField(read_only=True)
    # Plain text rather than an enum: SCIM tokens have a `scope` choice set of their own, and two
    # unnamed enums of one field name make drf-spectacular warn.
    scope = serializers.CharField(read_only=True, help_text="portal, or connector (a connector's own key)")

    class Meta:
        model = SigningKey
        fields = [
            "id",
            "scope",
            "status",
            "fingerprint_sha256",
            "key_size",
            "created",
            "activated",
            "retired",
            "not_after",
            "certificate_pem",
        ]
        read_only_fields = fields


class SigningKeyCreateInputSerializer(serializers.Serializer):
    key_size = serializers.ChoiceField(choices=[2048, 3072, 4096], required=False)
    validity_days = serializers.IntegerField(min_value=1, max_value=36500, required=False)


class MetadataFetchOutputSerializer(serializers.Serializer):
    created = serializers.DateTimeField()
    ip = serializers.IPAddressField(allow_null=True)
    user_agent = serializers.CharField()
    key_ids = serializers.ListField(child=serializers.CharField())
    has_next_key = serializers.BooleanField()


class KeyPickupSerializer(serializers.Serializer):
    next_key = serializers.CharField(allow_null=True)
    clients = serializers.ListField(child=serializers.DictField())
    all_clients_have_next_key = serializers.BooleanField()


class ConnectorOverrideInputSerializer(serializers.Serializer):
    key_size = serializers.ChoiceField(choices=[2048, 3072, 4096], required=False)


def _connector(connector_id: UUID) -> Connector:
    connector = get_object_or_404(Connector, pk=connector_id)
    if not connector.has_sso:
        raise Http404
    return connector


class SigningKeyListView(APIView):
    write_capability = Capability.MANAGE_KEYS

    @extend_schema(responses=SigningKeyOutputSerializer(many=True))
    def get(self, request):
        """The portal's signing keys (active, next, retired), newest first."""
        keys.ensure_active_key()
        include_connector_keys = request.query_params.get("scope") == "all"
        queryset = keys.signing_key_list(include_connector_keys=include_connector_keys)
        return Response(SigningKeyOutputSerializer(queryset, many=True).data)

    @extend_schema(request=SigningKeyCreateInputSerializer, responses={201: SigningKeyOutputSerializer})
    def post(self, request):
        """Generate the next key; it is published in metadata at once and signs after a rotation."""
        serializer = SigningKeyCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key = keys.signing_key_create_next(actor=request.user, **serializer.validated_data)
        return Response(SigningKeyOutputSerializer(key).data, status=status.HTTP_201_CREATED)


class SigningKeyRotateView(APIView):
    write_capability = Capability.MANAGE_KEYS

    @extend_schema(
        request=None,
        responses=inline_serializer(
            "SigningKeyRotateOutput",
            {"active": SigningKeyOutputSerializer(), "retired": SigningKeyOutputSerializer()},
        ),
    )
    def post(self, request):
        """Make the next key the active one (generating one first if there is none)."""
        before = keys.ensure_active_key()
        active = keys.signing_key_rotate(actor=request.user)
        before.refresh_from_db()
        return Response(
            {"active": SigningKeyOutputSerializer(active).data, "retired": SigningKeyOutputSerializer(before).data}
        )


class ConnectorMetadataFetchesView(APIView):
    @extend_schema(
        responses=inline_serializer(
            "MetadataFetchesOutput",
            {"pickup": KeyPickupSerializer(), "results": MetadataFetchOutputSerializer(many=True)},
        )
    )
    def get(self, request, connector_id: UUID):
        """Recent fetches of the connector's IdP metadata, and which clients have seen the next key."""
        connector = _connector(connector_id)
        return Response(
            {
                "pickup": selectors.next_key_pickup(connector),
                "results": selectors.metadata_fetch_list(connector, limit=200),
            }
        )


class ConnectorSigningKeyView(APIView):
    write_capability = Capability.MANAGE_KEYS

    @extend_schema(responses=SigningKeyOutputSerializer)
    def get(self, request, connector_id: UUID):
        """The key that signs this connector's responses now (its own, or the portal's active key)."""
        connector = _connector(connector_id)
        override = keys.connector_override_key(connector)
        data = SigningKeyOutputSerializer(override or keys.ensure_active_key()).data
        return Response({**data, "override": override is not None})

    @extend_schema(request=ConnectorOverrideInputSerializer, responses={201: SigningKeyOutputSerializer})
    def post(self, request, connector_id: UUID):
        """Give the connector its own newly generated signing key (replacing an earlier one)."""
        connector = _connector(connector_id)
        serializer = ConnectorOverrideInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key = keys.connector_signing_key_set(actor=request.user, connector=connector, **serializer.validated_data)
        return Response(SigningKeyOutputSerializer(key).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None})
    def delete(self, request, connector_id: UUID):
        """Sign this connector's responses with the portal's keys again."""
        keys.connector_signing_key_clear(actor=request.user, connector=_connector(connector_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
