from django.conf import settings
from django.db import models
from django_otp.models import Device


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


class WebAuthnCredential(Device):
    """A passkey or security key (WebAuthn), usable as the second factor.

    A django-otp Device so that a session verified with it counts as verified everywhere
    (`user.is_verified()`, staff pages); it never accepts typed tokens (`verify_token` is False).
    """

    credential_id = models.CharField(max_length=1024, unique=True, help_text="base64url")
    public_key = models.TextField(help_text="COSE public key, base64url")
    sign_count = models.PositiveBigIntegerField(default=0)
    transports = models.JSONField(default=list, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta(Device.Meta):
        verbose_name = "passkey"

    def verify_token(self, token: object) -> bool:
        return False


class SignInPolicy(models.Model):
    """The password and session policy, edited at runtime in the console's Settings.

    One row at most (id 1). Until an admin saves it, the policy is the deployment's settings
    (`apps.portal.policy.sign_in_policy` reads either). Durations are in seconds.
    """

    SINGLETON_ID = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_ID, editable=False)
    password_min_length = models.PositiveSmallIntegerField()
    mfa_required = models.BooleanField(help_text="Everyone needs a second factor, not only staff.")
    session_idle_seconds = models.PositiveIntegerField()
    session_lifetime_seconds = models.PositiveIntegerField(help_text="From sign-in, however active the session.")
    lockout_failure_limit = models.PositiveSmallIntegerField()
    # 0 keeps a lockout until an admin lifts it.
    lockout_cooloff_seconds = models.PositiveIntegerField()
    # Failures from one client address, whatever the accounts: a much higher limit and a short
    # cool-off, since everyone behind that address (an office NAT, a VPN exit) is locked with it.
    lockout_address_failure_limit = models.PositiveIntegerField()
    lockout_address_cooloff_seconds = models.PositiveIntegerField()
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "sign-in policy"
        verbose_name_plural = "sign-in policy"
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="portal_signinpolicy_singleton")]

    def __str__(self) -> str:
        return "sign-in policy"
