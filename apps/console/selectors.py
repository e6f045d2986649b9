"""Reads that only the console needs: the dashboard's summaries, each a fixed number of queries."""

from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet

from apps.audit.models import AuditEvent
from apps.connectors.models import Connector
from apps.directory.models import Group, User, UserStatus
from apps.provisioning.selectors import health_by_connector

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
    health = health_by_connector([connector.pk for connector in connectors])
    return [
        ProvisioningHealth(
            connector=connector,
            pending=health[connector.pk]["pending"],
            failed=health[connector.pk]["failed"],
            held=health[connector.pk]["held"],
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
