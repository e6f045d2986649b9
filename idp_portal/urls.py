from django.urls import include, path
from django.views.generic import TemplateView

from apps.common.views import healthz

urlpatterns = [
    path("", TemplateView.as_view(template_name="home.html"), name="home"),
    path("healthz", healthz, name="healthz"),
    path("api/v1/", include("apps.api.urls")),
    path("scim/v2/", include("apps.scim_server.urls")),
    path("saml/idp/", include("apps.saml_idp.urls")),
    path("", include("apps.portal.urls")),
]
