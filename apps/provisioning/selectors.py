from django.db.models import Count, QuerySet

from apps.connectors.models import Connector
from apps.provisioning.models import Delivery, DeprovisionHold, OutboxEvent, RemoteObject


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
