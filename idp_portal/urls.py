from django.urls import include, path

from apps.common.views import favicon, healthz
from apps.portal import views as portal_views

urlpatterns = [
    path("", portal_views.launchpad, name="home"),
    path("healthz", healthz, name="healthz"),
    path("favicon.ico", favicon, name="favicon"),
    path("api/v1/", include("apps.api.urls")),
    path("scim/v2/", include("apps.scim_server.urls")),
    path("saml/idp/", include("apps.saml_idp.urls")),
    path("saml/sp/", include("apps.saml_sp.urls")),
    path("oidc/", include("apps.oidc.urls")),
    path("console/", include("apps.console.urls")),
    path("", include("apps.portal.urls")),
]
