from django.urls import path

from apps.saml_sp import views

app_name = "saml_sp"
urlpatterns = [
    path("<slug:slug>/login/", views.UpstreamLoginView.as_view(), name="login"),
    path("<slug:slug>/acs/", views.UpstreamAcsView.as_view(), name="acs"),
    path("<slug:slug>/metadata/", views.UpstreamMetadataView.as_view(), name="metadata"),
    path("<slug:slug>/slo/", views.UpstreamSloView.as_view(), name="slo"),
]
