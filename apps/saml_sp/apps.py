from django.apps import AppConfig


class SamlSpConfig(AppConfig):
    name = "apps.saml_sp"
    label = "saml_sp"
    verbose_name = "Delegated login (SAML SP)"
