"""Reads that only the console needs: the dashboard's summaries, each a fixed number of queries."""

from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet

from apps.audit.models import AuditEvent
from apps.connectors.models import Connector
from apps.directory.models import Group, User, UserStatus
from apps.provisioning.models import DeprovisionHold, HoldStatus, OutboxEvent, RemoteObject, SyncStatus

SIGN_IN_ACTIONS = ("portal.login.success", "portal.login.failure", "portal.lockout", "portal.mfa.failure")


@dataclass(frozen=True)
class ProvisioningHealth:
    connector: Connector
    pending: int
    failed: int
    held: int
    paused: bool


def directory_counts() -> dict[str, int]:
    counts = User.objects.aggregate(
        total=Count("id"),
        active=Count("id", filter=Q(status=UserStatus.ACTIVE)),
        suspended=Count("id", filter=Q(status=UserStatus.SUSPENDED)),
        staged=Count("id", filter=Q(status=UserStatus.STAGED)),
    )
    counts["groups"] = Group.objects.count()
    counts.update(
        Connector.objects.aggregate(connectors=Count("id"), connectors_enabled=Count("id", filter=Q(enabled=True)))
    )
    return counts


def provisioning_health() -> list[ProvisioningHealth]:
    """Every connector with Identity Management on, with what is waiting, failing or held."""
    connectors = list(
        Connector.objects.filter(provisioning__enabled=True).select_related("provisioning").order_by("name")
    )
    ids = [connector.pk for connector in connectors]
    remote = {
        row["connector_id"]: row
        for row in RemoteObject.objects.filter(connector_id__in=ids)
        .values("connector_id")
        .annotate(
            pending=Count("id", filter=Q(status=SyncStatus.PENDING)),
            failed=Count("id", filter=Q(status=SyncStatus.FAILED)),
        )
        .order_by()
    }
    queued = dict(
        OutboxEvent.objects.filter(connector_id__in=ids, processed_at__isnull=True)
        .values_list("connector_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    held = dict(
        DeprovisionHold.objects.filter(connector_id__in=ids, status=HoldStatus.PENDING)
        .values_list("connector_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    return [
        ProvisioningHealth(
            connector=connector,
            pending=remote.get(connector.pk, {}).get("pending", 0) + queued.get(connector.pk, 0),
            failed=remote.get(connector.pk, {}).get("failed", 0),
            held=held.get(connector.pk, 0),
            paused=connector.provisioning.paused,
        )
        for connector in connectors
    ]


def recent_sign_ins(limit: int = 10) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(action__in=SIGN_IN_ACTIONS).order_by("-created", "-id")[:limit]


def recent_admin_actions(limit: int = 10) -> QuerySet[AuditEvent]:
    """Changes made by people (not sign-ins, not the system), newest first."""
    return (
        AuditEvent.objects.filter(actor__isnull=False)
        .exclude(action__startswith="portal.")
        .order_by("-created", "-id")[:limit]
    )
