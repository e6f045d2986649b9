"""Input and output shapes of the connector endpoints."""

from django.templatetags.static import static
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.api.oidc_serializers import OidcInputSerializer, OidcOutputSerializer
from apps.api.serializers import StrictInputSerializer
from apps.connectors import idp_urls
from apps.connectors.models import (
    Assignment,
    AttributeMapping,
    Connector,
    Deprovision,
    DigestAlgorithm,
    EncryptionAlgorithm,
    KeyTransport,
    MappingKind,
    NameIdFormat,
    NameIdProperty,
    ProvisioningOperation,
    SignatureAlgorithm,
    UpdateMethod,
)
from apps.provisioning.preview import MAX_PAGE_SIZE, PAGE_SIZE


def logo_url(logo: str) -> str:
    if not logo or logo.startswith("https://"):
        return logo
    return static(logo)


# --- Catalog ------------------------------------------------------------------------------------


class TemplateMappingSerializer(serializers.Serializer):
    kind = serializers.CharField()
    source = serializers.CharField()
    target = serializers.CharField()
    name_format = serializers.CharField()


class TemplateOutputSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    kind = serializers.CharField()
    description = serializers.CharField()
    logo = serializers.SerializerMethodField()
    setup_notes = serializers.CharField()
    sso = serializers.DictField()
    provisioning = serializers.DictField()
    oidc = serializers.DictField(
        help_text="OpenID Connect defaults; redirect_uri_pattern is the vendor's documented shape."
    )
    mappings = TemplateMappingSerializer(many=True)

    def get_logo(self, template) -> str:
        return logo_url(template.logo)


# --- Connectors: output -------------------------------------------------------------------------


class AcsUrlSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=2000)
    binding = serializers.CharField(required=False, max_length=128)
    index = serializers.IntegerField(required=False, min_value=0, max_value=65535)


class SsoOutputSerializer(serializers.Serializer):
    sp_entity_id = serializers.CharField()
    acs_urls = AcsUrlSerializer(many=True)
    sp_login_url = serializers.CharField()
    slo_url = serializers.CharField()
    slo_binding = serializers.CharField()
    nameid_format = serializers.CharField()
    nameid_property = serializers.CharField()
    sign_response = serializers.BooleanField()
    sign_assertion = serializers.BooleanField()
    signature_algorithm = serializers.CharField()
    allow_sha1 = serializers.BooleanField()
    require_signed_requests = serializers.BooleanField()
    sp_signing_cert = serializers.CharField()
    sp_encryption_cert = serializers.CharField()
    encrypt_assertions = serializers.BooleanField()
    encrypt_name_id = serializers.BooleanField()
    encryption_algorithm = serializers.CharField()
    key_transport = serializers.CharField()
    digest_algorithm = serializers.CharField(help_text="Empty: the signature algorithm's own hash.")
    slo_soap_url = serializers.CharField()
    sp_algorithms = serializers.DictField(help_text="What the SP's metadata advertised (encryption, signing, digest).")
    sp_metadata_url = serializers.CharField()
    sp_metadata_fetched_at = serializers.DateTimeField(allow_null=True)
    sp_metadata_fetch_error = serializers.CharField()
    assertion_lifetime_seconds = serializers.IntegerField()
    session_lifetime_seconds = serializers.IntegerField()
    relay_state_urls = serializers.ListField(child=serializers.CharField())
    default_relay_state = serializers.CharField()


class ProvisioningOutputSerializer(serializers.Serializer):
    enabled = serializers.BooleanField()
    base_url = serializers.CharField()
    token_set = serializers.BooleanField()
    token_updated_at = serializers.DateTimeField(allow_null=True)
    operations = serializers.ListField(child=serializers.CharField())
    deprovision = serializers.CharField()
    update_method = serializers.CharField()
    rate_limit_per_second = serializers.IntegerField()
    group_members_per_request = serializers.IntegerField()
    deprovision_unmanaged = serializers.BooleanField()
    deprovision_threshold_count = serializers.IntegerField()
    deprovision_threshold_percent = serializers.IntegerField()
    paused = serializers.BooleanField()
    paused_reason = serializers.CharField()


class ConnectorOutputSerializer(serializers.ModelSerializer):
    logo = serializers.SerializerMethodField()
    idp_metadata_url = serializers.SerializerMethodField()
    idp_slo_url = serializers.SerializerMethodField()
    sso = serializers.SerializerMethodField()
    provisioning = serializers.SerializerMethodField()
    oidc = serializers.SerializerMethodField()

    class Meta:
        model = Connector
        fields = [
            "id",
            "name",
            "slug",
            "description",
            "logo",
            "template",
            "kind",
            "enabled",
            "bookmark_url",
            "idp_entity_id",
            "sso_url",
            "idp_slo_url",
            "idp_metadata_url",
            "sso",
            "provisioning",
            "oidc",
            "created",
            "updated",
        ]
        read_only_fields = fields

    def get_logo(self, connector: Connector) -> str:
        return logo_url(connector.logo)

    def get_idp_metadata_url(self, connector: Connector) -> str:
        return idp_urls.metadata_url(connector)

    def get_idp_slo_url(self, connector: Connector) -> str:
        return idp_urls.slo_url(connector)

    def get_sso(self, connector: Connector) -> dict | None:
        sso = getattr(connector, "sso", None) if connector.has_sso else None
        return SsoOutputSerializer(sso).data if sso is not None else None

    def get_provisioning(self, connector: Connector) -> dict | None:
        provisioning = getattr(connector, "provisioning", None) if connector.has_provisioning else None
        return ProvisioningOutputSerializer(provisioning).data if provisioning is not None else None

    @extend_schema_field(OidcOutputSerializer(allow_null=True))
    def get_oidc(self, connector: Connector) -> dict | None:
        oidc = getattr(connector, "oidc", None) if connector.has_oidc else None
        if oidc is None:
            return None
        return OidcOutputSerializer(oidc, context=self.context).data


# --- Connectors: input --------------------------------------------------------------------------


class SsoInputSerializer(StrictInputSerializer):
    sp_entity_id = serializers.CharField(required=False, allow_blank=True, max_length=512)
    acs_urls = serializers.ListField(child=AcsUrlSerializer(), required=False, max_length=20)
    sp_login_url = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    slo_url = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    slo_binding = serializers.CharField(required=False, allow_blank=True, max_length=128)
    nameid_format = serializers.ChoiceField(choices=NameIdFormat.choices, required=False)
    nameid_property = serializers.ChoiceField(choices=NameIdProperty.choices, required=False)
    sign_response = serializers.BooleanField(required=False)
    sign_assertion = serializers.BooleanField(required=False)
    signature_algorithm = serializers.ChoiceField(choices=SignatureAlgorithm.choices, required=False)
    allow_sha1 = serializers.BooleanField(required=False)
    require_signed_requests = serializers.BooleanField(required=False)
    sp_signing_cert = serializers.CharField(required=False, allow_blank=True, max_length=20_000)
    sp_encryption_cert = serializers.CharField(required=False, allow_blank=True, max_length=20_000)
    encrypt_assertions = serializers.BooleanField(required=False)
    encrypt_name_id = serializers.BooleanField(required=False)
    encryption_algorithm = serializers.ChoiceField(choices=EncryptionAlgorithm.choices, required=False)
    key_transport = serializers.ChoiceField(choices=KeyTransport.choices, required=False)
    digest_algorithm = serializers.ChoiceField(choices=DigestAlgorithm.choices, required=False, allow_blank=True)
    slo_soap_url = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    sp_metadata_url = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    assertion_lifetime_seconds = serializers.IntegerField(required=False)
    session_lifetime_seconds = serializers.IntegerField(required=False)
    relay_state_urls = serializers.ListField(
        child=serializers.CharField(max_length=2000), required=False, max_length=50
    )
    default_relay_state = serializers.CharField(required=False, allow_blank=True, max_length=1024)


class ProvisioningInputSerializer(StrictInputSerializer):
    enabled = serializers.BooleanField(required=False)
    base_url = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    token = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, write_only=True, max_length=4096, trim_whitespace=False
    )
    operations = serializers.ListField(
        child=serializers.ChoiceField(choices=ProvisioningOperation.choices), required=False, max_length=10
    )
    deprovision = serializers.ChoiceField(choices=Deprovision.choices, required=False)
    update_method = serializers.ChoiceField(choices=UpdateMethod.choices, required=False)
    rate_limit_per_second = serializers.IntegerField(required=False, min_value=0, max_value=10_000)
    group_members_per_request = serializers.IntegerField(required=False, min_value=1, max_value=10_000)
    deprovision_unmanaged = serializers.BooleanField(required=False)
    deprovision_threshold_count = serializers.IntegerField(required=False, min_value=0, max_value=1_000_000)
    deprovision_threshold_percent = serializers.IntegerField(required=False, min_value=0, max_value=100)


def _plain(data):
    """Validated nested data as plain dicts and lists for the services."""
    if isinstance(data, dict):
        return {key: _plain(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_plain(item) for item in data]
    return data


class ConnectorUpdateInputSerializer(StrictInputSerializer):
    name = serializers.CharField(required=False, max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    logo = serializers.CharField(required=False, allow_blank=True, max_length=300)
    enabled = serializers.BooleanField(required=False)
    bookmark_url = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    sso = SsoInputSerializer(required=False)
    provisioning = ProvisioningInputSerializer(required=False)
    oidc = OidcInputSerializer(required=False)

    def to_service_kwargs(self) -> dict:
        return _plain(dict(self.validated_data))


class ConnectorCreateInputSerializer(ConnectorUpdateInputSerializer):
    template = serializers.CharField(max_length=64)
    name = serializers.CharField(required=False, max_length=100)
    slug = serializers.CharField(required=False, max_length=64)


# --- Mappings and assignments -------------------------------------------------------------------


class MappingOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = AttributeMapping
        fields = ["id", "kind", "source", "target", "name_format", "position"]
        read_only_fields = fields


class MappingInputSerializer(StrictInputSerializer):
    kind = serializers.ChoiceField(choices=MappingKind.choices)
    source = serializers.CharField(max_length=255)
    target = serializers.CharField(max_length=255)
    name_format = serializers.CharField(required=False, allow_blank=True, max_length=128, default="")


class MappingRowSerializer(StrictInputSerializer):
    source = serializers.CharField(max_length=255)
    target = serializers.CharField(max_length=255)
    name_format = serializers.CharField(required=False, allow_blank=True, max_length=128, default="")


class MappingsReplaceInputSerializer(StrictInputSerializer):
    kind = serializers.ChoiceField(choices=MappingKind.choices)
    rows = serializers.ListField(child=MappingRowSerializer(), max_length=200)


class AssignmentOutputSerializer(serializers.ModelSerializer):
    user = serializers.SerializerMethodField()
    group = serializers.SerializerMethodField()

    class Meta:
        model = Assignment
        fields = ["id", "user", "group", "created"]
        read_only_fields = fields

    def get_user(self, assignment: Assignment) -> dict | None:
        if assignment.user is None:
            return None
        return {"id": str(assignment.user.pk), "username": assignment.user.username}

    def get_group(self, assignment: Assignment) -> dict | None:
        if assignment.group is None:
            return None
        return {"id": str(assignment.group.pk), "name": assignment.group.name}


class AssignmentInputSerializer(StrictInputSerializer):
    user = serializers.UUIDField(required=False)
    group = serializers.UUIDField(required=False)

    def validate(self, attrs):
        if bool(attrs.get("user")) == bool(attrs.get("group")):
            raise serializers.ValidationError({"user": ["Give either `user` or `group` (an id)."]})
        return attrs


class EffectiveAssignmentOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="user.pk")
    username = serializers.CharField(source="user.username")
    email = serializers.CharField(source="user.email")
    status = serializers.CharField(source="user.status")
    via = serializers.ListField(child=serializers.CharField())


class SpMetadataInputSerializer(StrictInputSerializer):
    url = serializers.CharField(required=False, max_length=2000)
    xml = serializers.CharField(required=False, max_length=512 * 1024)

    def validate(self, attrs):
        if bool(attrs.get("url")) == bool(attrs.get("xml")):
            raise serializers.ValidationError({"url": ["Give `url` or `xml` (or POST the XML itself)."]})
        return attrs


# --- Provisioning ---------------------------------------------------------------------------------


class TestConnectionInputSerializer(StrictInputSerializer):
    base_url = serializers.CharField(required=False, max_length=2000)
    token = serializers.CharField(required=False, write_only=True, max_length=4096)


class SyncPreviewQuerySerializer(serializers.Serializer):
    """The page of a dry run (query parameters; others, such as dry_run itself, are the view's)."""

    page = serializers.IntegerField(required=False, min_value=1, default=1)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=MAX_PAGE_SIZE, default=PAGE_SIZE)


class RemoteObjectOutputSerializer(serializers.Serializer):
    object_type = serializers.CharField()
    object_id = serializers.UUIDField()
    label = serializers.CharField()
    status = serializers.CharField()
    remote_id = serializers.CharField()
    last_error = serializers.CharField()
    attempts = serializers.IntegerField()
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    last_synced_at = serializers.DateTimeField(allow_null=True)
    last_sent = serializers.JSONField(allow_null=True)


class DeliveryOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    created = serializers.DateTimeField()
    object_type = serializers.CharField()
    object_id = serializers.UUIDField(allow_null=True)
    method = serializers.CharField()
    path = serializers.CharField()
    request_body = serializers.JSONField(allow_null=True)
    status_code = serializers.IntegerField(allow_null=True)
    duration_ms = serializers.FloatField()
    error = serializers.CharField()


class HoldOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    created = serializers.DateTimeField()
    threshold = serializers.IntegerField()
    object_ids = serializers.ListField(child=serializers.CharField())
    remote_ids = serializers.ListField(child=serializers.CharField())
    labels = serializers.ListField(child=serializers.CharField())
    decided_at = serializers.DateTimeField(allow_null=True)
