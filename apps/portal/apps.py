from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "apps.portal"
    label = "portal"

    def ready(self) -> None:
        from axes.signals import user_locked_out

        from apps.common.generations import watch
        from apps.portal import policy
        from apps.portal.models import SignInPolicy
        from apps.portal.services import end_sessions
        from apps.portal.signals import audit_lockout
        from apps.saml_idp.logout import register_session_ender

        # An app's back-channel logout ends the portal sessions it names (apps.saml_idp.logout).
        register_session_ender(end_sessions)

        user_locked_out.connect(audit_lockout, dispatch_uid="portal.audit_lockout")
        # The sign-in policy is cached until its table changes (apps.portal.policy).
        watch(policy.POLICY_GENERATION, [SignInPolicy._meta.db_table])
