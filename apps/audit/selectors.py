from datetime import datetime

from django.db.models import QuerySet

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
) -> QuerySet[AuditEvent]:
    """Events matching every filter given; `actor_label`/`target_label` match part of the name, any case."""
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
    return events
