from django.apps import AppConfig


class SamlIdpConfig(AppConfig):
    name = "apps.saml_idp"
    label = "saml_idp"
