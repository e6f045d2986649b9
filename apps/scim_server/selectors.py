"""Reads of SCIM tokens for the console and the API."""

from django.db.models import QuerySet

from apps.directory.models import Group
from apps.scim_server.models import ScimToken


def tokens_scoped_to(group: Group) -> QuerySet[ScimToken]:
    """The live tokens limited to `group`'s members: the group cannot be deleted while they exist."""
    return ScimToken.objects.filter(scope_group=group, revoked_at__isnull=True).order_by("name")
