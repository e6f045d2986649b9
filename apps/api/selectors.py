"""Reads of admin API tokens for the console."""

from django.db.models import QuerySet

from apps.api.models import ApiToken
from apps.scim_server.selectors import LIVE_FIRST


def api_token_list() -> QuerySet[ApiToken]:
    return ApiToken.objects.select_related("user").order_by(*LIVE_FIRST)


def api_token_get(pk: object) -> ApiToken | None:
    return ApiToken.objects.select_related("user").filter(pk=pk).first()
