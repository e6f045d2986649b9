from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet

from apps.audit.models import AuditEvent


def audit_event_list(
    *,
    action: str | None = None,
    actor_id: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    actor_label: str | None = None,
    target_label: str | None = None,
    actor_ids: list | None = None,
    targets: dict[str, list] | None = None,
) -> QuerySet[AuditEvent]:
    """Events matching every filter given; `actor_label`/`target_label` match part of the name, any case
    (a scan of the whole log: prefer `actor_ids`, and `targets`, {target_type: [ids]}, which indexes serve)."""
    events = AuditEvent.objects.all()
    if action:
        events = events.filter(action=action) if "." in action else events.filter(action__startswith=f"{action}.")
    if actor_id:
        events = events.filter(actor_id=actor_id)
    if target_type:
        events = events.filter(target_type=target_type)
    if target_id:
        events = events.filter(target_id=target_id)
    if since:
        events = events.filter(created__gte=since)
    if until:
        events = events.filter(created__lt=until)
    if actor_label:
        events = events.filter(actor_label__icontains=actor_label)
    if target_label:
        events = events.filter(target_label__icontains=target_label)
    if actor_ids is not None:
        events = events.filter(actor_id__in=actor_ids)
    if targets is not None:
        matches = Q(pk__in=[])
        for kind, ids in targets.items():
            matches |= Q(target_type=kind, target_id__in=[str(pk) for pk in ids])
        events = events.filter(matches)
    return events


SIGN_IN_ACTION_PREFIXES = ("portal.login.", "portal.mfa.")
SIGN_IN_ACTIONS = ("portal.lockout",)


def user_sign_in_events(user: Any, *, limit: int = 10) -> QuerySet[AuditEvent]:
    """The user's latest sign-ins, failures, lockouts and second-factor events (the target index serves it)."""
    actions = Q(action__in=SIGN_IN_ACTIONS)
    for prefix in SIGN_IN_ACTION_PREFIXES:
        actions |= Q(action__startswith=prefix)
    return (
        AuditEvent.objects.filter(target_type=user._meta.label_lower, target_id=str(user.pk))
        .filter(actions)
        .order_by("-created", "-id")[:limit]
    )
