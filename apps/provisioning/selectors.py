import re

from django.db.models import Count, Q, QuerySet

from apps.connectors.models import Connector
from apps.provisioning.models import Delivery, DeprovisionHold, HoldStatus, OutboxEvent, RemoteObject, SyncStatus


def status_counts(connector: Connector) -> dict[str, int]:
    counts = dict(
        RemoteObject.objects.filter(connector=connector).values_list("status").annotate(n=Count("id")).order_by()
    )
    counts["pending_changes"] = OutboxEvent.objects.filter(connector=connector, processed_at__isnull=True).count()
    return counts


def remote_object_list(
    connector: Connector, *, status: str | None = None, object_type: str | None = None
) -> QuerySet[RemoteObject]:
    objects = RemoteObject.objects.filter(connector=connector)
    if status:
        objects = objects.filter(status=status)
    if object_type:
        objects = objects.filter(object_type=object_type)
    return objects.order_by("object_type", "label")


def delivery_list(connector: Connector) -> QuerySet[Delivery]:
    return Delivery.objects.filter(connector=connector).order_by("-created", "-id")


def hold_list(connector: Connector) -> QuerySet[DeprovisionHold]:
    return DeprovisionHold.objects.filter(connector=connector).order_by("-created")


def health_by_connector(connector_ids: list) -> dict:
    """Per connector id: {"pending", "failed", "held", "synced"}, in three queries whatever the number of connectors."""
    health = {connector_id: {"pending": 0, "failed": 0, "held": 0, "synced": 0} for connector_id in connector_ids}
    rows = (
        RemoteObject.objects.filter(connector_id__in=connector_ids)
        .values("connector_id")
        .annotate(
            pending=Count("id", filter=Q(status=SyncStatus.PENDING)),
            failed=Count("id", filter=Q(status=SyncStatus.FAILED)),
            synced=Count("id", filter=Q(status=SyncStatus.SYNCED)),
        )
        .order_by()
    )
    for row in rows:
        health[row["connector_id"]].update(pending=row["pending"], failed=row["failed"], synced=row["synced"])
    queued = (
        OutboxEvent.objects.filter(connector_id__in=connector_ids, processed_at__isnull=True)
        .values_list("connector_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    for connector_id, count in queued:
        health[connector_id]["pending"] += count
    held = (
        DeprovisionHold.objects.filter(connector_id__in=connector_ids, status=HoldStatus.PENDING)
        .values_list("connector_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    for connector_id, count in held:
        health[connector_id]["held"] = count
    return health


def pending_hold_list(connector: Connector) -> QuerySet[DeprovisionHold]:
    return hold_list(connector).filter(status=HoldStatus.PENDING)


_STATUS_HINTS = {
    400: "The app refused the data it was sent; check the attribute mapping.",
    401: "The app refused the bearer token; set the token again from the app.",
    403: "The app refused the bearer token or this operation; check the token's permissions in the app.",
    404: "The app no longer has this object, or the SCIM base URL is wrong.",
    409: "The app already has an account or group with this name and did not let the portal take it over.",
    413: "The request was too large for the app.",
    429: "The app asked the portal to slow down; it retries by itself.",
    500: "The app had an internal error; the portal retries by itself.",
    501: "The app does not support this operation; turn it off in Identity Management.",
    502: "The app (or a proxy in front of it) was unavailable; the portal retries by itself.",
    503: "The app was unavailable; the portal retries by itself.",
    504: "The app took too long to answer; the portal retries by itself.",
}


def explain_error(error: str) -> str:
    """A plain-words hint for a recorded delivery error ("The app answered HTTP 409: ..."), or ""."""
    match = re.search(r"HTTP (\d{3})", error or "")
    if match:
        return _STATUS_HINTS.get(int(match.group(1)), "")
    if error.startswith("Could not reach the app"):
        return "The portal could not connect to the app: check the SCIM base URL and that the app is up."
    return ""
