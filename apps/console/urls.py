"""/console/: each page module is its own URLconf, all in the `console` namespace."""

from django.urls import include, path

from apps.console.views import (
    audit,
    connector_assignments,
    connector_mappings,
    connector_oidc,
    connectors,
    custom_attributes,
    dashboard,
    group_rules,
    groups,
    keys,
    provisioning,
    reauth,
    settings,
    tokens,
    tracer,
    user_csv,
    user_profile,
    users,
)

app_name = "console"
urlpatterns = [
    path("", include(dashboard)),
    path("", include(reauth)),
    path("users/", include(user_csv)),
    path("users/", include(users)),
    path("users/", include(user_profile)),
    path("groups/", include(groups)),
    path("custom-attributes/", include(custom_attributes)),
    path("groups/", include(group_rules)),
    path("connectors/", include(connectors)),
    path("connectors/", include(connector_mappings)),
    path("connectors/", include(connector_assignments)),
    path("connectors/", include(provisioning)),
    path("connectors/", include(tracer)),
    path("connectors/", include(connector_oidc)),
    path("keys/", include(keys)),
    path("tokens/", include(tokens)),
    path("audit/", include(audit)),
    path("settings/", include(settings)),
]
