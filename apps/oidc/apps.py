from django.apps import AppConfig


class OidcConfig(AppConfig):
    name = "apps.oidc"
    label = "oidc"
    verbose_name = "OpenID Connect provider"

    def ready(self) -> None:
        from apps.common.sign_out import register_sign_out_participant
        from apps.oidc.logout import portal_signed_out

        # A sign-out from the portal ends this session's OIDC sign-ins too (apps.common.sign_out).
        register_sign_out_participant(portal_signed_out)
