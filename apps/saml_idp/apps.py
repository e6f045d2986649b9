from django.apps import AppConfig


class SamlIdpConfig(AppConfig):
    name = "apps.saml_idp"
    label = "saml_idp"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from apps.common.generations import watch
        from apps.connectors.checks import register_check
        from apps.saml_idp.checks import signing_key_expiry
        from apps.saml_idp.session import record_auth_time

        register_check(signing_key_expiry)
        # The SSO path's connector, its settings and key choice, cached until one of them changes.
        from apps.saml_idp.selectors import SSO_CONNECTOR_GENERATION, SSO_CONNECTOR_TABLES

        watch(SSO_CONNECTOR_GENERATION, SSO_CONNECTOR_TABLES)

        # Every way into a portal session (password, later MFA or upstream SAML) ends in login(),
        # which sends this signal: the one place to learn when the user actually signed in.
        user_logged_in.connect(record_auth_time, dispatch_uid="saml_idp.record_auth_time")
