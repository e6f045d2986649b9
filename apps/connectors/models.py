import uuid

from django.db import models

from apps.common.models import TimeStampedModel
from apps.directory.models import Group, User


class ConnectorKind(models.TextChoices):
    SAML = "saml", "SAML app"
    SCIM = "scim", "SCIM-only app"
    SAML_SCIM = "saml_scim", "SAML + SCIM app"
    OIDC = "oidc", "OpenID Connect app"
    OIDC_SCIM = "oidc_scim", "OpenID Connect + SCIM app"
    BOOKMARK = "bookmark", "Bookmark"


class NameIdFormat(models.TextChoices):
    EMAIL = "email", "Email address"
    PERSISTENT = "persistent", "Persistent"
    UNSPECIFIED = "unspecified", "Unspecified"
    TRANSIENT = "transient", "Transient"


class NameIdProperty(models.TextChoices):
    USERNAME = "username", "Username"
    EMAIL = "email", "Company email"
    ID = "id", "Directory id (UUID)"
    EMPLOYEE_ID = "employee_id", "Employee ID"


class SignatureAlgorithm(models.TextChoices):
    RSA_SHA256 = "rsa-sha256", "RSA-SHA256"
    RSA_SHA384 = "rsa-sha384", "RSA-SHA384"
    RSA_SHA512 = "rsa-sha512", "RSA-SHA512"
    RSA_SHA1 = "rsa-sha1", "RSA-SHA1 (insecure)"


class DigestAlgorithm(models.TextChoices):
    SAME = "", "Same as the signature"
    SHA256 = "sha256", "SHA-256"
    SHA384 = "sha384", "SHA-384"
    SHA512 = "sha512", "SHA-512"
    SHA1 = "sha1", "SHA-1 (insecure)"


class EncryptionAlgorithm(models.TextChoices):
    AES256_GCM = "aes256-gcm", "AES-256-GCM"
    AES128_GCM = "aes128-gcm", "AES-128-GCM"
    AES256_CBC = "aes256-cbc", "AES-256-CBC"
    AES128_CBC = "aes128-cbc", "AES-128-CBC"


class KeyTransport(models.TextChoices):
    RSA_OAEP_MGF1P = "rsa-oaep-mgf1p", "RSA-OAEP (MGF1 with SHA-1)"
    RSA_OAEP_SHA256 = "rsa-oaep-sha256", "RSA-OAEP with SHA-256 (XML Encryption 1.1)"


class ProvisioningOperation(models.TextChoices):
    CREATE_USERS = "create_users", "Create users"
    UPDATE_USERS = "update_users", "Update users"
    DEACTIVATE_USERS = "deactivate_users", "Deactivate users"
    DELETE_USERS = "delete_users", "Delete users"
    PUSH_GROUPS = "push_groups", "Push groups"


class Deprovision(models.TextChoices):
    DEACTIVATE = "deactivate", "Set active=false"
    DELETE = "delete", "Delete the user"


class UpdateMethod(models.TextChoices):
    PATCH = "patch", "PATCH (changed attributes)"
    PUT = "put", "PUT (whole resource)"


class MappingKind(models.TextChoices):
    SCIM_USER = "scim_user", "SCIM user attribute"
    SCIM_GROUP = "scim_group", "SCIM group attribute"
    SAML = "saml", "SAML attribute"
    OIDC = "oidc", "OIDC claim"


class Connector(TimeStampedModel):
    """One application integration: what SSO and provisioning are configured on."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField("display label", max_length=100)
    # The slug is part of the IdP URLs that admins paste into the app, so it never changes.
    slug = models.SlugField(max_length=64, unique=True)
    description = models.TextField(blank=True, max_length=2000)
    logo = models.CharField(max_length=300, blank=True, help_text="Static path or https URL of the logo.")
    template = models.CharField(max_length=64, blank=True)
    kind = models.CharField(max_length=16, choices=ConnectorKind.choices)
    enabled = models.BooleanField(default=False)
    bookmark_url = models.URLField(max_length=2000, blank=True)
    idp_entity_id = models.CharField("IdP entity ID", max_length=512, unique=True)
    sso_url = models.CharField("IdP SSO URL", max_length=512)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def has_sso(self) -> bool:
        return self.kind in (ConnectorKind.SAML, ConnectorKind.SAML_SCIM)

    @property
    def has_oidc(self) -> bool:
        return self.kind in (ConnectorKind.OIDC, ConnectorKind.OIDC_SCIM)

    @property
    def has_provisioning(self) -> bool:
        return self.kind in (ConnectorKind.SCIM, ConnectorKind.SAML_SCIM, ConnectorKind.OIDC_SCIM)


class SsoSettings(models.Model):
    connector = models.OneToOneField(Connector, on_delete=models.CASCADE, primary_key=True, related_name="sso")
    sp_entity_id = models.CharField("SP entity ID", max_length=512, blank=True, db_index=True)
    # [{"url": ..., "binding": ..., "index": n}], the first one is the default.
    acs_urls = models.JSONField(default=list, blank=True)
    sp_login_url = models.CharField(max_length=2000, blank=True)
    slo_url = models.CharField("SP SLO URL", max_length=2000, blank=True)
    slo_binding = models.CharField(max_length=128, blank=True)
    nameid_format = models.CharField(max_length=16, choices=NameIdFormat.choices, default=NameIdFormat.EMAIL)
    nameid_property = models.CharField(max_length=16, choices=NameIdProperty.choices, default=NameIdProperty.EMAIL)
    sign_response = models.BooleanField(default=True)
    sign_assertion = models.BooleanField(default=True)
    signature_algorithm = models.CharField(
        max_length=16, choices=SignatureAlgorithm.choices, default=SignatureAlgorithm.RSA_SHA256
    )
    # SHA-1 is broken for signatures; a connector may use it only with this explicit override.
    allow_sha1 = models.BooleanField(default=False)
    require_signed_requests = models.BooleanField(default=False)
    sp_signing_cert = models.TextField(blank=True)
    sp_encryption_cert = models.TextField(blank=True)
    # Encryption of what the SP receives (apps/connectors/saml_algorithms.py negotiates the defaults from
    # its metadata); importing metadata with an encryption certificate switches it on.
    encrypt_assertions = models.BooleanField(default=False)
    encrypt_name_id = models.BooleanField("encrypt the NameID (EncryptedID)", default=False)
    encryption_algorithm = models.CharField(
        max_length=16, choices=EncryptionAlgorithm.choices, default=EncryptionAlgorithm.AES256_CBC
    )
    key_transport = models.CharField(max_length=16, choices=KeyTransport.choices, default=KeyTransport.RSA_OAEP_MGF1P)
    digest_algorithm = models.CharField(max_length=8, choices=DigestAlgorithm.choices, default="", blank=True)
    # The SP's SOAP SingleLogoutService, when its metadata lists one (the portal answers SOAP
    # LogoutRequests; it sends its own LogoutRequests front-channel, Redirect or POST).
    slo_soap_url = models.CharField("SP SLO URL (SOAP)", max_length=2000, blank=True)
    # What the SP's metadata advertised: {"encryption": [...], "signing": [...], "digest": [...]}.
    sp_algorithms = models.JSONField(default=dict, blank=True)
    # SP metadata by URL, fetched again on a schedule (apps/connectors/metadata_refresh.py).
    sp_metadata_url = models.CharField("SP metadata URL", max_length=2000, blank=True)
    sp_metadata_fetched_at = models.DateTimeField(null=True, blank=True, editable=False)
    sp_metadata_fetch_error = models.TextField(blank=True, editable=False)
    assertion_lifetime_seconds = models.PositiveIntegerField(default=300)
    session_lifetime_seconds = models.PositiveIntegerField(default=8 * 3600)
    relay_state_urls = models.JSONField(default=list, blank=True)
    default_relay_state = models.CharField(max_length=1024, blank=True)
    # The SAML tracer records this connector's messages until then (apps/saml_idp/tracer.py). Kept on
    # the row the SSO path already loads, so that a sign-in with capture off costs no extra query.
    trace_until = models.DateTimeField(null=True, blank=True, editable=False)

    def __str__(self) -> str:
        return f"SSO of {self.connector_id}"

    @property
    def default_acs(self) -> dict | None:
        return self.acs_urls[0] if self.acs_urls else None


class OidcClientType(models.TextChoices):
    CONFIDENTIAL = "confidential", "Confidential (a server that keeps a client secret)"
    PUBLIC = "public", "Public (a browser or native app: PKCE with S256, no secret)"


class OidcSubject(models.TextChoices):
    ID = "id", "Directory id (UUID, never changes)"
    EMAIL = "email", "Company email"
    USERNAME = "username", "Username"


def _default_oidc_scopes() -> list[str]:
    return ["openid", "profile", "email", "groups", "offline_access"]


class OidcSettings(models.Model):
    """How a connector signs people in with OpenID Connect (apps/oidc speaks the protocol)."""

    connector = models.OneToOneField(Connector, on_delete=models.CASCADE, primary_key=True, related_name="oidc")
    # Generated when the connector is created; the relying party identifies itself with it.
    client_id = models.CharField(max_length=64, unique=True)
    client_type = models.CharField(max_length=16, choices=OidcClientType.choices, default=OidcClientType.CONFIDENTIAL)
    # SHA-256 of the client secret (apps.common.tokens.hash_secret): the secret is shown once.
    client_secret_hash = models.CharField(max_length=64, blank=True)
    client_secret_prefix = models.CharField(max_length=24, blank=True)
    client_secret_created = models.DateTimeField(null=True, blank=True)
    # After a rotation the previous secret keeps working until then, so the app can be updated.
    previous_secret_hash = models.CharField(max_length=64, blank=True)
    previous_secret_expires = models.DateTimeField(null=True, blank=True)
    # Exact matches only; https, or http on a loopback address.
    redirect_uris = models.JSONField(default=list, blank=True)
    post_logout_redirect_uris = models.JSONField(default=list, blank=True)
    # Loaded in a hidden frame when the person signs out of the portal (OIDC Front-Channel Logout).
    frontchannel_logout_uri = models.CharField(max_length=2000, blank=True)
    # The app's own "sign in with SSO" URL, which the launchpad tile opens (initiate_login_uri).
    login_url = models.CharField(max_length=2000, blank=True)
    # A fixed shape the app's documentation gives for its redirect URI (from the catalog template),
    # with {host} for the admin's own host name: e.g. https://{host}/login/generic_oauth.
    redirect_uri_pattern = models.CharField(max_length=500, blank=True, editable=False)
    allowed_scopes = models.JSONField(default=_default_oidc_scopes, blank=True)
    sub_source = models.CharField("subject (sub)", max_length=16, choices=OidcSubject.choices, default=OidcSubject.ID)
    access_token_lifetime_seconds = models.PositiveIntegerField(default=3600)
    id_token_lifetime_seconds = models.PositiveIntegerField(default=3600)
    # From the sign-in, whatever the rotations; 0 issues no refresh tokens.
    refresh_token_lifetime_seconds = models.PositiveIntegerField(default=30 * 24 * 3600)
    # Every sign-in to this app needs a second factor (as if it always sent acr_values=mfa).
    require_mfa = models.BooleanField("require a second factor", default=False)
    # The tracer records this connector's authorization requests until then (apps/oidc/tracer.py).
    trace_until = models.DateTimeField(null=True, blank=True, editable=False)

    def __str__(self) -> str:
        return f"OIDC of {self.connector_id}"

    @property
    def is_public(self) -> bool:
        return self.client_type == OidcClientType.PUBLIC

    @property
    def default_redirect_uri(self) -> str:
        return self.redirect_uris[0] if self.redirect_uris else ""


class ProvisioningSettings(models.Model):
    connector = models.OneToOneField(Connector, on_delete=models.CASCADE, primary_key=True, related_name="provisioning")
    enabled = models.BooleanField(default=False)
    base_url = models.CharField("SCIM base URL", max_length=2000, blank=True)
    # Fernet ciphertext of the bearer token (apps.common.crypto); the token itself is never stored.
    token_ciphertext = models.TextField(blank=True)
    token_updated_at = models.DateTimeField(null=True, blank=True)
    operations = models.JSONField(default=list, blank=True)
    deprovision = models.CharField(max_length=16, choices=Deprovision.choices, default=Deprovision.DEACTIVATE)
    update_method = models.CharField(max_length=8, choices=UpdateMethod.choices, default=UpdateMethod.PATCH)
    rate_limit_per_second = models.PositiveIntegerField(default=10, help_text="0 means no limit.")
    # Apps cap how many members one group request may carry (a few hundred to a few thousand): a
    # larger membership goes out in PATCHes of at most this many members each.
    group_members_per_request = models.PositiveIntegerField(default=1000)
    # A full sync also deprovisions users the app has that the directory does not manage.
    deprovision_unmanaged = models.BooleanField(default=False)
    paused = models.BooleanField(default=False)
    paused_reason = models.CharField(max_length=255, blank=True)
    # The deprovisioning circuit breaker trips above max(count, percent of the app's users).
    deprovision_threshold_count = models.PositiveIntegerField(default=10)
    deprovision_threshold_percent = models.PositiveIntegerField(default=5)

    def __str__(self) -> str:
        return f"Provisioning of {self.connector_id}"

    @property
    def token_set(self) -> bool:
        return bool(self.token_ciphertext)


class AttributeMapping(models.Model):
    connector = models.ForeignKey(Connector, on_delete=models.CASCADE, related_name="mappings")
    kind = models.CharField(max_length=16, choices=MappingKind.choices)
    # A directory property (`email`) or a template of them (`{first_name}.{last_name}`).
    source = models.CharField(max_length=255)
    # A SCIM attribute path, or a SAML attribute name.
    target = models.CharField(max_length=255)
    name_format = models.CharField(max_length=128, blank=True, help_text="SAML NameFormat.")
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["kind", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["connector", "kind", "target"], name="connectors_mapping_target_unique")
        ]

    def __str__(self) -> str:
        return f"{self.source} -> {self.target}"


class Assignment(models.Model):
    """A user or a group that may use the connector (its launchpad tile, SSO and provisioning)."""

    connector = models.ForeignKey(Connector, on_delete=models.CASCADE, related_name="assignments")
    user = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.CASCADE, related_name="connector_assignments"
    )
    group = models.ForeignKey(
        Group, null=True, blank=True, on_delete=models.CASCADE, related_name="connector_assignments"
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(user__isnull=False, group__isnull=True))
                | (models.Q(user__isnull=True, group__isnull=False)),
                name="connectors_assignment_user_xor_group",
            ),
            models.UniqueConstraint(
                fields=["connector", "user"], condition=models.Q(user__isnull=False), name="connectors_assign_user_uniq"
            ),
            models.UniqueConstraint(
                fields=["connector", "group"],
                condition=models.Q(group__isnull=False),
                name="connectors_assign_group_uniq",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id or self.group_id} -> {self.connector_id}"
