import uuid

from django.db import models

from apps.common.models import TimeStampedModel


class MatchAttribute(models.TextChoices):
    EMAIL = "email", "Email"
    USERNAME = "username", "Username"
    EMPLOYEE_ID = "employee_id", "Employee ID"


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

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
