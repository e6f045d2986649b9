from django.urls import path

from apps.oidc import views

app_name = "oidc"
urlpatterns = [
    path("<slug:slug>/.well-known/openid-configuration", views.provider_configuration, name="discovery"),
    path("<slug:slug>/jwks", views.jwks, name="jwks"),
    path("<slug:slug>/authorize", views.authorize, name="authorize"),
    path("<slug:slug>/token", views.token, name="token"),
    path("<slug:slug>/userinfo", views.userinfo, name="userinfo"),
    path("<slug:slug>/introspect", views.introspect, name="introspect"),
    path("<slug:slug>/revoke", views.revoke, name="revoke"),
    path("<slug:slug>/logout", views.end_session, name="logout"),
    path("<slug:slug>/launch", views.launch, name="launch"),
]
