from django.urls import path

from apps.saml_idp import soap_views, views

app_name = "saml_idp"
urlpatterns = [
    path("metadata", views.portal_metadata, name="portal_metadata"),
    path("<slug:slug>/metadata", views.connector_metadata, name="metadata"),
    path("<slug:slug>/sso", views.sso, name="sso"),
    path("<slug:slug>/sso/continue", views.sso_continue, name="sso_continue"),
    path("<slug:slug>/launch", views.launch, name="launch"),
    path("<slug:slug>/slo", views.slo, name="slo"),
    path("<slug:slug>/slo/soap", soap_views.slo_soap, name="slo_soap"),
]
