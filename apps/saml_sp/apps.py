from django.apps import AppConfig


class SamlSpConfig(AppConfig):
    name = "apps.saml_sp"
    label = "saml_sp"
    verbose_name = "Delegated login (SAML SP)"

    def ready(self) -> None:
        from apps.portal.sign_in_options import register_sign_in_options
        from apps.portal.sign_out_steps import register_sign_out_step
        from apps.saml_sp.selectors import upstream_sign_in_options
        from apps.saml_sp.sessions import upstream_sign_out_step

        register_sign_in_options(upstream_sign_in_options)
        # Signing out of the portal ends with a LogoutRequest to the upstream the session came from.
        register_sign_out_step(upstream_sign_out_step)
