"""Admin API for SCIM tokens: POST creates (the secret is in that response only), GET lists, DELETE revokes."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response

from apps.api.serializers import StrictInputSerializer
from apps.directory.models import Group
from apps.directory.roles import Capability
from apps.scim_server.models import ScimToken, ScimTokenScope
from apps.scim_server.services import scim_token_create, scim_token_revoke


class ScimTokenOutputSerializer(serializers.ModelSerializer):
    scope_group = serializers.UUIDField(source="scope_group_id", read_only=True, allow_null=True)

    class Meta:
        model = ScimToken
        fields = [
            "id",
            "name",
            "prefix",
            "scope",
            "scope_group",
            "manages_staff",
            "created",
            "revoked_at",
            "last_used_at",
            "last_used_ip",
        ]
        read_only_fields = fields


class ScimTokenCreatedSerializer(ScimTokenOutputSerializer):
    secret = serializers.CharField(read_only=True, help_text="Shown once; only a hash is stored.")

    class Meta(ScimTokenOutputSerializer.Meta):
        fields = [*ScimTokenOutputSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class ScimTokenCreateInputSerializer(StrictInputSerializer):
    name = serializers.CharField(max_length=100)
    scope = serializers.ChoiceField(choices=ScimTokenScope.choices, required=False, default=ScimTokenScope.READ_WRITE)
    scope_group = serializers.UUIDField(
        required=False, allow_null=True, help_text="Limit the token to this group's users."
    )
    manages_staff = serializers.BooleanField(
        required=False,
        default=False,
        help_text="May change staff accounts (read-only to the token otherwise). Only a super-admin may set it.",
    )


@extend_schema_view(
    list=extend_schema(responses=ScimTokenOutputSerializer(many=True)),
    retrieve=extend_schema(responses=ScimTokenOutputSerializer),
    create=extend_schema(request=ScimTokenCreateInputSerializer, responses={201: ScimTokenCreatedSerializer}),
    destroy=extend_schema(responses={204: None}, description="Revoke the token; it stops working at once."),
)
class ScimTokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = ScimTokenOutputSerializer
    write_capability = Capability.MANAGE_TOKENS
    queryset = ScimToken.objects.all()

    def create(self, request):
        data = ScimTokenCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        group = None
        if values.get("scope_group"):
            group = Group.objects.filter(pk=values["scope_group"]).first()
            if group is None:
                raise serializers.ValidationError({"scope_group": ["No such group."]})
        token, secret = scim_token_create(
            actor=request.user,
            name=values["name"],
            scope=values["scope"],
            scope_group=group,
            manages_staff=values["manages_staff"],
        )
        token.secret = secret
        return Response(ScimTokenCreatedSerializer(token).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, pk: str):
        token = get_object_or_404(ScimToken, pk=pk)
        scim_token_revoke(actor=request.user, token=token)
        return Response(status=status.HTTP_204_NO_CONTENT)
