import uuid

from django.conf import settings
from django.db import models

from apps.common.models import KeyPairModel, TimeStampedModel


class MatchAttribute(models.TextChoices):
    EMAIL = "email", "Email"
    USERNAME = "username", "Username"
    EMPLOYEE_ID = "employee_id", "Employee ID"


class GroupSync(models.TextChoices):
    JOIN_EXISTING = "join_existing", "Join groups that exist here"
    CREATE_MISSING = "create_missing", "Create groups that are missing"


class UpstreamIdentityProvider(TimeStampedModel):
    """An IdP that people may sign in to the portal with, instead of a portal password."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, help_text='Shown as "Sign in with <name>".')
    # Part of the portal's SP URLs (/saml/sp/<slug>/acs/) that the upstream IdP is configured with.
    slug = models.SlugField(max_length=64, unique=True)
    metadata_url = models.URLField(max_length=2000, blank=True)
    metadata_xml = models.TextField(blank=True, help_text="The IdP's metadata; refreshed from metadata_url when set.")
    metadata_fetched_at = models.DateTimeField(null=True, blank=True)
    entity_id = models.CharField("IdP entity ID", max_length=512, blank=True, help_text="Read from the metadata.")
    match_attribute = models.CharField(max_length=16, choices=MatchAttribute.choices, default=MatchAttribute.EMAIL)
    # The SAML attribute whose first value identifies the person; empty means the NameID.
    match_saml_attribute = models.CharField(max_length=255, blank=True)
    jit_create = models.BooleanField("create unknown users", default=False)
    # Directory field -> SAML attribute name, used when a user is created just in time:
    # {"email": "mail", "first_name": "givenName", "last_name": "sn", "username": "uid"}.
    attribute_mapping = models.JSONField(default=dict, blank=True)
    # Everyone signs in here: the login page goes straight to this IdP (superusers keep a
    # password sign-in at /login/?local=1 for emergencies).
    enforced = models.BooleanField(default=False)
    enabled = models.BooleanField(default=True)
    # Responses the IdP sends without our AuthnRequest (its own launchpad). Off: only answers to
    # the portal's requests sign in, which binds each Response to the browser that asked for it.
    accept_idp_initiated = models.BooleanField("accept sign-ins started at the IdP", default=False)
    # Signing out of the portal sends a LogoutRequest to the IdP (when its metadata lists an SLO endpoint).
    single_logout = models.BooleanField("sign out of the IdP too", default=True)
    # The SAML attribute naming the person's groups; empty: memberships are not taken from the IdP.
    groups_attribute = models.CharField(max_length=255, blank=True)
    groups_sync = models.CharField(max_length=16, choices=GroupSync.choices, default=GroupSync.JOIN_EXISTING)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class UpstreamGroupMembership(models.Model):
    """A directory membership that an upstream's assertion gave: each sign-in through that upstream
    updates these (and only these), so memberships an admin gave are never taken away by the IdP."""

    upstream = models.ForeignKey(UpstreamIdentityProvider, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    group = models.ForeignKey("directory.Group", on_delete=models.CASCADE, related_name="+")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["upstream", "user", "group"], name="saml_sp_upstream_membership_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.group_id} from {self.upstream_id}"


class SpKeyStatus(models.TextChoices):
    ACTIVE = "active", "Active (decrypts, signs logout messages)"
    NEXT = "next", "Next (published in metadata, decrypts)"
    RETIRED = "retired", "Retired"


class SpKey(KeyPairModel):
    """Delegated login's own key pair: upstream IdPs encrypt assertions to its certificate (published
    in the SP metadata) and it signs the portal's logout messages."""

    status = models.CharField(max_length=16, choices=SpKeyStatus.choices, db_index=True)

    class Meta(KeyPairModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["status"],
                condition=models.Q(status__in=["active", "next"]),
                name="saml_sp_one_key_per_status",
            )
        ]

    def __str__(self) -> str:
        return f"{self.status} {self.fingerprint_sha256[:23]}"
