from django.apps import AppConfig


class ScimServerConfig(AppConfig):
    name = "apps.scim_server"
    label = "scim_server"
