from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "apps.portal"
    label = "portal"

    def ready(self) -> None:
        from axes.signals import user_locked_out
        from django.core.signals import request_finished, request_started

        from apps.portal import policy
        from apps.portal.services import end_sessions
        from apps.portal.signals import audit_lockout
        from apps.saml_idp.logout import register_session_ender

        # An app's back-channel logout ends the portal sessions it names (apps.saml_idp.logout).
        register_session_ender(end_sessions)

        user_locked_out.connect(audit_lockout, dispatch_uid="portal.audit_lockout")
        # The sign-in policy is read at most once per request (apps.portal.policy).
        request_started.connect(policy.request_started, dispatch_uid="portal.policy_request_started")
        request_finished.connect(policy.request_finished, dispatch_uid="portal.policy_request_finished")
