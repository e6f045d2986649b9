from django.urls import path, re_path

from apps.scim_server import views

app_name = "scim_server"
urlpatterns = [
    re_path(r"^ServiceProviderConfigs?/?$", views.ServiceProviderConfigView.as_view(), name="service-provider-config"),
    re_path(r"^ResourceTypes/?$", views.ResourceTypesView.as_view(), name="resource-types"),
    re_path(r"^ResourceTypes/(?P<type_id>[^/]+)/?$", views.ResourceTypesView.as_view(), name="resource-type"),
    re_path(r"^Schemas/?$", views.SchemasView.as_view(), name="schemas"),
    re_path(r"^Schemas/(?P<schema_id>[^/]+)/?$", views.SchemasView.as_view(), name="schema"),
    re_path(r"^Users/?$", views.UsersView.as_view(), name="users"),
    re_path(r"^Users/\.search/?$", views.UserSearchView.as_view(), name="users-search"),
    re_path(r"^Users/(?P<uuid>[^/]+)/?$", views.UserView.as_view(), name="user"),
    re_path(r"^Groups/?$", views.GroupsView.as_view(), name="groups"),
    re_path(r"^Groups/\.search/?$", views.GroupSearchView.as_view(), name="groups-search"),
    re_path(r"^Groups/(?P<uuid>[^/]+)/?$", views.GroupView.as_view(), name="group"),
    re_path(r"^Bulk/?$", views.BulkView.as_view(), name="bulk"),
    re_path(r"^Me/?$", views.NotImplementedView.as_view(), name="me"),
    re_path(r"^\.search/?$", views.RootSearchView.as_view(), name="search"),
    path("", views.NotFoundView.as_view(), name="root"),
    re_path(r"^.*$", views.NotFoundView.as_view(), name="not-found"),
]
