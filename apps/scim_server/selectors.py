"""Reads of SCIM tokens for the console and the API."""

from django.db.models import F, QuerySet

from apps.directory.models import Group
from apps.scim_server.models import ScimToken


def tokens_scoped_to(group: Group) -> QuerySet[ScimToken]:
    """The live tokens limited to `group`'s members: the group cannot be deleted while they exist."""
    return ScimToken.objects.filter(scope_group=group, revoked_at__isnull=True).order_by("name")


# Live tokens first (PostgreSQL would otherwise sort the NULL revoked_at last), newest first.
LIVE_FIRST = (F("revoked_at").desc(nulls_first=True), "-created", "-id")


def scim_token_list() -> QuerySet[ScimToken]:
    return ScimToken.objects.select_related("scope_group").order_by(*LIVE_FIRST)


def scim_token_get(pk: object) -> ScimToken | None:
    return ScimToken.objects.select_related("scope_group").filter(pk=pk).first()
