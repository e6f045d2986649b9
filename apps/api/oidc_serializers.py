"""Input and output shapes of a connector's `oidc` section (OpenID Connect sign-in)."""

from rest_framework import serializers

from apps.api.serializers import StrictInputSerializer
from apps.connectors import idp_urls
from apps.connectors.models import OidcClientType, OidcSettings, OidcSubject
from apps.connectors.oidc_settings import SUPPORTED_SCOPES


class OidcUrlsSerializer(serializers.Serializer):
    issuer = serializers.CharField()
    discovery = serializers.CharField()
    authorization_endpoint = serializers.CharField()
    token_endpoint = serializers.CharField()
    userinfo_endpoint = serializers.CharField()
    jwks_uri = serializers.CharField()
    introspection_endpoint = serializers.CharField()
    revocation_endpoint = serializers.CharField()
    end_session_endpoint = serializers.CharField()


class OidcOutputSerializer(serializers.ModelSerializer):
    client_secret_set = serializers.SerializerMethodField()
    previous_secret_valid_until = serializers.DateTimeField(source="previous_secret_expires", allow_null=True)
    urls = serializers.SerializerMethodField()
    client_secret = serializers.SerializerMethodField(
        help_text="Only in the answer that issued it (creation, a switch to a confidential client): shown once."
    )

    class Meta:
        model = OidcSettings
        fields = [
            "client_id",
            "client_type",
            "client_secret_set",
            "client_secret_prefix",
            "client_secret_created",
            "previous_secret_valid_until",
            "client_secret",
            "redirect_uris",
            "redirect_uri_pattern",
            "post_logout_redirect_uris",
            "frontchannel_logout_uri",
            "login_url",
            "allowed_scopes",
            "sub_source",
            "access_token_lifetime_seconds",
            "id_token_lifetime_seconds",
            "refresh_token_lifetime_seconds",
            "require_mfa",
            "urls",
        ]
        read_only_fields = fields

    def get_client_secret_set(self, oidc: OidcSettings) -> bool:
        return bool(oidc.client_secret_hash)

    def get_urls(self, oidc: OidcSettings) -> dict:
        return OidcUrlsSerializer(idp_urls.oidc_urls(oidc.connector)).data

    def get_client_secret(self, oidc: OidcSettings) -> str | None:
        return self.context.get("issued_client_secret")


class OidcInputSerializer(StrictInputSerializer):
    client_type = serializers.ChoiceField(choices=OidcClientType.choices, required=False)
    redirect_uris = serializers.ListField(child=serializers.CharField(max_length=2000), required=False, max_length=20)
    post_logout_redirect_uris = serializers.ListField(
        child=serializers.CharField(max_length=2000), required=False, max_length=20
    )
    frontchannel_logout_uri = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    login_url = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    allowed_scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=SUPPORTED_SCOPES), required=False, max_length=10
    )
    sub_source = serializers.ChoiceField(choices=OidcSubject.choices, required=False)
    access_token_lifetime_seconds = serializers.IntegerField(required=False)
    id_token_lifetime_seconds = serializers.IntegerField(required=False)
    refresh_token_lifetime_seconds = serializers.IntegerField(required=False)
    require_mfa = serializers.BooleanField(required=False)


class ClientSecretRotateInputSerializer(StrictInputSerializer):
    overlap_seconds = serializers.IntegerField(
        required=False, min_value=0, max_value=30 * 24 * 3600, help_text="How long the previous secret keeps working."
    )


class ClientSecretOutputSerializer(serializers.Serializer):
    client_id = serializers.CharField()
    client_secret = serializers.CharField(help_text="Shown once; store it in the app now.")
    previous_secret_valid_until = serializers.DateTimeField(allow_null=True)
