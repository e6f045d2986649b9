from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from apps.api import connector_views, custom_attribute_views, group_rule_views, idp_key_views, oidc_views, views
from apps.api.scim_token_views import ScimTokenViewSet


class OptionalSlashRouter(SimpleRouter):
    """Documented paths have no trailing slash; scripts that add one still work (no redirect of POSTs)."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("users", views.UserViewSet, basename="user")
router.register("groups", views.GroupViewSet, basename="group")
router.register("custom-attributes", custom_attribute_views.CustomAttributeViewSet, basename="custom-attribute")
router.register("audit-events", views.AuditEventViewSet, basename="audit-event")
router.register("scim-tokens", ScimTokenViewSet, basename="scim-token")
router.register("catalog", connector_views.CatalogViewSet, basename="catalog")
router.register("connectors", connector_views.ConnectorViewSet, basename="connector")
router.register("connectors", connector_views.ProvisioningViewSet, basename="connector-provisioning")

app_name = "api"
urlpatterns = [
    path("schema", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]), name="schema"),
    path(
        "docs",
        SpectacularSwaggerView.as_view(url_name="api:schema", authentication_classes=[], permission_classes=[]),
        name="docs",
    ),
    # SAML IdP signing keys and metadata fetches (apps/api/idp_key_views.py), before the router's routes.
    path("idp-keys", idp_key_views.SigningKeyListView.as_view(), name="idp-keys"),
    path("idp-keys/rotate", idp_key_views.SigningKeyRotateView.as_view(), name="idp-keys-rotate"),
    path(
        "connectors/<uuid:connector_id>/metadata-fetches",
        idp_key_views.ConnectorMetadataFetchesView.as_view(),
        name="connector-metadata-fetches",
    ),
    path(
        "connectors/<uuid:connector_id>/signing-key",
        idp_key_views.ConnectorSigningKeyView.as_view(),
        name="connector-signing-key",
    ),
    path(
        "connectors/<uuid:connector_id>/oidc/client-secret",
        oidc_views.ClientSecretRotateView.as_view(),
        name="connector-oidc-client-secret",
    ),
    path("groups/<uuid:group_id>/rule", group_rule_views.GroupRuleView.as_view(), name="group-rule"),
    path(
        "groups/<uuid:group_id>/rule/preview",
        group_rule_views.GroupRulePreviewView.as_view(),
        name="group-rule-preview",
    ),
    path("group-rule-attributes", group_rule_views.RuleAttributeListView.as_view(), name="group-rule-attributes"),
    path("", include(router.urls)),
]
