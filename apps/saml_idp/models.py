from django.conf import settings
from django.db import models

from apps.common.models import KeyPairModel
from apps.connectors.models import Connector


class KeyStatus(models.TextChoices):
    ACTIVE = "active", "Active (signs responses)"
    NEXT = "next", "Next (published in metadata, signs nothing yet)"
    RETIRED = "retired", "Retired"


class KeyScope(models.TextChoices):
    PORTAL = "portal", "The portal's key"
    CONNECTOR = "connector", "One connector's own key"


class SigningKey(KeyPairModel):
    """A key pair that signs assertions (and ID tokens): the portal's, or one connector's own."""

    scope = models.CharField(max_length=16, choices=KeyScope.choices, default=KeyScope.PORTAL)
    status = models.CharField(max_length=16, choices=KeyStatus.choices, db_index=True)

    class Meta(KeyPairModel.Meta):
        constraints = [
            # One active and at most one next key for the portal; connector keys stand alone.
            models.UniqueConstraint(
                fields=["status"],
                condition=models.Q(scope="portal", status__in=["active", "next"]),
                name="saml_idp_one_portal_key_per_status",
            )
        ]

    def __str__(self) -> str:
        return f"{self.scope} key {self.fingerprint_sha256[:23]} ({self.status})"


class ConnectorSigningKey(models.Model):
    """A connector that signs with its own key instead of the portal's."""

    connector = models.OneToOneField(
        Connector, on_delete=models.CASCADE, primary_key=True, related_name="saml_signing_key"
    )
    key = models.ForeignKey(SigningKey, on_delete=models.PROTECT, related_name="+")
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.connector_id} signs with {self.key_id}"


class MetadataFetch(models.Model):
    """One download of a connector's IdP metadata: shows which apps have seen the next key."""

    connector = models.ForeignKey(Connector, on_delete=models.CASCADE, related_name="saml_metadata_fetches")
    created = models.DateTimeField(auto_now_add=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=255, blank=True)
    # Ids (str) of the signing keys the metadata published at that moment.
    key_ids = models.JSONField(default=list)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["connector", "-created"], name="saml_idp_fetch_connector_idx")]

    def __str__(self) -> str:
        return f"{self.connector_id} metadata fetched by {self.ip} at {self.created:%Y-%m-%d %H:%M:%S}"


class SeenRequestId(models.Model):
    """Message ids already accepted, shared by every web worker: a second sighting is a replay."""

    # sha256 of (purpose, connector, message id): bounded length whatever the SP sends.
    key = models.CharField(max_length=64, unique=True)
    expires = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.key


class TraceKind(models.TextChoices):
    AUTHN_REQUEST = "authn_request", "AuthnRequest received"
    LOGOUT_REQUEST = "logout_request", "LogoutRequest received"
    RESPONSE = "response", "Response sent"
    LOGOUT_RESPONSE_SENT = "logout_response_sent", "LogoutResponse sent"
    # The app's answer to a LogoutRequest the portal sent it when the user signed out of the portal.
    LOGOUT_RESPONSE_RECEIVED = "logout_response_received", "LogoutResponse received"


class TraceOutcome(models.TextChoices):
    ACCEPTED = "accepted", "Accepted"
    REFUSED = "refused", "Refused"
    SENT = "sent", "Sent"


class SamlTraceRecord(models.Model):
    """One SAML message captured by the tracer while a connector's capture was on.

    Responses carry personal data: records are few per connector, and deleted after
    SAML_IDP_TRACE_RETENTION_SECONDS (apps/saml_idp/tracer.py).
    """

    connector = models.ForeignKey(Connector, on_delete=models.CASCADE, related_name="saml_trace_records")
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    kind = models.CharField(max_length=32, choices=TraceKind.choices)
    outcome = models.CharField(max_length=16, choices=TraceOutcome.choices)
    binding = models.CharField(max_length=128, blank=True)
    message_id = models.CharField(max_length=256, blank=True)
    relay_state = models.TextField(blank=True)
    # Pretty-printed XML as received or sent; empty when it could not be decoded (see `error`).
    xml = models.TextField(blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    user_label = models.CharField(max_length=255, blank=True)
    # Why the portal refused the message (SamlRequestError reason and text), if it did.
    error_reason = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    # [{"level": "bad"|"warn"|"info", "code": ..., "text": ...}], in plain words.
    problems = models.JSONField(default=list)
    # What the page shows beside the XML: issuer, ACS URL, NameID, attributes, algorithms...
    summary = models.JSONField(default=dict)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["connector", "-created"], name="saml_idp_trace_connector_idx")]

    def __str__(self) -> str:
        return f"{self.kind} for {self.connector_id} at {self.created:%Y-%m-%d %H:%M:%S} ({self.outcome})"
