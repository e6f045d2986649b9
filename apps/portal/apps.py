from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "apps.portal"
    label = "portal"

    def ready(self) -> None:
        from axes.signals import user_locked_out

        from apps.portal.signals import audit_lockout

        user_locked_out.connect(audit_lockout, dispatch_uid="portal.audit_lockout")
