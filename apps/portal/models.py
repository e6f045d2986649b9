from django.conf import settings
from django.db import models


class PortalSession(models.Model):
    """A signed-in portal session, so that "sign out everywhere" can end every one of them.

    Django's session store cannot be searched by user; this row remembers which session keys
    belong to whom (whatever the session backend) and where each one was opened.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="portal_sessions")
    session_key = models.CharField(max_length=64, unique=True)
    created = models.DateTimeField(auto_now_add=True)
    method = models.CharField(max_length=64, blank=True, help_text="password, password+totp, saml:<slug>, ...")
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["user", "-created"], name="portal_session_user_idx")]

    def __str__(self) -> str:
        return f"{self.user_id} {self.session_key[:6]}…"
