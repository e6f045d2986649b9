"""What the OpenID Connect provider keeps beside django-oauth-toolkit's own grants and tokens."""

from django.conf import settings
from django.db import models

from apps.connectors.models import Connector


class OidcSession(models.Model):
    """One sign-in of a person to an OIDC app: the authorization code, then the token family it
    led to. It carries what the ID tokens say about the sign-in (auth_time, amr, acr, sid) and is
    how a portal sign-out, an RP-initiated logout or a reused code finds the tokens to revoke."""

    connector = models.ForeignKey(Connector, on_delete=models.CASCADE, related_name="oidc_sessions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    # The portal session this sign-in happened in, as the `sid` claim names it (derived from the
    # session key, apps.oidc.session.session_id): a portal sign-out ends the sign-ins of its sid.
    sid = models.CharField(max_length=64, db_index=True)
    auth_time = models.DateTimeField()
    amr = models.JSONField(default=list)
    acr = models.CharField(max_length=32, blank=True)
    # SHA-256 of the authorization code, kept after the exchange: a second use is an attack.
    code_checksum = models.CharField(max_length=64, unique=True)
    code_used = models.DateTimeField(null=True, blank=True)
    # django-oauth-toolkit's refresh token family, once the code is exchanged.
    token_family = models.UUIDField(null=True, blank=True, db_index=True)
    created = models.DateTimeField(auto_now_add=True)
    ended = models.DateTimeField(null=True, blank=True)
    ended_reason = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["user", "sid"], name="oidc_session_user_sid_idx")]

    def __str__(self) -> str:
        return f"{self.user_id} at {self.connector_id} ({self.created:%Y-%m-%d %H:%M:%S})"


class TraceOutcome(models.TextChoices):
    ACCEPTED = "accepted", "Code issued"
    REFUSED = "refused", "Refused"
    LOGIN = "login", "Sent to sign in"


class OidcTraceRecord(models.Model):
    """One authorization request captured while the connector's tracer was on (few, and short-lived:
    they name people)."""

    connector = models.ForeignKey(Connector, on_delete=models.CASCADE, related_name="oidc_trace_records")
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    outcome = models.CharField(max_length=16, choices=TraceOutcome.choices)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    user_label = models.CharField(max_length=255, blank=True)
    # The request's parameters as received (each cut to 300 characters).
    parameters = models.JSONField(default=dict)
    error = models.CharField(max_length=64, blank=True)
    error_description = models.TextField(blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["connector", "-created"], name="oidc_trace_connector_idx")]

    def __str__(self) -> str:
        return f"authorization request for {self.connector_id} at {self.created:%Y-%m-%d %H:%M:%S} ({self.outcome})"
